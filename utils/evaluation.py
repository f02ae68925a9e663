"""Evaluation built from the world (Phase 9): POPE's three splits of existence questions, a suite's per-example
outcomes (:func:`suite_outcomes`), distribution shifts (:func:`shifted_images`), one model under several prompt
templates and answer-extraction rules (:func:`template_outcomes`), a pairwise judge's verdicts in both orders
(:func:`swap_verdicts`), n-gram contamination search (:func:`ngram_contamination`) and the planting of benchmark
items into a training schedule (:func:`plant_copies`).

POPE (Li et al., 2023) asks a VLM yes/no questions about objects, half about objects in the image and half about
objects that are not. How the absent objects are chosen decides how hard the probe is:

* ``random``       any class the image does not hold;
* ``popular``      the classes most frequent in the dataset, when absent;
* ``adversarial``  the classes that co-occur most often with what *is* in the image, when absent — a model that
                   learned "a red circle comes with a blue square" says yes to the square that is not there.

Frequencies and co-occurrences are counted over a reference set of scenes (the training set, as POPE counts them over
COCO's annotations). The "yes" questions and the random tie-breaking are the same in every split, so the three
splits differ only in their negatives. The metrics are :func:`utils.metrics.yes_no_metrics`; the bootstrap intervals
:func:`utils.metrics.bootstrap_ci`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .world.scene import Scene
from .world.vocabulary import COLORS, NUMBER_WORDS, SHAPES, SIZES

SHIFTS: tuple[str, ...] = ("clean", "dark background", "low resolution", "colour jitter", "noise")
TEMPLATES: dict[str, str] = {"trained": "question: {q} <image> answer:", "image first": "<image> question: {q} answer:",
                             "no labels": "{q} <image>", "Q: ... A:": "Q: {q} <image> A:",
                             "the answer is": "question: {q} <image> the answer is"}
EXTRACTIONS: tuple[str, ...] = ("answer words", "the kind's options", "any word")
CLASSES: tuple[tuple[str, str], ...] = tuple((c, s) for c in COLORS for s in SHAPES)
POPE_SPLITS: tuple[str, ...] = ("random", "popular", "adversarial")


def existence_question(color: str, shape: str) -> str:
    """The world's existence question, as the zoo VLM was taught it: "is there a red circle?"."""
    return f"is there a {color} {shape}?"


def class_statistics(scenes: Sequence[Scene]) -> tuple[np.ndarray, np.ndarray]:
    """How often each of the 24 (colour, shape) classes (:data:`CLASSES` order) occurs in ``scenes``, and how often
    each pair of classes occurs in the same scene (a symmetric 24×24 matrix, zero diagonal)."""
    index = {c: i for i, c in enumerate(CLASSES)}
    frequency = np.zeros(len(CLASSES), dtype=np.int64)
    together = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    for scene in scenes:
        ids = [index[(o.color, o.shape)] for o in scene.objects]
        frequency[ids] += 1
        for a in ids:
            for b in ids:
                together[a, b] += a != b
    return frequency, together


def pope_negatives(present: Sequence[int], candidates: np.ndarray, split: str, frequency: np.ndarray,
                   together: np.ndarray, k: int) -> list[int]:
    """The ``k`` absent classes a POPE ``split`` asks about: ``candidates`` (absent class ids, already in a random
    order) kept in that order (random), or stably ranked by dataset frequency (popular), or by how often they
    appeared together with the present classes (adversarial)."""
    if split == "random":
        return [int(c) for c in candidates[:k]]
    if split == "popular":
        score = frequency[candidates]
    elif split == "adversarial":
        score = together[np.asarray(present)][:, candidates].sum(0)
    else:
        raise ValueError(f"split must be one of {POPE_SPLITS}, got {split!r}")
    return [int(c) for c in candidates[np.argsort(-score, kind="stable")[:k]]]


