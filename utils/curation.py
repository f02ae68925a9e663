"""Data curation, stage by stage — deduplication, safety, size, burnt-in text, CLIP score, recaptioning — each stage
scored against the truth (Phase 8).

A web-scale pipeline removes exact duplicates by a hash of the bytes, then near-duplicates by a *perceptual* hash —
a short bit string that changes little when the picture changes little — compared with a Hamming-distance
threshold. Every stage is a filter, and a filter is judged by its precision (of what it removed, how
much was truly bad) and recall (of what was truly bad, how much it removed). The shapes-world crawl
(:mod:`utils.world.crawl`) carries the truth, so both can be measured.

* :func:`exact_key`, :func:`first_of_each` — exact deduplication by a hash of the bytes;
* :func:`average_hash` — the reference of the learner's perceptual hash, the same bits as ``imagehash.average_hash``;
* :func:`hamming_matrix`, :func:`first_copies` — pairwise distances and the keep-the-first rule of deduplication;
* :func:`unsafe_share`, :func:`overlay_score`, :func:`size_ok` — the crawl's safety stand-in, burnt-in text,
  thumbnails and banners;
* :func:`clip_scores` — DataComp's CLIP score (cosine of image and alt-text embeddings) with any open_clip model;
* :func:`precision_recall` — a filter scored against the truth;
* :func:`run_pipeline` — the six stages in order (:data:`STAGES`), each one's keep-mask;
* :func:`read_scenes`, :func:`describe_scenes`, :func:`recaption` — synthetic captions composed from the zoo VLM's
  answers about an image;
* :func:`mentioned_objects`, :func:`chair`, :func:`caption_scores` — any caption (alt text or synthetic) scored
  against the scene graph: CHAIR's hallucinated share of the objects it names, and the share of the scene's objects
  it names.

The unsafe filter here matches the crawl's stand-in pattern by colour. That is the shape of the real thing — matching
against a list of known material, which child-safety organisations run as hash-matching services, plus trained
classifiers — and nothing more: no rule written by hand is a safety filter for real data.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from .world.crawl import HAZARD_RGB
from .world.language import caption
from .world.scene import Obj, Scene
from .world.vocabulary import COLORS, NUMBER_WORDS, SHAPES, SIZES


def exact_key(data: bytes) -> str:
    """The exact-deduplication key of an encoded image: the hex SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


def first_of_each(keys: Sequence[str]) -> np.ndarray:
    """Boolean mask: True where a key appears for the first time (exact dedup keeps the first copy)."""
    seen: set[str] = set()
    keep = np.zeros(len(keys), dtype=bool)
    for i, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            keep[i] = True
    return keep


def average_hash(image: np.ndarray | Image.Image, hash_size: int = 8) -> np.ndarray:
    """Average hash (aHash): the image in grey levels, shrunk to ``hash_size``×``hash_size`` with a Lanczos filter;
    bit (r, c) is whether that cell is brighter than the mean of all cells. Returns a flat bool array of
    ``hash_size**2`` bits, row-major — the bits of ``imagehash.average_hash(image, hash_size).hash.flatten()``."""
    image = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    pixels = np.asarray(image.convert("L").resize((hash_size, hash_size), Image.LANCZOS))
    return (pixels > pixels.mean()).flatten()


