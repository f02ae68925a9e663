"""Checks for the Phase 8 exercises (training at scale: data, compute, distribution and alignment).

Oracles: ``sklearn.metrics``' precision and recall (8.1), ``imagehash.average_hash`` (8.2), a near-duplicate matrix
built so that every rule gives a different answer (8.3), CHAIR computed from its definition on object sets (8.4),
``torch.utils.flop_counter.FlopCounterMode`` on a real GPT-2 training step (8.5), the gradient of one large batch
(8.6), ``torch.utils.data.DistributedSampler`` (8.7), ``sklearn.metrics`` again for POPE's numbers (8.8), and the
DPO paper's equation 7 — trl's ``DPOTrainer`` default (``loss_type="sigmoid"``) computes it inside the trainer and
exposes no standalone function — with its gradient (8.9).

8.1 a filter's precision and recall, 8.2 a perceptual hash, 8.3 keep the first copy, 8.4 CHAIR, 8.5 training FLOPs
by rule, 8.6 gradient accumulation, 8.7 a data-parallel rank's share, 8.8 POPE's numbers, 8.9 the DPO loss.

Besides the known mistakes, each check probes properties every right answer has: precision and recall are 1 for a
perfect filter and flagging everything gives recall 1 and precision the base rate; the average hash keeps its bits
when the whole image brightens and has hash_size² of them; near-deduplication keeps everything when nothing is
close, keeps each record that only resembles a dropped one, and keeps the first record; CHAIR is 0 for captions that
name only what is there and ignores captions that name nothing; the FLOPs rule is linear in the tokens and, without
attention, 6 per weight per token; accumulated gradients do not depend on what was in ``.grad`` before and with one
micro-batch are the plain gradient; the ranks' shares are equally long and together cover every index; POPE's
yes-ratio counts the model's answers and its hallucination rate only the questions whose answer is no; the DPO loss
is log 2 when the policy is the reference, falls as the chosen answer gains, and depends on the policy only through
its log-ratios to the reference.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import compute as ucompute
from .. import curation as ucuration
from .. import distributed as udistributed
from .. import dpo as udpo
from . import CheckFailed, Mismatch, Unsolved, register
from .oracles import Probe, describe, int_list, number_dict, require_properties

# References captured at import: a notebook rebinds names to a learner's passing version.
_first_copies, _chair = ucuration.first_copies, ucuration.chair


def _number(out, what: str) -> float:
    if out is None or out is Ellipsis:
        raise Unsolved
    if isinstance(out, torch.Tensor) and out.numel() == 1:
        return float(out)
    if isinstance(out, bool) or not isinstance(out, numbers.Real):
        raise CheckFailed(f"{what} should return one number; it returned {describe(out)}.")
    return float(out)


def _pair(out, what: str) -> tuple[float, float]:
    if out is None or out is Ellipsis:
        raise Unsolved
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed(f"{what} should return a pair of numbers; it returned {describe(out)}.")
    return _number(out[0], f"{what}'s first number"), _number(out[1], f"{what}'s second number")


def _close(a: tuple[float, ...], b: tuple[float, ...], tol: float = 1e-6) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


# --- 8.2 a perceptual hash ----------------------------------------------------------------------------------------

def _bits(out, n: int) -> np.ndarray:
    if out is None or out is Ellipsis:
        raise Unsolved
    if isinstance(out, torch.Tensor):
        out = out.numpy()
    if not isinstance(out, np.ndarray):
        raise CheckFailed(f"average_hash should return a NumPy array of {n} booleans; it returned {describe(out)}.")
    if out.size == n and out.ndim == 2:
        raise CheckFailed(f"your hash has shape {out.shape}: flatten it to {n} bits in row-major order (.flatten()), "
                          "as imagehash's .hash.flatten() does.")
    if out.shape != (n,):
        raise CheckFailed(f"average_hash(image, hash_size) should return hash_size² = {n} bits, flat; it returned an "
                          f"array of shape {out.shape}.")
    if out.dtype != bool:
        if set(np.unique(out).tolist()) <= {0, 1}:
            return out.astype(bool)
        raise CheckFailed(f"the bits should be booleans (True where a cell is brighter than the mean); got values "
                          f"{np.unique(out)[:5].tolist()}.")
    return out


def _hash_images() -> list[np.ndarray]:
    """Three crawl-like images (a scene, a banner, a thumbnail) and a synthetic one whose cells tie with the mean."""
    from ..world.crawl import Crawl

    crawl = Crawl(seed=0)
    picks = [crawl.record(i) for i in range(40)]
    scene = next(r for r in picks if not r.defects).image()
    banner = next(r for r in picks if "extreme_aspect" in r.defects).image()
    rng = np.random.default_rng(81)
    noise = rng.integers(0, 256, (37, 23, 3), dtype=np.uint8)
    ties = np.zeros((8, 8, 3), np.uint8)
    ties[2:6] = 100                                   # 16 cells at 0, 32 at 100, 16 at 200: the mean is 100
    ties[6:] = 200
    return [scene, banner, noise, ties]


def _library_hash(image: np.ndarray, hash_size: int) -> np.ndarray:
    import imagehash
    from PIL import Image

    return imagehash.average_hash(Image.fromarray(image), hash_size).hash.flatten()


def _variant_hash(image: np.ndarray, hash_size: int, grey: str = "L", resample=None, rule: str = "mean",
                  order: str = "C") -> np.ndarray:
    from PIL import Image

    resample = Image.LANCZOS if resample is None else resample
    pil = Image.fromarray(image)
    if grey == "L":
        cells = np.asarray(pil.convert("L").resize((hash_size, hash_size), resample), dtype=np.float64)
    elif grey == "mean":
        cells = np.asarray(Image.fromarray(image.mean(-1).astype(np.uint8)).resize((hash_size, hash_size), resample),
                           dtype=np.float64)
    else:  # resize the colour image, then convert
        cells = np.asarray(pil.resize((hash_size, hash_size), resample).convert("L"), dtype=np.float64)
    if rule == "mean":
        bits = cells > cells.mean()
    elif rule == "ge":
        bits = cells >= cells.mean()
    elif rule == "median":
        bits = cells > np.median(cells)
    else:
        bits = cells < cells.mean()
    return bits.flatten(order=order)


@register("8.2", "a perceptual hash", ucuration.average_hash, hints=(
    "Shrink the image to hash_size × hash_size grey cells; a bit says whether its cell is brighter than the mean.",
    "Section 2, 'Near-duplicates: a perceptual hash': the average hash (aHash) throws away colour and detail on "
    "purpose, so a re-encoded, slightly cropped copy hashes almost the same. imagehash converts to grey with PIL's "
    "convert('L'), resizes with the Lanczos filter and compares each cell with the mean of all cells.",
    "Worked sub-step: Image.fromarray(image).convert('L').resize((8, 8), Image.LANCZOS) gives the 64 cells; make "
    "them a NumPy array; the bits are a strict comparison with their mean; return them flattened (64,).",
))
def _check_average_hash(fn) -> str:
    images = _hash_images()
    for k, image in enumerate(images):
        for hash_size in (8, 4) if k < 2 else (8,):
            before = image.copy()
            got = _bits(fn(image, hash_size), hash_size ** 2)
            if not np.array_equal(image, before):
                raise CheckFailed("your function changed the image it was given: work on a copy.")
            want = _library_hash(image, hash_size)
            if np.array_equal(got, want):
                continue
            from PIL import Image

            mistakes = {
                "you compared the cells with their median: the average hash compares each cell with the mean (the "
                "median is what the DCT hash, imagehash.phash, uses).": _variant_hash(image, hash_size, rule="median"),
                "a cell exactly as bright as the mean got the bit True: the rule is strictly brighter (>), as in "
                "imagehash.": _variant_hash(image, hash_size, rule="ge"),
                "your bits are inverted: True should mean brighter than the mean.":
                    _variant_hash(image, hash_size, rule="lt"),
                "you averaged the three channels for grey: imagehash uses PIL's convert('L') (luma: 0.299 R + 0.587 G "
                "+ 0.114 B).": _variant_hash(image, hash_size, grey="mean"),
                "you resized the colour image and converted to grey after: convert to grey first, then resize "
                "(imagehash's order).": _variant_hash(image, hash_size, grey="after"),
                "the cells were shrunk with the bilinear filter: imagehash uses Lanczos (Image.LANCZOS).":
                    _variant_hash(image, hash_size, resample=Image.BILINEAR),
                "the cells were shrunk with the box filter: imagehash uses Lanczos (Image.LANCZOS).":
                    _variant_hash(image, hash_size, resample=Image.BOX),
                "the cells were shrunk with the default (bicubic) filter: imagehash uses Lanczos (Image.LANCZOS).":
                    _variant_hash(image, hash_size, resample=Image.BICUBIC),
                "your bits come column by column: flatten row by row (the default order), as imagehash's .hash "
                "does.": _variant_hash(image, hash_size, order="F"),
            }
            for hint, wrong in mistakes.items():
                if np.array_equal(got, wrong):
                    raise CheckFailed(hint)
            require_properties(_hash_probes(fn, images[0]))
            raise Mismatch(f"on a {image.shape[1]}×{image.shape[0]} image with hash_size={hash_size}, "
                           f"{int((got != want).sum())} of your {want.size} bits differ from imagehash.average_hash.")
    require_properties(_hash_probes(fn, images[0]))
    return "the same bits as imagehash.average_hash on a scene, a banner, noise and an image with ties, at 8×8 and 4×4."


def _hash_probes(fn, image: np.ndarray) -> list[Probe]:
    darker = (image.astype(np.int16) * 0.8).astype(np.uint8)
    brighter = np.clip(darker.astype(np.int16) + 30, 0, 255).astype(np.uint8)
    return [
        Probe("size", lambda: _bits(fn(image, 6), 36).shape == (36,),
              "with hash_size=6 the hash should have 36 bits: shrink to hash_size × hash_size, not a fixed 8 × 8."),
        Probe("brightness", lambda: np.array_equal(_bits(fn(darker, 8), 64), _bits(fn(brighter, 8), 64)),
              "brightening the whole image (no pixel clipped) should not change the hash: each cell is compared "
              "with the mean of the cells of the same image, not with a fixed level such as 128."),
    ]


# --- 8.3 keep the first copy ----------------------------------------------------------------------------------------

# Records 0..5. 0–1 close (2), 1–2 close (3) but 0–2 far: a chain; 3–4 at exactly the threshold (4); 5 alone.
_D = np.array([[0, 2, 9, 9, 9, 9],
               [2, 0, 3, 9, 9, 9],
               [9, 3, 0, 9, 9, 9],
               [9, 9, 9, 0, 4, 9],
               [9, 9, 9, 4, 0, 9],
               [9, 9, 9, 9, 9, 0]])


def _mask(out, n: int) -> np.ndarray:
    if out is None or out is Ellipsis:
        raise Unsolved
    if isinstance(out, torch.Tensor):
        out = out.numpy()
    out = np.asarray(out) if isinstance(out, list) else out
    if not isinstance(out, np.ndarray) or out.shape != (n,):
        raise CheckFailed(f"first_copies should return a boolean keep-mask of shape ({n},), one entry per record; it "
                          f"returned {describe(out)}.")
    return out.astype(bool)


@register("8.3", "keep the first copy", ucuration.first_copies, hints=(
    "Walk the records in order; drop a record when an earlier record that you *kept* is within the threshold.",
    "Section 2, 'Near-duplicates: a perceptual hash': deduplication keeps one copy of each cluster, the first. A "
    "record that only resembles a record already dropped is not a copy of anything kept, so it stays (no chains).",
    "Worked sub-step: keep = np.zeros(n, bool); for record i, look at distances[i, :i] where keep[:i] is True; "
    "record i is kept when none of those is ≤ threshold.",
))
def _check_first_copies(fn) -> str:
    threshold = 4
    d = _D.copy()
    got = _mask(fn(d, threshold), len(_D))
    if not np.array_equal(d, _D):
        raise CheckFailed("your function changed the distance matrix it was given: work on a copy.")
    want = _first_copies(_D, threshold)
    if np.array_equal(got, want):
        require_properties(_copies_probes(fn))
        return "keeps the first of each cluster (records 0, 2, 3 and 5 of the check's six) and never chains."
    near = (_D <= threshold) & ~np.eye(len(_D), dtype=bool)
    mistakes = {
        "record 2 only resembles record 1, which you dropped: it is no copy of anything kept. Compare each record "
        "with the earlier records you *kept*, not with all earlier ones.":
            np.array([not near[i, :i].any() for i in range(len(_D))]),
        "you dropped both copies of a pair: keep the first of each cluster and drop only the later ones.":
            ~near.any(1),
        "records 3 and 4 are at distance 4, exactly the threshold: a distance ≤ threshold counts as a copy (use <=, "
        "not <).": ucuration.first_copies(_D, threshold - 1),
        "you kept the last copy of each cluster: keep the first (walk forwards and compare with earlier records).":
            _first_copies(_D[::-1, ::-1], threshold)[::-1],
        "every record is at distance 0 from itself: compare record i with the records *before* it (distances[i, :i]),"
        " not with its whole row.": np.zeros(len(_D), bool),
        "you returned what to drop: return the keep-mask (True = keep).": ~want,
    }
    for hint, wrong in mistakes.items():
        if np.array_equal(got, wrong):
            raise CheckFailed(hint)
    require_properties(_copies_probes(fn))
    raise Mismatch(f"on the check's six records you keep {got.astype(int).tolist()}, expected "
                   f"{want.astype(int).tolist()}.")


def _copies_probes(fn) -> list[Probe]:
    far = np.full((4, 4), 50) - 50 * np.eye(4, dtype=int)
    return [
        Probe("nothing close", lambda: _mask(fn(far, 4), 4).all(),
              "when no two records are within the threshold, every record should be kept."),
        Probe("first kept", lambda: bool(_mask(fn(np.zeros((3, 3), int), 0), 3)[0]),
              "the first record has nothing before it and must always be kept."),
        Probe("one cluster", lambda: _mask(fn(np.zeros((3, 3), int), 0), 3).tolist() == [True, False, False],
              "three identical records (all distances 0) are one cluster: keep the first and drop the other two."),
    ]


# --- 8.1 precision and recall of a filter -------------------------------------------------------------------------

_FLAGGED = np.array([1, 1, 1, 0, 0, 0, 0, 1, 0, 0], bool)
_TRUTH = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0], bool)


@register("8.1", "a filter's precision and recall", ucuration.precision_recall, hints=(
    "Precision asks: of what the filter removed, how much was bad? Recall asks: of what was bad, how much was "
    "removed?",
    "Section 2, 'Every stage is a filter': with flagged = removed and truth = should go, precision = |flagged ∧ "
    "truth| / |flagged| and recall = |flagged ∧ truth| / |truth|. The exercise's conventions: precision 1.0 when "
    "nothing was flagged, recall 1.0 when nothing should go.",
    "Worked sub-step: hits = (flagged & truth).sum(); here 2 hits, 4 flagged and 3 bad give (0.5, 0.667).",
))
def _check_precision_recall(fn) -> str:
    from sklearn.metrics import precision_score, recall_score

    got = _pair(fn(_FLAGGED.copy(), _TRUTH.copy()), "precision_recall")
    want = (precision_score(_TRUTH, _FLAGGED), recall_score(_TRUTH, _FLAGGED))
    if _close(got, want):
        require_properties(_pr_probes(fn))
        return f"({got[0]:.3f}, {got[1]:.3f}), as sklearn.metrics gives, with the conventions for empty sets."
    accuracy = float((_FLAGGED == _TRUTH).mean())
    mistakes = {
        "your pair is (recall, precision): return (precision, recall).": want[::-1],
        "that is accuracy (agreement over all records): precision divides the hits by what was flagged, recall by "
        "what was truly bad.": (accuracy, accuracy),
        "you divided the hits by the number of records: precision divides by the flagged ones, recall by the bad "
        "ones.": (2 / 10, 2 / 10),
        "you measured the records the filter *kept*: flagged means removed.":
            (precision_score(~_TRUTH, ~_FLAGGED), recall_score(~_TRUTH, ~_FLAGGED)),
    }
    for hint, wrong in mistakes.items():
        if _close(got, tuple(float(w) for w in wrong)):
            raise CheckFailed(hint)
    require_properties(_pr_probes(fn))
    raise Mismatch(f"got ({got[0]:.4f}, {got[1]:.4f}); expected ({want[0]:.4f}, {want[1]:.4f}).")


def _pr_probes(fn) -> list[Probe]:
    truth = _TRUTH
    return [
        Probe("perfect", lambda: _close(_pair(fn(truth.copy(), truth.copy()), "precision_recall"), (1.0, 1.0)),
              "a filter that removes exactly the bad records has precision 1 and recall 1."),
        Probe("everything", lambda: _close(_pair(fn(np.ones(10, bool), truth.copy()), "precision_recall"),
                                           (truth.mean(), 1.0)),
              "a filter that removes everything has recall 1 (nothing bad is left) and precision equal to the "
              "share of bad records."),
        Probe("nothing flagged", lambda: _close(_pair(fn(np.zeros(10, bool), truth.copy()), "precision_recall"),
                                                (1.0, 0.0)),
              "a filter that removes nothing has recall 0, and by the exercise's convention precision 1.0 (it made "
              "no false alarm) — guard the division by zero."),
        Probe("nothing bad", lambda: _close(_pair(fn(_FLAGGED.copy(), np.zeros(10, bool)), "precision_recall"),
                                            (0.0, 1.0)),
              "when nothing should go, recall is 1.0 by the exercise's convention (nothing bad was missed) and "
              "precision is 0 if anything was flagged — guard the division by zero."),
    ]


# --- 8.4 CHAIR --------------------------------------------------------------------------------------------------------

_MENTIONED = [{("red", "circle"), ("blue", "square")}, {("green", "diamond")}, set(),
              {("red", "circle"), ("yellow", "triangle"), ("blue", "square")}, {("purple", "circle")}]
_PRESENT = [{("red", "circle"), ("blue", "square")}, {("green", "square"), ("red", "circle")}, {("red", "circle")},
            {("red", "circle"), ("blue", "square"), ("green", "diamond")}, {("purple", "circle")}]


@register("8.4", "CHAIR", ucuration.chair, hints=(
    "CHAIRi counts objects, CHAIRs counts captions: which named objects are not in the image, and which captions name "
    "at least one such object.",
    "Section 3, 'Scoring captions against the scene graph': CHAIRi = (named objects not present) / (all named "
    "objects, over every caption); CHAIRs = (captions with a hallucinated object) / (captions that name any object). "
    "Objects the image holds but the caption leaves out are not hallucinations (that is recall).",
    "Worked sub-step: per caption, wrong = len(mentioned - present); sum wrong and sum len(mentioned) over captions "
    "for CHAIRi; for CHAIRs count the captions with wrong > 0 among those with a non-empty mention set.",
))
def _check_chair(fn) -> str:
    mentioned, present = [set(m) for m in _MENTIONED], [set(p) for p in _PRESENT]
    got = _pair(fn(mentioned, present), "chair")
    if mentioned != _MENTIONED or present != _PRESENT:
        raise CheckFailed("your function changed the sets it was given: work on copies.")
    want = _chair(_MENTIONED, _PRESENT)
    if _close(got, want):
        require_properties(_chair_probes(fn))
        return f"CHAIRi {got[0]:.3f}, CHAIRs {got[1]:.3f} on the check's five captions."
    wrong = [len(m - p) for m, p in zip(_MENTIONED, _PRESENT)]
    named = [len(m) for m in _MENTIONED]
    mistakes = {
        "your pair is (CHAIRs, CHAIRi): return (CHAIRi, CHAIRs).": want[::-1],
        "CHAIRs should count only the captions that name some object: a caption that names nothing hallucinates "
        "nothing, but it is not evidence either (divide by the captions with a non-empty mention set).":
            (want[0], sum(w > 0 for w in wrong) / len(wrong)),
        "CHAIRi pools the objects of all captions (hallucinated objects / all named objects), not the mean of each "
        "caption's rate.": (float(np.mean([w / n for w, n in zip(wrong, named) if n])), want[1]),
        "you divided by the objects *present*: CHAIR divides by the objects the captions *name* (the present ones "
        "left out are a recall question).": (sum(wrong) / sum(len(p) for p in _PRESENT), want[1]),
        "you counted the named objects that *are* there: CHAIR counts the ones that are not.":
            (1 - want[0], want[1]),
        "you counted the present objects the caption leaves out: CHAIR counts named objects that are not present "
        "(mentioned − present, not present − mentioned).":
            (sum(len(p - m) for m, p in zip(_MENTIONED, _PRESENT)) / sum(named), want[1]),
    }
    for hint, wrong_pair in mistakes.items():
        if _close(got, tuple(float(w) for w in wrong_pair)):
            raise CheckFailed(hint)
    require_properties(_chair_probes(fn))
    raise Mismatch(f"got ({got[0]:.4f}, {got[1]:.4f}); expected ({want[0]:.4f}, {want[1]:.4f}).")


def _chair_probes(fn) -> list[Probe]:
    truthful = [{("red", "circle")}, {("blue", "square"), ("red", "circle")}]
    scenes = [{("red", "circle"), ("green", "diamond")}, {("blue", "square"), ("red", "circle")}]
    return [
        Probe("truthful", lambda: _close(_pair(fn(truthful, scenes), "chair"), (0.0, 0.0)),
              "captions that name only objects that are there score 0 on both: leaving an object out is not a "
              "hallucination."),
        Probe("silent caption", lambda: _close(_pair(fn(truthful + [set()], scenes + [{("red", "circle")}]), "chair"),
                                               (0.0, 0.0)),
              "adding a caption that names nothing should change neither number (and must not divide by zero)."),
        Probe("all wrong", lambda: _close(_pair(fn([{("green", "square")}], [{("red", "circle")}]), "chair"),
                                          (1.0, 1.0)),
              "a caption whose only object is not there scores 1 on both."),
    ]


# --- 8.5 training FLOPs by rule -------------------------------------------------------------------------------------

def _gpt2_step_flops() -> tuple[int, int, dict]:
    """(FlopCounterMode's count of one forward + backward step of a small eager GPT-2, the rule's count, sizes)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=32, vocab_size=100, bos_token_id=0, eos_token_id=0,
                        attn_implementation="eager")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    model.loss_type = "ForCausalLM"      # the default, named (unnamed, transformers warns that it guessed)
    ids = torch.randint(0, 100, (4, 32))

    def step():
        model(ids, labels=ids).loss.backward()

    counted, _ = ucompute.count_flops(step)
    sizes = {"n_params": ucompute.matmul_parameters(model), "tokens": ids.numel(), "layers": 2, "context": 32,
             "width": 64}
    return counted, ucompute.transformer_training_flops(**sizes), sizes