def pope_probe(scenes: Sequence[Scene], split: str = "random", per_scene: int = 2, seed: int = 0,
               holdout: frozenset[tuple[str, str]] = frozenset(), reference: Sequence[Scene] | None = None
               ) -> list[tuple[int, str, str]]:
    """POPE's probe over ``scenes``: for each scene, ``per_scene`` questions about objects present (answer "yes")
    and as many about absent classes (answer "no") chosen by ``split`` (never a ``holdout`` class), with class
    statistics from ``reference`` scenes (default: ``scenes`` themselves). Returns (scene index, question, answer)
    rows; the "yes" rows are the same for every split."""
    frequency, together = class_statistics(scenes if reference is None else reference)
    index = {c: i for i, c in enumerate(CLASSES)}
    rng = np.random.default_rng([seed, 91])
    rows = []
    for i, scene in enumerate(scenes):
        present = [index[(o.color, o.shape)] for o in scene.objects]
        absent = np.array([j for j, c in enumerate(CLASSES) if j not in present and c not in holdout])
        for k in rng.permutation(len(present))[:per_scene]:
            rows.append((i, existence_question(*CLASSES[present[k]]), "yes"))
        order = absent[rng.permutation(len(absent))]
        for j in pope_negatives(present, order, split, frequency, together, per_scene):
            rows.append((i, existence_question(*CLASSES[j]), "no"))
    return rows


def suite_outcomes(model, world, qa_scenes: int = 1000, caption_scenes: int = 300, grounding_scenes: int = 200,
                   pope_scenes: int = 500, reference_scenes: int = 12000, bins: int = 8) -> dict[str, np.ndarray]:
    """A VLM's per-example outcomes on held-out (``"val"``) scenes of ``world``, one array per row of an evaluation
    suite, each ready for a bootstrap:

    * ``QA: <kind>``          1/0 per question, the world's six kinds on ``qa_scenes`` scenes (``count`` is counting);
    * ``captioning: recall``  per greedy caption of the bare ``<image>`` prompt, the share of the scene's objects named;
    * ``grounding: IoU`` and ``grounding: IoU > 0.5``  per object of ``grounding_scenes`` scenes ("where is the red
      circle?"); a model without the box tokens answers no box, IoU 0;
    * ``POPE <split>``        1/0 per existence question of POPE's three splits on ``pope_scenes`` scenes, class
      statistics over ``reference_scenes`` train scenes.
    """
    import torch

    from .clip import normalize_images
    from .curation import caption_recalls
    from .vlm import answer_words, grounding_examples, grounding_ious
    from .vqa import correct_answers, vqa_examples

    model.eval()
    n = max(qa_scenes, caption_scenes, grounding_scenes, pope_scenes)
    images, scenes = world.arrays("val", n)
    with torch.no_grad():
        features = model.image_features(normalize_images(images).to(model.device))
    _, pairs = vqa_examples(world, "val", qa_scenes)
    right = correct_answers(model.answer_scores(features[[i for i, _ in pairs]], [qa.question for _, qa in pairs]),
                            pairs)
    kinds = np.array([qa.kind for _, qa in pairs])
    out = {f"QA: {kind}": right[kinds == kind] for kind in dict.fromkeys(kinds.tolist())}
    captions = model.generate_text(features[:caption_scenes], ["<image>"] * caption_scenes)
    out["captioning: recall"] = caption_recalls(captions, scenes[:caption_scenes])
    _, rows = grounding_examples(world, "val", grounding_scenes, bins)
    ious = grounding_ious(model, features, rows, bins)
    out["grounding: IoU"], out["grounding: IoU > 0.5"] = ious, ious > 0.5
    reference = world.scenes("train", reference_scenes)
    for split in POPE_SPLITS:
        probe = pope_probe(scenes[:pope_scenes], split, reference=reference)
        out[f"POPE {split}"] = answer_words(model, features, probe) == np.array([a for *_, a in probe])
    return out


def shifted_images(scenes: Sequence[Scene], shift: str, image_size: int = 32, seed: int = 0) -> np.ndarray:
    """``scenes`` drawn as a distribution shift shows them, uint8 (N, S, S, 3): ``clean`` (as trained); ``dark
    background`` (the canvas at grey 60 instead of 235); ``low resolution`` (drawn at 16 px, enlarged back with
    bilinear interpolation); ``colour jitter`` (each channel of each image scaled by its own random factor in
    [0.75, 1.25]); ``noise`` (Gaussian, σ = 25 grey levels). The scenes, and so the right answers, do not change."""
    from PIL import Image

    from .world.rendering import render

    if shift not in SHIFTS:
        raise ValueError(f"shift must be one of {SHIFTS}, got {shift!r}")
    if shift == "dark background":
        return np.stack([render(s, image_size, background=(60, 60, 60)) for s in scenes])
    if shift == "low resolution":
        return np.stack([np.asarray(Image.fromarray(render(s, 16)).resize((image_size, image_size), Image.BILINEAR))
                         for s in scenes])
    images = np.stack([render(s, image_size) for s in scenes]).astype(np.float64)
    rng = np.random.default_rng([seed, 93])
    if shift == "colour jitter":
        images *= rng.uniform(0.75, 1.25, size=(len(images), 1, 1, 3))
    elif shift == "noise":
        images += rng.normal(0, 25, size=images.shape)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def kind_options(kind: str) -> tuple[str, ...]:
    """The answer words a question of ``kind`` chooses among (its multiple-choice options)."""
    return {"color": COLORS, "shape": SHAPES, "size": SIZES, "count": NUMBER_WORDS[:5]}.get(kind, ("yes", "no"))