def hamming_matrix(hashes: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances (N, N) between the rows of ``hashes`` (N, bits), bool."""
    h = np.asarray(hashes, dtype=np.float32)       # float matmuls use BLAS; counts below 2**24 are exact
    return (h @ (1 - h).T + (1 - h) @ h.T).round().astype(np.int32)


def first_copies(distances: np.ndarray, threshold: int) -> np.ndarray:
    """Near-deduplication's keep mask: walk the records in order and drop a record when a *kept* earlier record lies
    within ``threshold`` (distance ≤ threshold) — the first copy of each cluster is kept."""
    keep = np.zeros(len(distances), dtype=bool)
    for i in range(len(distances)):
        keep[i] = not (distances[i, :i][keep[:i]] <= threshold).any()
    return keep


def precision_recall(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(precision, recall) of a filter: ``flagged`` = what it removed, ``truth`` = what should go (bool masks).
    Precision is 1.0 when nothing was flagged; recall is 1.0 when nothing should go."""
    flagged, truth = np.asarray(flagged, bool), np.asarray(truth, bool)
    hits = int((flagged & truth).sum())
    return (hits / flagged.sum() if flagged.any() else 1.0), (hits / truth.sum() if truth.any() else 1.0)


def unsafe_share(image: np.ndarray, marker: tuple[int, int, int] = HAZARD_RGB[0], tolerance: int = 80) -> float:
    """Share of pixels within ``tolerance`` (sum of channel differences) of the crawl's unsafe marker colour; the
    stand-in's band covers several percent of an image, nothing else does."""
    return float((np.abs(np.asarray(image, dtype=np.int32) - np.array(marker)).sum(-1) < tolerance).mean())


def overlay_score(image: np.ndarray) -> float:
    """Share of dark, colourless pixels (brightest channel < 130, channels within 40 of each other): burnt-in letters
    are dark grey, the world's shapes are saturated and its background light — an OCR-free text detector."""
    x = np.asarray(image, dtype=np.int32)
    brightest, darkest = x.max(-1), x.min(-1)
    return float(((brightest < 130) & (brightest - darkest < 40)).mean())


def size_ok(size: tuple[int, int], min_side: int = 24, max_aspect: float = 2.5) -> bool:
    """The resolution and aspect-ratio filter: both sides at least ``min_side`` pixels, long side at most
    ``max_aspect`` times the short one. ``size`` is (width, height)."""
    w, h = size
    return min(w, h) >= min_side and max(w, h) <= max_aspect * min(w, h)


@torch.no_grad()
def clip_scores(model, tokenizer: Callable, images: Sequence[np.ndarray], texts: Sequence[str],
                image_size: int = 32) -> np.ndarray:
    """CLIP score of each (image, text) pair: the cosine of the two L2-normalised embeddings (DataComp's filter).
    Images of any size are resized to ``image_size`` (box filter) and normalised as the course's CLIP expects;
    empty texts are scored as a single space."""
    from .clip import encode_images, encode_texts, normalize_images

    image_emb = encode_images(model, normalize_images(small_images(images, image_size)))
    text_emb = encode_texts(model, tokenizer, [t or " " for t in texts])
    return (image_emb * text_emb).sum(-1).numpy()


# ----------------------------------------------------------------------------------------------------------
# Recaptioning: synthetic captions from a VLM's answers, scored against the scene graph

OBJECT_CLASSES: tuple[tuple[str, str], ...] = tuple((c, s) for c in COLORS for s in SHAPES)
COUNT_WORDS: tuple[str, ...] = NUMBER_WORDS[1:5]  # the VLM answers counts in words
_OBJECT = re.compile(rf"\b(?:({'|'.join(SIZES)}) )?({'|'.join(COLORS)}) ({'|'.join(SHAPES)})\b")


def chosen_classes(log_odds: torch.Tensor, count: int) -> list[int]:
    """The classes a caption should name: the ``count`` with the highest log-odds of "yes" to "is there a <colour>
    <shape>?" (``log_odds`` (len(OBJECT_CLASSES),)), in OBJECT_CLASSES order — the count answer decides how many,
    the existence answers which."""
    return sorted(torch.topk(log_odds, count).indices.tolist())


def _yes_odds(vlm, features: torch.Tensor, rows: Sequence[tuple[int, str]], batch_size: int) -> torch.Tensor:
    """Log-odds of "yes" over "no" for (image index, question) ``rows``."""
    if not rows:
        return torch.zeros(0)
    scores = vlm.answer_scores(features[[i for i, _ in rows]], [q for _, q in rows], ("yes", "no"), batch_size)
    return scores[:, 0] - scores[:, 1]


@torch.no_grad()
def read_scenes(vlm, features: torch.Tensor, batch_size: int = 512) -> list[Scene]:
    """Scene graphs read off a VLM's answers about images given as its grid ``features`` (B, N, C): how many
    objects; for each of the 24 (colour, shape) classes, is there one (:func:`chosen_classes`); what size each is;
    and, for every pair, is one left of / above the other. An object's x (y) is the share of the others it is
    answered to be right of (below), weighted by the answers' probabilities: a clear ordering spreads the values
    out, objects level with each other stay near the middle. ``vlm`` is a :class:`utils.vlm.TinyVLM` (any object
    with ``answer_scores``)."""
    n = len(features)
    count_scores = vlm.answer_scores(features, ["how many objects are there?"] * n, COUNT_WORDS, batch_size)
    counts = (count_scores.argmax(1) + 1).tolist()
    questions = [f"is there a {c} {s}?" for c, s in OBJECT_CLASSES]
    log_odds = _yes_odds(vlm, features, [(i, q) for i in range(n) for q in questions], batch_size).view(n, -1)
    chosen = [[OBJECT_CLASSES[c] for c in chosen_classes(log_odds[i], counts[i])] for i in range(n)]
    size_rows = [(i, f"what size is the {c} {s}?") for i in range(n) for c, s in chosen[i]]
    size_scores = vlm.answer_scores(features[[i for i, _ in size_rows]], [q for _, q in size_rows], SIZES,
                                    batch_size) if size_rows else torch.zeros(0, 2)
    sizes = iter(SIZES[k] for k in size_scores.argmax(1).tolist())
    pairs = [(i, a, b, relation) for i in range(n) for a in chosen[i] for b in chosen[i] if a != b
             for relation in ("left of", "above")]
    apart = _yes_odds(vlm, features, [(i, f"is the {' '.join(a)} {relation} the {' '.join(b)}?")
                                      for i, a, b, relation in pairs], batch_size).sigmoid()
    beyond: dict[tuple[int, tuple[str, str], str], float] = {}   # (image, object, axis) -> sum of P(other before it)
    for (i, _, b, relation), p in zip(pairs, apart.tolist()):
        key = (i, b, "x" if relation == "left of" else "y")
        beyond[key] = beyond.get(key, 0.0) + p
    scenes = []
    for i in range(n):
        others = max(len(chosen[i]) - 1, 1)
        scenes.append(Scene(tuple(Obj(shape, color, next(sizes), beyond.get((i, (color, shape), "x"), 0.0) / others,
                                      beyond.get((i, (color, shape), "y"), 0.0) / others)
                                  for color, shape in chosen[i])))
    return scenes


def describe_scenes(scenes: Sequence[Scene], seed: int = 0, varied: bool = True) -> list[str]:
    """Captions of scene graphs by the world's captioner. ``varied``: one of its five paraphrases per scene, objects
    in a random order (seeded), as a sampling captioner varies its wording; otherwise always the first pattern, objects
    in the order read — one sentence shape, which a CLIP learns instead of the images (the caption ablation shows it).
    """
    if not varied:
        return [caption(scene, template=0) for scene in scenes]
    rng = np.random.default_rng([seed, 88])
    return [caption(Scene(tuple(s.objects[k] for k in rng.permutation(len(s)))), rng) for s in scenes]


def recaption(vlm, features: torch.Tensor, seed: int = 0, varied: bool = True, batch_size: int = 512) -> list[str]:
    """Synthetic captions: the scene graph read off the VLM's answers (:func:`read_scenes`), written out by
    :func:`describe_scenes`."""
    return describe_scenes(read_scenes(vlm, features, batch_size), seed, varied)


def mentioned_objects(text: str) -> set[tuple[str | None, str, str]]:
    """The objects a caption names, as (size or None, colour, shape): "a small red circle and a blue square" gives
    {("small", "red", "circle"), (None, "blue", "square")}."""
    return {(m[1], m[2], m[3]) for m in _OBJECT.finditer(text.lower())}


def chair(mentioned: Sequence[set], present: Sequence[set]) -> tuple[float, float]:
    """CHAIR (Rohrbach et al., 2018) of captions: ``mentioned[k]`` the objects caption k names, ``present[k]`` the
    objects its image holds (sets of hashable objects, e.g. (colour, shape)). Returns (CHAIRi, CHAIRs): the share of
    all named objects that are not in their image, and the share of the captions that name any object which name at
    least one that is not there (captions that name nothing count in neither)."""
    named = sum(len(m) for m in mentioned)
    wrong = [len(set(m) - set(p)) for m, p in zip(mentioned, present)]
    naming = [w for w, m in zip(wrong, mentioned) if m]
    return sum(wrong) / named if named else 0.0, sum(w > 0 for w in naming) / len(naming) if naming else 0.0


def caption_scores(captions: Sequence[str], scenes: Sequence[Scene]) -> dict[str, float]:
    """Captions scored against their scenes, over (colour, shape) objects:

    * ``chair_i``, ``chair_s``   CHAIR's two hallucination rates (:func:`chair`);
    * ``recall``                 the scene's objects named / the scene's objects;
    * ``exact``                  captions naming exactly the scene's objects, each with its right size / all captions.
    """
    said = [mentioned_objects(text) for text in captions]
    truth = [{(o.size, o.color, o.shape) for o in scene.objects} for scene in scenes]
    kinds = [{(c, s) for _, c, s in m} for m in said]
    true_kinds = [{(c, s) for _, c, s in t} for t in truth]
    chair_i, chair_s = chair(kinds, true_kinds)
    total = sum(len(t) for t in true_kinds)
    return {"chair_i": chair_i, "chair_s": chair_s,
            "recall": sum(len(k & t) for k, t in zip(kinds, true_kinds)) / max(total, 1),
            "exact": sum(m == t for m, t in zip(said, truth)) / max(len(captions), 1)}


def caption_recalls(captions: Sequence[str], scenes: Sequence[Scene]) -> np.ndarray:
    """Per caption, the share of its scene's (colour, shape) objects that it names: the per-example outcome behind
    :func:`caption_scores`' ``recall`` (which pools the objects of all scenes instead of averaging scenes)."""
    named = [{(c, sh) for _, c, sh in mentioned_objects(text)} for text in captions]
    return np.array([len(n & {(o.color, o.shape) for o in scene.objects}) / len(scene.objects)
                     for n, scene in zip(named, scenes)])


def captioning_quality(vlm, features: torch.Tensor, scenes: Sequence[Scene]) -> dict[str, float]:
    """How well a VLM captions: its greedy continuation of the bare ``<image>`` prompt for each image's grid
    ``features``, scored against the ``scenes`` by :func:`caption_scores`; with ``captions``, the captions."""
    with torch.no_grad():
        captions = vlm.generate_text(features, ["<image>"] * len(features))
    return {**caption_scores(captions, scenes), "captions": captions}


# ----------------------------------------------------------------------------------------------------------
# The pipeline, stage by stage

STAGES: tuple[str, ...] = ("exact_dedup", "unsafe", "size", "near_dedup", "overlay", "clip_score")


def small_images(images: Sequence[np.ndarray], image_size: int = 32) -> np.ndarray:
    """Images of any size and aspect as one uint8 array (N, S, S, 3): each resized to ``image_size`` square with a
    box filter — what a training loader does to whatever it is given (a banner comes out squashed)."""
    return np.stack([np.asarray(Image.fromarray(np.asarray(im, dtype=np.uint8)).convert("RGB").resize(
        (image_size, image_size), Image.BOX)) for im in images])


def run_pipeline(records: Sequence, images: Sequence[np.ndarray], scores: np.ndarray, *, hash_size: int = 16,
                 threshold: int = 8, unsafe_above: float = 0.02, overlay_above: float = 0.002,
                 keep: float = 0.4) -> dict[str, np.ndarray]:
    """The seed's pipeline over crawl ``records`` (their decoded ``images`` and CLIP ``scores`` of image and alt
    text): for each stage in :data:`STAGES`, in order, the boolean mask of records still kept after it. Each stage
    looks only at what the stages before it kept; the CLIP-score stage keeps the top ``keep`` share of what is left.

    The order: exact duplicates cost nothing to find; the safety filter comes before anything looks at the
    pictures; thumbnails and banners go before the perceptual hash, which they would confuse (a banner is mostly
    background, so banners look alike); the CLIP score, the costliest, comes last.
    """
    kept: dict[str, np.ndarray] = {}
    alive = first_of_each([exact_key(r.data) for r in records])
    kept["exact_dedup"] = alive.copy()
    alive &= np.array([unsafe_share(im) <= unsafe_above for im in images])
    kept["unsafe"] = alive.copy()
    alive &= np.array([size_ok(r.size) for r in records])
    kept["size"] = alive.copy()
    index = np.flatnonzero(alive)
    hashes = np.stack([average_hash(images[i], hash_size) for i in index])
    alive[index[~first_copies(hamming_matrix(hashes), threshold)]] = False
    kept["near_dedup"] = alive.copy()
    alive &= np.array([overlay_score(im) <= overlay_above for im in images])
    kept["overlay"] = alive.copy()
    alive &= scores >= np.quantile(scores[alive], 1 - keep)
    kept["clip_score"] = alive.copy()
    return kept


def stage_sampler(stages: Sequence[tuple[np.ndarray, int]], batch_size: int):
    """A batch sampler for :func:`utils.clip.train_clip` that follows a schedule: ``stages`` are (indices, steps),
    batches drawn uniformly from the first stage's indices for its steps, then from the next's, and so on (the last
    stage goes on for ever). One stage over the union of two sets is plain mixing."""
    plan = [(torch.as_tensor(np.asarray(index)), steps) for index, steps in stages]
    done = 0

    def draw(generator: torch.Generator) -> torch.Tensor:
        nonlocal done
        ends = np.cumsum([steps for _, steps in plan])
        index = plan[min(int(np.searchsorted(ends, done, side="right")), len(plan) - 1)][0]
        done += 1
        return index[torch.randint(0, len(index), (batch_size,), generator=generator)]

    return draw