@register("8.5", "training FLOPs by rule", ucompute.transformer_training_flops, hints=(
    "Count a multiply and an add per weight per token for the forward pass, twice that for the backward pass; then "
    "add attention's products, which grow with the context.",
    "Section 5, 'What a training step costs': FLOPs ≈ 6·N·D (N weights that multiply activations, D tokens: 2 in the "
    "forward pass, 4 in the backward), plus 12·L·T·d per token for attention (L layers, context T, width d: Q·Kᵀ and "
    "A·V, forward and backward).",
    "Worked sub-step: with N = 1,000 weights, D = 10 tokens and no attention the step costs 60,000 FLOPs; attention "
    "with L = 2, T = 8, d = 4 adds 12 · 2 · 8 · 4 per token, 7,680 for the 10 tokens.",
))
def _check_training_flops(fn) -> str:
    args = {"n_params": 1000, "tokens": 10, "layers": 2, "context": 8, "width": 4}
    got = _number(fn(**args), "transformer_training_flops")
    want = 6 * 1000 * 10 + 12 * 2 * 8 * 4 * 10
    if got == want:
        require_properties(_flops_probes(fn))
        counted, rule, sizes = _gpt2_step_flops()
        mine = _number(fn(**sizes), "transformer_training_flops")
        return (f"{int(got):,} for the check's sizes; on a real GPT-2 step (2 layers, width 64, 128 tokens) your rule "
                f"says {int(mine):,} and FlopCounterMode counts {counted:,} ({mine / counted:.1%}).")
    mistakes = {
        "that is the forward pass only (2 FLOPs per weight per token): training adds the backward pass, twice the "
        "forward — 6·N·D in all.": 2 * 1000 * 10 + 4 * 2 * 8 * 4 * 10,
        "you left out attention: add 12·L·T·d per token (layers × context × width).": 6 * 1000 * 10,
        "4·N·D counts the backward pass alone: the step is forward (2) + backward (4) = 6 per weight per token.":
            4 * 1000 * 10 + 8 * 2 * 8 * 4 * 10,
        "attention's term is 12·L·T·d per token — the Q·Kᵀ and A·V products are 2·T·d each per token and layer, "
        "forward, times 3 with the backward pass.": 6 * 1000 * 10 + 6 * 2 * 8 * 4 * 10,
        "attention grows with the context once per token (T), not with its square per token: 12·L·T·d·D.":
            6 * 1000 * 10 + 12 * 2 * 8 * 8 * 4 * 10,
        "that is the cost of one token: the step processes D tokens, so multiply every term by the tokens.":
            6 * 1000 + 12 * 2 * 8 * 4,
    }
    for hint, wrong in mistakes.items():
        if got == wrong:
            raise CheckFailed(hint)
    require_properties(_flops_probes(fn))
    raise Mismatch(f"for N=1,000 weights, D=10 tokens, L=2, T=8, d=4 you got {got:,.0f}; the rule gives {want:,}.")