def template_outcomes(model, features, pairs, template: str, extraction: str) -> np.ndarray:
    """1/0 per (image index, QA) pair: the VLM asked with prompt ``template`` (``{q}`` the question, one
    ``<image>``), its answer read off the next word's probabilities by ``extraction``: the best of the 19 ``answer
    words``, the best of ``the kind's options`` (:func:`kind_options`), or ``any word`` of its vocabulary (what
    greedy decoding would say first)."""
    import torch

    from .vqa import ANSWERS, answer_word

    with torch.no_grad():
        logprobs = model.next_word_logprobs(features[[i for i, _ in pairs]],
                                            [template.format(q=qa.question) for _, qa in pairs])
    vocab = model.tokenizer
    if extraction == "any word":
        said = vocab.convert_ids_to_tokens(logprobs.argmax(1).tolist())
    elif extraction in ("answer words", "the kind's options"):
        said = []
        for row, (_, qa) in zip(logprobs, pairs):
            options = ANSWERS if extraction == "answer words" else kind_options(qa.kind)
            said.append(options[int(row[vocab.convert_tokens_to_ids(list(options))].argmax())])
    else:
        raise ValueError(f"extraction must be one of {EXTRACTIONS}, got {extraction!r}")
    return np.array([w == answer_word(qa) for w, (_, qa) in zip(said, pairs)])


def swap_verdicts(ab: Sequence[str], ba: Sequence[str]) -> np.ndarray:
    """MT-Bench's rule for a pairwise judge with position bias: judge every pair of answers (A, B) twice, A shown
    first (``ab``) and B shown first (``ba``), each verdict the position picked, ``"first"`` or ``"second"``. A wins
    only when both orders pick it (``ab`` "first" and ``ba`` "second"), B likewise; when the two orders disagree the
    judge followed the position, not the answers: a tie. Returns "A", "B" or "tie" per pair."""
    ab, ba = np.asarray(ab), np.asarray(ba)
    a_wins = (ab == "first") & (ba == "second")
    b_wins = (ab == "second") & (ba == "first")
    return np.where(a_wins, "A", np.where(b_wins, "B", "tie"))


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """The set of ``n``-word sequences of ``text``, lower-cased, words split on whitespace and stripped of
    punctuation at their ends."""
    words = [w.strip(".,;:!?\"'()").lower() for w in text.split()]
    words = [w for w in words if w]
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def ngram_contamination(texts: Sequence[str], benchmark: Sequence[str], n: int = 8) -> np.ndarray:
    """Which training ``texts`` contain a benchmark item: a text is flagged when it shares at least one ``n``-word
    sequence with any item of ``benchmark`` (the test GPT-3 and PaLM ran on their training data, with 13 words;
    shorter items need a smaller n). Returns a boolean array, one entry per text."""
    planted = set().union(*(word_ngrams(item, n) for item in benchmark)) if benchmark else set()
    return np.array([bool(word_ngrams(text, n) & planted) for text in texts], dtype=bool)


def plant_copies(rows: np.ndarray, items: dict[int, np.ndarray], seed: int = 0) -> np.ndarray:
    """A contaminated copy of a training schedule. ``rows`` holds the example (a row index) seen at each position
    of a run; ``items`` maps a number of copies k to the rows of the benchmark items planted k times. The copies
    take the places of randomly chosen positions, so a clean and a contaminated run see equally many examples and
    differ only in what the copies displaced."""
    copies = np.concatenate([np.repeat(np.asarray(v), k) for k, v in items.items()]) if items else np.array([], int)
    if len(copies) > len(rows):
        raise ValueError(f"{len(copies)} copies do not fit into a schedule of {len(rows)} examples")
    out = np.array(rows, copy=True)
    out[np.random.default_rng(seed).choice(len(rows), len(copies), replace=False)] = copies
    return out