def _flops_probes(fn) -> list[Probe]:
    def flops(**kw) -> float:
        return _number(fn(**{"layers": 0, "context": 0, "width": 0, **kw}), "transformer_training_flops")

    return [
        Probe("no attention", lambda: flops(n_params=500, tokens=3) == 9000,
              "without attention (layers = context = width = 0) a step costs 6 FLOPs per weight per token: 6·N·D."),
        Probe("linear in tokens", lambda: flops(n_params=700, tokens=20, layers=3, context=16, width=8)
              == 2 * flops(n_params=700, tokens=10, layers=3, context=16, width=8),
              "twice the tokens should cost twice the FLOPs: every term is per token."),
    ]


# --- 8.6 gradient accumulation -------------------------------------------------------------------------------------

def _accumulation_setup():
    torch.manual_seed(86)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    x, y = torch.randn(12, 5), torch.randint(0, 3, (12,))

    def loss_fn(m, batch):
        return F.cross_entropy(m(batch[0]), batch[1])

    return model, loss_fn, x, y


def _big_batch_gradient(model, loss_fn, x, y) -> torch.Tensor:
    model.zero_grad()
    loss_fn(model, (x, y)).backward()
    grad = torch.cat([p.grad.flatten() for p in model.parameters()])
    model.zero_grad()
    return grad


def _flat(out, n: int) -> torch.Tensor:
    if out is None or out is Ellipsis:
        raise Unsolved
    if not isinstance(out, torch.Tensor) or out.shape != (n,):
        raise CheckFailed(f"accumulated_gradients should return the gradients as one flat vector of {n} numbers (every "
                          f"parameter's .grad, flattened and concatenated); it returned {describe(out)}.")
    return out.detach()


@register("8.6", "gradient accumulation", ucompute.accumulated_gradients, hints=(
    "Run each micro-batch forward and backward without clearing the gradients in between; scale each loss so that "
    "the sum of the k gradients is the gradient of the mean over the big batch.",
    "Section 5, 'Gradient accumulation': .backward() *adds* into .grad, so k backward passes sum k gradients. The big "
    "batch's loss is the mean over all its examples, which is the mean of the k micro-batch means (equal sizes): "
    "divide each micro-batch's loss by k. Clear the gradients once, before the first micro-batch.",
    "Worked sub-step: model.zero_grad(); for each batch: (loss_fn(model, batch) / k).backward(); then "
    "torch.cat([p.grad.flatten() for p in model.parameters()]).",
))
def _check_accumulation(fn) -> str:
    model, loss_fn, x, y = _accumulation_setup()
    n = sum(p.numel() for p in model.parameters())
    want = _big_batch_gradient(model, loss_fn, x, y)
    micro = [(x[i:i + 3], y[i:i + 3]) for i in range(0, 12, 3)]
    got = _flat(fn(model, loss_fn, micro), n)
    if torch.allclose(got, want, atol=1e-6):
        require_properties(_accumulation_probes(fn))
        return "four micro-batches of 3 give the gradient of one batch of 12 (max difference " \
               f"{(got - want).abs().max().item():.1e})."
    grads = []
    for batch in micro:
        model.zero_grad()
        loss_fn(model, batch).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    model.zero_grad()
    mistakes = {
        "your gradient is k = 4 times too large: divide each micro-batch's loss by the number of micro-batches "
        "(the big batch's loss is a mean, not a sum).": 4 * want,
        "you kept only the last micro-batch's gradient: clear the gradients once before the loop, not before each "
        "micro-batch (.backward() adds into .grad).": grads[-1] / 4,
        "you kept only the last micro-batch's gradient, unscaled: clear the gradients once before the loop, not before "
        "each micro-batch, and divide each loss by k.": grads[-1],
    }
    for hint, wrong in mistakes.items():
        if torch.allclose(got, wrong, atol=1e-6):
            raise CheckFailed(hint)
    require_properties(_accumulation_probes(fn))
    raise Mismatch("your accumulated gradient differs from the big batch's (largest difference "
                   f"{(got - want).abs().max().item():.3g}).")


def _accumulation_probes(fn) -> list[Probe]:
    def stale() -> bool:
        model, loss_fn, x, y = _accumulation_setup()
        n = sum(p.numel() for p in model.parameters())
        want = _big_batch_gradient(model, loss_fn, x, y)
        for p in model.parameters():
            p.grad = torch.ones_like(p)          # gradients left over from an earlier step
        return torch.allclose(_flat(fn(model, loss_fn, [(x[:6], y[:6]), (x[6:], y[6:])]), n), want, atol=1e-6)

    def single() -> bool:
        model, loss_fn, x, y = _accumulation_setup()
        n = sum(p.numel() for p in model.parameters())
        return torch.allclose(_flat(fn(model, loss_fn, [(x, y)]), n), _big_batch_gradient(model, loss_fn, x, y),
                              atol=1e-6)

    return [
        Probe("left-over gradients", stale,
              "gradients left in .grad by an earlier step leaked into your result: clear them (model.zero_grad()) "
              "before the first micro-batch."),
        Probe("one micro-batch", single, "with a single micro-batch the result should be that batch's plain gradient."),
    ]


# --- 8.7 a data-parallel rank's share ------------------------------------------------------------------------------

def _library_shard(order: list[int], rank: int, world_size: int) -> list[int]:
    sampler = torch.utils.data.DistributedSampler(range(len(order)), num_replicas=world_size, rank=rank,
                                                  shuffle=False)
    return [order[i] for i in sampler]


def _index_list(out, what: str = "shard_indices") -> list[int]:
    return int_list(out, f"{what} should return a list of indices")


@register("8.7", "a data-parallel rank's share", udistributed.shard_indices, hints=(
    "Deal the indices like cards: rank r takes positions r, r + world_size, r + 2·world_size… — after making the "
    "list long enough that every rank gets the same number.",
    "Section 6, 'Data-parallel training': DistributedSampler (shuffle=False, drop_last=False) pads the order to the "
    "next multiple of world_size by repeating indices from its start, then gives rank r every world_size-th index "
    "from position r. Equal lengths matter: a rank that runs out first leaves the others waiting for its gradients.",
    "Worked sub-step: for 7 indices on 3 ranks the total is 9, so indices 0 and 1 of the order are appended; rank 1 "
    "then takes positions 1, 4 and 7 of the padded order.",
))
def _check_shard(fn) -> str:
    order = [5, 2, 9, 0, 7, 3, 8]
    cases = [(1, 3), (0, 3), (2, 3), (0, 2), (1, 2), (1, 4), (3, 4)]
    answers = []
    for rank, world in cases:
        given = list(order)
        answers.append(_index_list(fn(given, rank, world)))
        if given != order:
            raise CheckFailed("your function changed the order it was given: work on a copy.")
    wanted = [_library_shard(order, rank, world) for rank, world in cases]
    if answers == wanted:
        require_properties(_shard_probes(fn))
        return "the same shares as torch's DistributedSampler (shuffle=False) for 2, 3 and 4 ranks of a 7-index order."

    def padded(world: int, fill: list[int] | None = None) -> tuple[list[int], int]:
        total = -(-len(order) // world) * world
        return order + (fill or order)[:total - len(order)], total

    mistakes = {
        "you gave each rank a contiguous block: DistributedSampler deals the order out in turn (rank r takes every "
        "world_size-th index starting at position r).":
            lambda r, w: padded(w)[0][r * (padded(w)[1] // w):(r + 1) * (padded(w)[1] // w)],
        "you dropped the last indices to make the shares equal: DistributedSampler (drop_last=False) pads by "
        "repeating the first indices instead, so no example is skipped.":
            lambda r, w: order[:len(order) // w * w][r::w],
        "your shares have different lengths: pad the order to a multiple of world_size (repeat its first indices) so "
        "every rank runs the same number of steps.": lambda r, w: order[r::w],
        "you padded with the *last* index repeated: DistributedSampler repeats the order's first indices.":
            lambda r, w: padded(w, [order[-1]] * w)[0][r::w],
        "rank r starts at position r (ranks count from 0), not r + 1.":
            lambda r, w: padded(w)[0][(r + 1) % w::w][:padded(w)[1] // w],
    }
    for hint, wrong in mistakes.items():
        if answers == [wrong(rank, world) for rank, world in cases]:
            raise CheckFailed(hint)
    require_properties(_shard_probes(fn))
    k = next(i for i, (a, b) in enumerate(zip(answers, wanted)) if a != b)
    rank, world = cases[k]
    raise Mismatch(f"with world_size={world}, rank {rank} of the order {order} should get {wanted[k]}; yours got "
                   f"{answers[k]}.")


def _shard_probes(fn) -> list[Probe]:
    order = list(range(10, 21))                              # 11 indices

    def shares(world: int) -> list[list[int]]:
        return [_index_list(fn(list(order), r, world)) for r in range(world)]

    return [
        Probe("equal lengths", lambda: len({len(s) for s in shares(4)}) == 1,
              "every rank must get the same number of indices (pad the order): with unequal shares one rank finishes "
              "its epoch early and the others wait for its gradients for ever."),
        Probe("covers all", lambda: set().union(*map(set, shares(3))) == set(order),
              "together the ranks must cover every index of the order."),
        Probe("one rank", lambda: _index_list(fn(list(order), 0, 1)) == order,
              "with a single process (world_size 1) its share is the whole order, unchanged."),
    ]


# --- 8.9 the DPO loss ----------------------------------------------------------------------------------------------

def _dpo_inputs() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(88)
    pc, pr = -torch.rand(6, generator=g) * 3, -torch.rand(6, generator=g) * 3
    rc, rr = -torch.rand(6, generator=g) * 3, -torch.rand(6, generator=g) * 3
    return pc, pr, rc, rr


def _paper_dpo(pc, pr, rc, rr, beta):
    """Rafailov et al. (2023), eq. 7: −log σ(β[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))])."""
    return -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean()


def _loss_value(out) -> torch.Tensor:
    if out is None or out is Ellipsis:
        raise Unsolved
    if not isinstance(out, torch.Tensor):
        raise CheckFailed(f"dpo_loss should return a torch.Tensor (a scalar, so that .backward() works); it returned "
                          f"{describe(out)}.")
    if out.numel() != 1:
        raise CheckFailed(f"dpo_loss should return one number, the mean over the batch; it returned {describe(out)}.")
    return out.reshape(())


@register("8.9", "the DPO loss", udpo.dpo_loss, hints=(
    "Compare how much more the policy likes each answer than the reference does, take chosen minus rejected, scale "
    "by β, and push it up through −log σ.",
    "Section 7, 'DPO': each answer's log-ratio is log π(answer) − log π_ref(answer); the margin is the chosen "
    "answer's log-ratio minus the rejected one's; the loss is −log σ(β · margin), averaged over the batch "
    "(Rafailov et al., 2023, eq. 7). It is log 2 when the policy still equals the reference.",
    "Worked sub-step: F.logsigmoid is log σ computed stably; with every log-ratio 0 the loss is −log σ(0) = log 2 ≈ "
    "0.693, and it falls as the chosen answer's log-ratio grows.",
))
def _check_dpo(fn) -> str:
    beta = 0.5
    pc, pr, rc, rr = _dpo_inputs()
    a, b = pc.clone().requires_grad_(True), pr.clone().requires_grad_(True)
    got = _loss_value(fn(a, b, rc.clone(), rr.clone(), beta))
    want = _paper_dpo(pc, pr, rc, rr, beta)
    if torch.allclose(got.detach(), want, atol=1e-6):
        if not got.requires_grad:
            raise CheckFailed("your loss has no gradient: it must be computed from the policy's log-probabilities "
                              "with torch operations (no .item(), no NumPy) so that DPO can train the policy.")
        got.backward()
        x, y = pc.clone().requires_grad_(True), pr.clone().requires_grad_(True)
        _paper_dpo(x, y, rc, rr, beta).backward()
        if a.grad is None or b.grad is None or not (torch.allclose(a.grad, x.grad, atol=1e-6)
                                                   and torch.allclose(b.grad, y.grad, atol=1e-6)):
            raise CheckFailed("right value, wrong gradient: do not detach any part that depends on the policy's "
                              "log-probabilities.")
        require_properties(_dpo_probes(fn))
        return (f"{got.item():.4f}, the paper's equation 7 (trl's sigmoid loss), with the same gradients for the "
                "chosen and rejected log-probabilities.")
    margin = (pc - rc) - (pr - rr)
    mistakes = {
        "β is missing: the margin is scaled by β inside the sigmoid (β says how far from the reference the policy "
        "may go).": -F.logsigmoid(margin).mean(),
        "chosen and rejected are the wrong way round: the loss falls when the *chosen* answer gains on the rejected "
        "one.": -F.logsigmoid(-beta * margin).mean(),
        "the reference model is missing: each answer's term is its log-ratio to the reference, log π − log π_ref.":
            -F.logsigmoid(beta * (pc - pr)).mean(),
        "the reference log-ratios were added: subtract them (log π − log π_ref for each answer).":
            -F.logsigmoid(beta * ((pc + rc) - (pr + rr))).mean(),
        "that is −σ(…) (or 1 − σ): DPO's loss is −log σ(β · margin), the negative log-likelihood of the preference.":
            -torch.sigmoid(beta * margin).mean(),
        "that is 1 − σ(β · margin): DPO's loss is −log σ(β · margin), the negative log-likelihood of the preference.":
            (1 - torch.sigmoid(beta * margin)).mean(),
        "you summed over the batch: take the mean.": -F.logsigmoid(beta * margin).sum(),
        "β multiplies the log-sigmoid instead of the margin: −log σ(β · margin).":
            -beta * F.logsigmoid(margin).mean(),
        "the sign is flipped: the loss is −log σ(…), which is positive and falls as the chosen answer gains.":
            F.logsigmoid(beta * margin).mean(),
    }
    for hint, wrong in mistakes.items():
        if torch.allclose(got.detach(), wrong, atol=1e-6):
            raise CheckFailed(hint)
    require_properties(_dpo_probes(fn))
    raise Mismatch(f"your loss is {got.item():.5f}; equation 7 gives {want.item():.5f}.")


def _dpo_probes(fn) -> list[Probe]:
    pc, pr, rc, rr = _dpo_inputs()

    def value(*args, beta=0.5) -> float:
        return float(_loss_value(fn(*args, beta)).detach())

    return [
        Probe("at the start", lambda: math.isclose(value(rc, rr, rc, rr), math.log(2), rel_tol=1e-5),
              "when the policy equals the reference (policy and reference log-probabilities equal) the loss should "
              "be log 2 ≈ 0.693: every log-ratio is 0 and −log σ(0) = log 2."),
        Probe("chosen gains", lambda: value(pc + 1, pr, rc, rr) < value(pc, pr, rc, rr),
              "raising the policy's log-probability of the chosen answers should lower the loss."),
        Probe("only ratios", lambda: math.isclose(value(pc + 1, pr + 1, rc + 1, rr + 1), value(pc, pr, rc, rr),
                                                  rel_tol=1e-5),
              "adding the same constant to all four log-probabilities should not change the loss: DPO sees the "
              "policy only through its log-ratios to the reference."),
    ]


# --- 8.8 POPE's numbers --------------------------------------------------------------------------------------------

_SAID = np.array([1, 1, 1, 0, 1, 0, 1, 1, 0, 1, 1, 0], bool)
_IS = np.array([1, 1, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0], bool)
POPE_KEYS = ("accuracy", "precision", "recall", "f1", "yes_ratio", "hallucination")


def _pope_dict(out) -> dict[str, float]:
    return number_dict(out, POPE_KEYS, "yes_no_metrics")


@register("8.8", "POPE's numbers", udpo.yes_no_metrics, hints=(
    "Treat \"yes\" as the positive class: precision and recall of the yeses, plus how often the model says yes at "
    "all and how often it says yes when the true answer is no.",
    "Section 7, 'Measuring hallucination': POPE reports accuracy, precision, recall, F1 and the yes-ratio (share of "
    "questions answered yes; a model biased to yes is above the share that should be). The hallucination rate here "
    "is the share of absent-object questions (true answer no) answered yes — the false-positive rate.",
    "Worked sub-step: tp = said & truth, fp = said & ~truth, fn = ~said & truth; precision tp/(tp+fp), recall "
    "tp/(tp+fn), F1 their harmonic mean; hallucination = fp / (number of questions whose answer is no).",
))
def _check_pope(fn) -> str:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    got = _pope_dict(fn(_SAID.copy(), _IS.copy()))
    want = {"accuracy": accuracy_score(_IS, _SAID), "precision": precision_score(_IS, _SAID),
            "recall": recall_score(_IS, _SAID), "f1": f1_score(_IS, _SAID), "yes_ratio": float(_SAID.mean()),
            "hallucination": float(_SAID[~_IS].mean())}
    wrong_keys = [k for k in POPE_KEYS if abs(got[k] - want[k]) > 1e-6]
    if not wrong_keys:
        require_properties(_pope_probes(fn))
        return ("accuracy, precision, recall and F1 as sklearn.metrics gives them, yes-ratio and hallucination rate "
                "as POPE defines them.")
    key = wrong_keys[0]
    mistakes = {
        "precision": {"precision and recall are swapped: precision = tp / (everything answered yes), recall = tp / "
                      "(everything whose true answer is yes).": want["recall"]},
        "recall": {"precision and recall are swapped: precision = tp / (everything answered yes), recall = tp / "
                   "(everything whose true answer is yes).": want["precision"]},
        "f1": {"F1 is the harmonic mean of precision and recall, 2PR / (P + R), not their arithmetic mean.":
               (want["precision"] + want["recall"]) / 2},
        "yes_ratio": {"the yes-ratio counts the *model's* answers (the share it answered yes), not the share of "
                      "questions whose true answer is yes.": float(_IS.mean())},
        "hallucination": {
            "that is 1 − precision (the share of the yeses that are wrong): the hallucination rate here is the "
            "share of absent-object questions (true answer no) answered yes.": 1 - want["precision"],
            "you divided the wrong yeses by all questions: divide by the questions whose true answer is no.":
                float((_SAID & ~_IS).mean()),
            "that is the share of present objects answered no (a miss rate): hallucination is saying yes when the "
            "answer is no.": float((~_SAID[_IS]).mean())},
        "accuracy": {},
    }
    for hint, wrong in mistakes[key].items():
        if abs(got[key] - wrong) < 1e-6:
            raise CheckFailed(hint)
    require_properties(_pope_probes(fn))
    raise Mismatch(f"{key} is {got[key]:.4f}; expected {want[key]:.4f}.")


def _pope_probes(fn) -> list[Probe]:
    truth = _IS

    def metrics(said) -> dict[str, float]:
        return _pope_dict(fn(np.asarray(said, bool), truth.copy()))

    return [
        Probe("always yes", lambda: (lambda m: m["yes_ratio"] == 1 and m["hallucination"] == 1 and m["recall"] == 1)(
            metrics(np.ones(len(truth)))),
              "a model that always answers yes has yes-ratio 1, recall 1 and hallucination rate 1."),
        Probe("perfect", lambda: (lambda m: m["accuracy"] == 1 and m["hallucination"] == 0 and m["f1"] == 1)(
            metrics(truth)), "a model that is always right has accuracy 1, F1 1 and hallucination rate 0."),
    ]
