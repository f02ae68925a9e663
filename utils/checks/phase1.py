"""Checks for the Phase 1 exercises (foundations: taxonomy, modality gap, retrieval).

Oracles: the course's answer key with an explanation per model (1.1), scikit-learn's PCA (1.3),
``F.cosine_similarity`` and ``torch.topk`` (1.2, 1.4, 1.6, 1.7). After the known mistakes, each check probes the
properties every right answer has (a distance is symmetric and rotation-invariant, PCA coordinates are centred
and ordered by variance, a cosine ignores length, Recall@K is 1 for perfect retrieval...), so that a mistake
nobody listed still gets a hint naming what it breaks.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .. import embeddings as uembeddings
from .. import metrics
from . import CheckFailed, Mismatch, Unsolved, register
from .oracles import Probe, broken, describe, diagnose, require_tensor, unit_length

# --- 1.1 classify real models -------------------------------------------------------------------------

FAMILIES = ("dual-encoder", "encoder-decoder", "unified")
FUSIONS = ("late", "middle", "early")
OBJECTIVES = ("contrastive", "next-token", "contrastive+next-token", "next-token+diffusion")

# model → (family, fusion, objective, why). The "why" is shown when a learner's entry differs.
MODEL_KEY: dict[str, tuple[str, str, str, str]] = {
    "CLIP": ("dual-encoder", "late", "contrastive",
             "CLIP encodes image and text with two separate towers that only meet in a final dot product, "
             "trained to match pairs against the rest of the batch."),
    "SigLIP": ("dual-encoder", "late", "contrastive",
               "SigLIP is CLIP's architecture with a per-pair sigmoid loss instead of the batch softmax; still "
               "two towers meeting at one dot product, still a contrastive objective."),
    "ImageBind": ("dual-encoder", "late", "contrastive",
                  "ImageBind trains one encoder per modality (audio, depth, IMU...) to match images "
                  "contrastively; modalities meet only in the shared embedding space."),
    "Flamingo": ("encoder-decoder", "middle", "next-token",
                 "Flamingo keeps a vision encoder and a frozen language model separate and lets the LM attend to "
                 "image features through gated cross-attention layers inserted between its blocks; it is "
                 "trained to predict the next text token."),
    "BLIP-2": ("encoder-decoder", "middle", "contrastive+next-token",
               "BLIP-2's Q-Former is pre-trained with an image-text contrastive loss (plus matching and "
               "captioning losses), then its queries feed a frozen LLM, and the Q-Former and projection are "
               "trained through that LLM's next-token loss."),
    "LLaVA": ("encoder-decoder", "middle", "next-token",
              "LLaVA encodes the image with CLIP's tower, projects the patch features into the LLM's token space "
              "and trains on next-token prediction of the answer text."),
    "Qwen2-VL": ("encoder-decoder", "middle", "next-token",
                 "Qwen2-VL is a vision encoder whose patch tokens are merged and fed into a language model, trained "
                 "to predict text tokens: the LLaVA recipe at scale."),
    "PaliGemma": ("encoder-decoder", "middle", "next-token",
                  "PaliGemma feeds SigLIP image tokens through a linear projection into the Gemma LM, trained on "
                  "next-token prediction of text."),
    "Chameleon": ("unified", "early", "next-token",
                  "Chameleon turns images into discrete VQ tokens and trains one transformer on interleaved "
                  "image and text tokens from the first layer, predicting the next token of either kind."),
    "GPT-4o": ("unified", "early", "next-token",
               "GPT-4o is described by OpenAI as one network trained end to end across text, vision and audio, "
               "inputs and outputs; the architecture is unpublished, but that makes it the field's example of a "
               "unified, early-fusion model."),
    "Transfusion": ("unified", "early", "next-token+diffusion",
                    "Transfusion trains one transformer on mixed sequences: next-token prediction for text and a "
                    "diffusion loss for the continuous image patches, in the same sequence."),
}


def _norm(value: object) -> str:
    return str(value).strip().lower().replace(" ", "").replace("_", "-")


# In the course's taxonomy (section 2's chart) each family has one fusion point, and the objective has to fit the
# family: two towers with no decoder can only be trained contrastively, and only a unified model generates pixels.
FUSION_OF = {"dual-encoder": "late", "encoder-decoder": "middle", "unified": "early"}


def _taxonomy_probes(entries: dict[str, tuple[str, str, str]]) -> list[Probe]:
    """Consistency properties of a classification (``entries``: model → normalised (family, fusion, objective)).
    The hints name the models whose entry breaks the property."""
    def offenders(bad: Callable[[str, str, str], bool]) -> list[str]:
        return [m for m, e in entries.items() if bad(*e)]

    mixed = offenders(lambda f, u, o: FUSION_OF[f] != u)
    towers_generate = offenders(lambda f, u, o: f == "dual-encoder" and o != "contrastive")
    nothing_generated = offenders(lambda f, u, o: f != "dual-encoder" and o == "contrastive")
    pixels_from_text = offenders(lambda f, u, o: f != "unified" and "diffusion" in o)
    return [
        Probe("family and fusion agree", lambda: not mixed,
              f"{', '.join(mixed)}: the family and the fusion point do not fit together. In this taxonomy a "
              "dual-encoder's modalities meet late (one dot product), an encoder-decoder's in the middle (a "
              "separate encoder feeding the language model), a unified model's early (one token sequence from the "
              "first layer): decide the family first, the fusion point follows."),
        Probe("a dual-encoder is trained contrastively", lambda: not towers_generate,
              f"{', '.join(towers_generate)}: a dual-encoder has no decoder, so nothing predicts a next token or "
              "denoises pixels; two towers that meet at a dot product are trained by matching pairs (contrastive)."),
        Probe("a contrastive-only model is a dual-encoder", lambda: not nothing_generated,
              f"{', '.join(nothing_generated)}: with a contrastive objective only, nothing is generated, so "
              "there is no decoder: the two embeddings meet at the end, which is a dual-encoder with late fusion."),
        Probe("only unified models generate pixels", lambda: not pixels_from_text,
              f"{', '.join(pixels_from_text)}: a diffusion objective means the model outputs images; "
              "encoder-decoder VLMs output text only (section 2's chart), so only a unified model can have it."),
    ]


@register("1.1", "classify real models", {m: v[:3] for m, v in MODEL_KEY.items()}, hints=(
    "Start with where the two modalities first meet in each model: only at a final dot product, inside a "
    "language model that reads the output of a separate vision encoder, or in one token sequence from the "
    "very first layer.",
    "Section 2, 'Alignment vs fusion, and where fusion happens', and the chart of the three families under it: "
    "each family goes with one fusion point (dual-encoder with late, encoder-decoder with middle, unified with "
    "early). The objective is the loss that trains the parts which connect the modalities.",
    "Worked on CLIP, the entry given: two towers that never see each other's input (dual-encoder), meeting in "
    "one dot product (late), trained to pick the matching pair out of the batch (contrastive). Ask the same "
    "three questions of every model on the first page of its paper: does it generate text, images, or nothing; "
    "does a separately trained encoder feed it; which losses train the connecting parts?",
))
def _check_taxonomy(answer) -> str:
    if not isinstance(answer, dict):
        raise CheckFailed(f"answer with a dict {{model name: (family, fusion, objective)}}, "
                          f"got {type(answer).__name__}.")
    missing = [m for m in MODEL_KEY if m not in answer]
    if missing:
        raise CheckFailed(f"classify every model; missing: {', '.join(missing)}.")
    allowed = {"family": FAMILIES, "fusion": FUSIONS, "objective": OBJECTIVES}
    wrong: list[str] = []
    entries: dict[str, tuple[str, str, str]] = {}
    for model, (family, fusion, objective, why) in MODEL_KEY.items():
        entry = answer[model]
        if not isinstance(entry, (tuple, list)) or len(entry) != 3:
            raise CheckFailed(f"{model}: give a (family, fusion, objective) tuple, got {entry!r}.")
        fields = []
        for (name, choices), given, right in zip(allowed.items(), entry, (family, fusion, objective)):
            if _norm(given) not in {_norm(c) for c in choices}:
                elsewhere = [other for other, cs in allowed.items() if _norm(given) in {_norm(c) for c in cs}]
                if elsewhere:  # a valid label in the wrong slot: the fields are out of order
                    raise CheckFailed(f"{model}: {given!r} is a {elsewhere[0]}, not a {name}: give each entry in the "
                                      "order (family, fusion, objective).")
                raise CheckFailed(f"{model}: {given!r} is not a {name}; choose one of {', '.join(choices)}.")
            if _norm(given) != _norm(right):
                fields.append(name)
        entries[model] = tuple(next(c for c in choices if _norm(c) == _norm(given))
                               for (_, choices), given in zip(allowed.items(), entry))
        if fields:
            wrong.append(f"{model} (check the {' and '.join(fields)}): {why}")
    if wrong:
        probe = broken(_taxonomy_probes(entries))
        first = f"{probe.hint}\n   " if probe is not None else ""
        shown = "\n   ".join(wrong[:3])
        more = f"\n   ... and {len(wrong) - 3} more." if len(wrong) > 3 else ""
        raise CheckFailed(f"{first}{len(MODEL_KEY) - len(wrong)}/{len(MODEL_KEY)} models right. Think again "
                          f"about:\n   {shown}{more}")
    return f"All {len(MODEL_KEY)} models classified like the course's key."


# --- embedding sets used by the checks ------------------------------------------------------------------

def _two_clouds(n_a: int = 12, n_b: int = 12, dim: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sets of unit vectors in two different cones: a small modality gap to measure."""
    g = torch.Generator().manual_seed(seed)
    a = uembeddings.l2_normalize(torch.randn(n_a, dim, generator=g) + 1.5 * torch.eye(dim)[0])
    b = uembeddings.l2_normalize(torch.randn(n_b, dim, generator=g) + 1.5 * torch.eye(dim)[1])
    return a, b


def _float(value: object, what: str) -> float:
    if value is None:
        raise Unsolved
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise CheckFailed(f"{what} should be one number, got a tensor of shape {tuple(value.shape)}: "
                              "reduce it to a scalar (and `.item()` it).")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy's float32 is a Real, not a float
        raise CheckFailed(f"{what} should return a float, got {type(value).__name__}.")
    return float(value)


def _num(value: object) -> float:
    """A probe's view of a numeric answer: the float, or ValueError (which makes the probe skip, not fail)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"not a number: {describe(value)}")


def _near(got: float, expected: float, rel: float = 1e-4) -> bool:
    return abs(got - expected) <= rel * max(1.0, abs(expected))


def _same_number(got: float, expected: float, mistakes: dict[str, float], default: str,
                 probes: list[Probe] = ()) -> None:
    """Return if ``got`` matches; else the hint of the known mistake it reproduces, else of the first broken
    property, else the generic Mismatch."""
    if _near(got, expected):
        return
    for hint, wrong in mistakes.items():
        if _near(got, wrong):
            raise CheckFailed(hint)
    probe = broken(probes)
    if probe is not None:
        raise CheckFailed(probe.hint)
    raise Mismatch(f"{default} (got {got:.4f}, expected {expected:.4f})")


def _rotation(dim: int, seed: int) -> torch.Tensor:
    """A random orthogonal (dim, dim) matrix."""
    return torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed)))[0]


# --- 1.2 the modality gap ---------------------------------------------------------------------------------

@register("1.2", "the modality gap", uembeddings.modality_gap, hints=(
    "Two steps: one centroid per set, then one distance between the two centroids. Check which dimension your "
    "mean runs over: the N rows (one vector per set), not the D coordinates of each row.",
    "Section 4, 'The modality gap' (Liang et al., 2022, Mind the Gap): the gap is the Euclidean (L2) distance "
    "between the centroid of one set and the centroid of the other. Use the raw means: the centroid of unit "
    "vectors is shorter than 1, and that is part of the geometry.",
    "Worked sub-step: for a of shape (12, 8), its centroid is the average of the 12 rows, a vector of shape (8,). "
    "The difference of the two centroids is another (8,) vector; its length is the square root of the sum of its "
    "squared entries (torch.linalg.vector_norm). A float or a one-element tensor are both accepted.",
))
def _check_gap(fn) -> str:
    a, b = _two_clouds()
    got = _float(fn(a, b), "modality_gap")
    ca, cb = a.mean(0), b.mean(0)
    mistakes = {
        "you measured the cosine similarity of the two centroids: the gap is the Euclidean distance "
        "||mean(a) − mean(b)||.": F.cosine_similarity(ca, cb, dim=0).item(),
        "you re-normalised the centroids before taking their distance: the centroid of unit vectors is "
        "shorter than 1, and that shortness is part of the geometry; use the raw means.":
            (F.normalize(ca, dim=0) - F.normalize(cb, dim=0)).norm().item(),
        "you returned the squared distance: take the square root (`.norm()`).": ((ca - cb) ** 2).sum().item(),
        "you averaged the distances between matched pairs: the gap compares the two centroids, "
        "||mean(a) − mean(b)||, not each image with its caption.": (a - b).norm(dim=-1).mean().item(),
        "you took the mean over the embedding dimension (dim=1): average over the N vectors (dim=0), "
        "giving one centroid per modality.": (a.mean(1) - b.mean(1)).norm().item(),
    }
    gap = lambda x, y: _num(fn(x, y))  # noqa: E731
    rot = _rotation(a.shape[1], 12)
    a2, b2 = _two_clouds(10, 7, seed=1)  # sets of different sizes: centroids still compare
    probes = [
        Probe("symmetric", lambda: _near(gap(b, a), gap(a, b)),
              "your gap(a, b) differs from gap(b, a): a distance does not depend on which set comes first."),
        Probe("zero between a set and itself", lambda: abs(gap(a, a)) <= 1e-3,
              "gap(a, a) is not 0: the distance between a set's centroid and itself is zero."),
        Probe("a mean, not a sum", lambda: _near(gap(torch.cat([a, a]), torch.cat([b, b])), gap(a, b)),
              "your gap changes when every vector of both sets is repeated twice: the centroid is the MEAN of "
              "the rows, which repetition leaves unchanged, not their sum."),
        Probe("a length", lambda: _near(gap(2 * a, 2 * b), 2 * gap(a, b)),
              "your gap does not double when every vector is doubled: it is a length (a norm: not squared, not "
              "a cosine, nothing re-normalised)."),
        Probe("rotation-invariant", lambda: _near(gap(a @ rot, b @ rot), gap(a, b)),
              "your gap changes when both sets are rotated together (the same orthogonal matrix applied to every "
              "row), and a distance between centroids cannot: average over the rows (dim=0) to keep a "
              "D-dimensional centroid per set, and take the Euclidean (L2) length of their difference, not a sum "
              "of absolute values or a mean over the coordinates."),
        Probe("sets of different sizes", lambda: _near(gap(a2, b2), uembeddings.modality_gap(a2, b2)),
              "with sets of different sizes (10 and 7 rows) your gap is off: average each set over its OWN rows, "
              "not over both sets together or over matched pairs."),
    ]
    _same_number(got, uembeddings.modality_gap(a, b), mistakes, "the gap is the distance between the two centroids",
                 probes)
    _same_number(_float(fn(a2, b2), "modality_gap"), uembeddings.modality_gap(a2, b2), {},
                 "with sets of different sizes the answer differs from ||mean(a) − mean(b)||", probes)
    return "Matches ||mean(a) − mean(b)||, also for sets of different sizes."


# --- 1.3 PCA to 2-D ----------------------------------------------------------------------------------------

def _match_up_to_sign(got: torch.Tensor, expected: torch.Tensor, rel: float = 0.0) -> bool:
    """True when each column of ``got`` equals the same column of ``expected`` or its negative (within 1e-3, plus
    ``rel`` times the largest entry of ``expected``)."""
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return False
    atol = 1e-3 + rel * expected.abs().max().item()
    return all(any(torch.allclose(got[:, j].float(), s * expected[:, j].float(), atol=atol) for s in (1, -1))
               for j in range(expected.shape[1]))


def _pca_probes(pca: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, got: torch.Tensor) -> list[Probe]:
    """Properties of a PCA projection, each up to the sign of a column: centred, in the data's units, ordered by
    variance, independent of the axes and of a shift, uncorrelated coordinates, the most variance two directions
    can hold."""
    y = got.double()
    centred = x.double() - x.double().mean(0)
    top2 = torch.linalg.svdvals(centred)[:2].pow(2).sum().item()  # the variance (times N − 1) PCA keeps
    power = y.pow(2).sum(0)
    gram = y.T @ y
    return [
        Probe("centred coordinates", lambda: bool((y.mean(0).abs() <= 1e-3 * (1 + y.abs().max())).all()),
              "the columns of your projection do not have mean 0: PCA works on centred data. Subtract each "
              "column's mean from x before the SVD, and project that centred x, not the raw one."),
        Probe("in the data's units", lambda: _match_up_to_sign(pca(2 * x), 2 * got, rel=1e-4),
              "your coordinates do not double when the data are doubled: PCA coordinates are in the data's own "
              "units. Don't standardise the columns or whiten; if you use U from the SVD, multiply it by the "
              "singular values S."),
        Probe("largest variance first", lambda: bool(power[0] >= power[1] * (1 - 1e-4)),
              "your second coordinate carries more variance than the first: column 0 must be the direction of "
              "LARGEST variance. torch.linalg.svd sorts its singular values in descending order, but "
              "torch.linalg.eigh returns eigenvalues in ASCENDING order: take its eigenvectors from the end."),
        Probe("independent of the axes", lambda: _match_up_to_sign(pca(x @ _rotation(x.shape[1], 13)), got, rel=1e-4),
              "your projection changes when the data are rotated (x times an orthogonal matrix), and PCA's "
              "cannot: its directions come from the data, not from the coordinate axes. Don't select or weight "
              "the original columns; find the directions with the SVD of the centred data."),
        Probe("independent of a shift", lambda: _match_up_to_sign(pca(x + 3.0), got, rel=1e-4),
              "your projection changes when a constant is added to the data, and PCA's cannot: it centres "
              "first. Subtract the column means, then take the SVD and project the centred data."),
        Probe("uncorrelated coordinates", lambda: abs(gram[0, 1].item()) <= 1e-3 * gram.diagonal().max().item(),
              "your two coordinates are correlated: principal directions are orthogonal and the projections onto "
              "them are uncorrelated. The directions are the ROWS of Vh (orthonormal), not its columns."),
        Probe("the most variance", lambda: abs(power.sum().item() - top2) <= 1e-3 * top2,
              "your two coordinates hold a different amount of variance than the top two principal directions: "
              "project onto the two unit-length directions of LARGEST variance, the first two rows of Vh."),
    ]


@register("1.3", "PCA to two dimensions", uembeddings.pca_2d, hints=(
    "Three steps, in order: centre the columns of x, take the SVD of the centred data, project the centred data "
    "onto two directions. Print the shape after each step: (N, D), then Vh with one direction per row, then "
    "(N, 2).",
    "Section 4's PCA picture and the exercise's statement: the SVD writes the centred data as U · diag(S) · Vh; "
    "the rows of Vh are orthonormal directions in D dimensions, sorted by decreasing variance. Projecting a row "
    "onto a direction is one dot product, so projecting all rows onto two directions is one matrix product.",
    "Worked sub-step: for x of shape (40, 6), the centred data is (40, 6) with every column mean 0, and the top "
    "two directions are the first two rows of Vh, a (2, 6) block. Multiplying (40, 6) data by that block must "
    "give (40, 2): which of the two needs a transpose? Each column's sign is free; the check accepts either.",
))
def _check_pca(fn) -> str:
    from sklearn.decomposition import PCA

    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 6, generator=g) * torch.tensor([5.0, 3.0, 1.0, 0.5, 0.3, 0.1]) + 4.0  # off-centre
    x = x @ torch.linalg.qr(torch.randn(6, 6, generator=g))[0]  # rotate: components are not the axes
    got = require_tensor(fn(x), "pca_2d")
    expected = torch.from_numpy(PCA(n_components=2).fit_transform(x.double().numpy())).float()
    if got.shape == (2, 6):
        raise CheckFailed("you returned the 2 principal directions (2, D): return the data projected onto "
                          "them, one 2-D point per row (N, 2).")
    if got.shape != (40, 2):
        raise CheckFailed(f"return one 2-D point per row: expected shape (40, 2), got {tuple(got.shape)}.")
    if _match_up_to_sign(got, expected):
        return "Matches sklearn.decomposition.PCA (up to the sign of each component, which PCA does not fix)."
    _, _, vh_raw = torch.linalg.svd(x, full_matrices=False)
    centred = x - x.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    mistakes = {
        "the data were not centred: subtract the mean of each column before the SVD (and project the "
        "centred data), otherwise the first 'component' points at the mean.": centred @ vh_raw[:2].T,
        "you centred for the SVD but projected the uncentred data: project x − mean.": x @ vh[:2].T,
        "you projected onto the LAST two components (smallest variance): `torch.linalg.svd` returns singular "
        "values in descending order, so take the first rows of Vh.": centred @ vh[-2:].T,
        "you projected onto the first two COLUMNS of Vh: its ROWS are the directions (take its first two rows).":
            centred @ vh[:, :2],
    }
    for hint, wrong in mistakes.items():
        if _match_up_to_sign(got, wrong):
            raise CheckFailed(hint)

    def pca(z: torch.Tensor) -> torch.Tensor:
        out = fn(z)
        if not isinstance(out, torch.Tensor) or out.shape != (len(z), 2):
            raise ValueError(f"pca_2d returned {describe(out)}")
        return out.detach()

    probe = broken(_pca_probes(pca, x, got.detach()))
    if probe is not None:
        raise CheckFailed(probe.hint)
    raise Mismatch("the projection differs from sklearn's PCA(n_components=2): centre, SVD, project onto "
                   "the top-2 right singular vectors.")


# --- 1.4 the cone effect -------------------------------------------------------------------------------------

@register("1.4", "mean pairwise cosine (the cone effect)", uembeddings.mean_pairwise_cosine, hints=(
    "Two things to get right: cosines, not dot products (the rows are not unit length here), and an average over "
    "pairs of DIFFERENT rows only, leaving out each row's similarity with itself.",
    "Section 4, 'The modality gap', on the cone effect, and Exercise 0.3: once every row has unit length, entry "
    "(i, j) of the (N, N) matrix of dot products is the cosine of rows i and j. Its diagonal, each row with "
    "itself, is all ones and says nothing about the cone.",
    "Worked sub-step: for N = 9 rows the similarity matrix is (9, 9): 9 diagonal entries equal to 1, and "
    "9 · 8 = 72 off-diagonal entries, one per ordered pair of different rows. The answer is the average of those "
    "72 numbers only (a boolean mask, or the total minus the diagonal, both get there).",
))
def _check_cone(fn) -> str:
    g = torch.Generator().manual_seed(4)
    x = (torch.randn(9, 5, generator=g) + torch.tensor([2.0, 0, 0, 0, 0])) * torch.rand(9, 1, generator=g) * 3
    got = _float(fn(x), "mean_pairwise_cosine")
    sim = F.cosine_similarity(x[:, None], x[None], dim=-1)
    off = ~torch.eye(9, dtype=torch.bool)
    dots = x @ x.T
    mistakes = {
        "the diagonal (each vector with itself, cosine 1) is included: average over pairs of DIFFERENT "
        "vectors only.": sim.mean().item(),
        "these are dot products, not cosines: L2-normalise the rows first.": dots[off].mean().item(),
        "dot products with the diagonal included: L2-normalise the rows, and leave out the diagonal.":
            dots.mean().item(),
        "you averaged |cosine|: keep the sign, the cone effect is about vectors pointing the SAME way.":
            sim[off].abs().mean().item(),
    }
    cone = lambda z: _num(fn(z))  # noqa: E731
    lengths = 0.2 + 3 * torch.rand(9, 1, generator=g)
    perm = torch.randperm(9, generator=g)
    v = torch.randn(5, generator=g)
    probes = [
        Probe("ignores the length of each row", lambda: _near(cone(x * lengths), cone(x)),
              "your answer changes when some rows are made longer (multiplied by a positive number), and a cosine "
              "cannot: normalise each ROW to unit length (dim=1) before the dot products, not each column."),
        Probe("ignores the order of the rows", lambda: _near(cone(x[perm]), cone(x)),
              "your answer changes when the rows are shuffled: average over ALL pairs of different rows, not "
              "neighbouring rows or a fixed subset."),
        Probe("orthogonal rows give 0", lambda: abs(cone(3 * torch.eye(5))) <= 1e-4,
              "for rows that are all orthogonal to each other your answer is not 0: only pairs of DIFFERENT rows "
              "enter the mean — each row's cosine with itself (the diagonal, 1) must be left out, also from the "
              "upper triangle."),
        Probe("two opposite rows give −1", lambda: _near(cone(torch.stack([v, -2 * v])), -1.0),
              "for two opposite rows (v and −2v) your answer is not −1: keep the sign, and divide by the number of "
              "pairs of different rows, n · (n − 1) ordered pairs (or n · (n − 1) / 2 unordered), not n²."),
    ]
    _same_number(got, sim[off].mean().item(), mistakes, "average the cosine over all pairs of distinct rows", probes)
    return "Matches the mean off-diagonal cosine similarity."


# --- 1.5 closing the gap ------------------------------------------------------------------------------------

def _close_gap_probes(fn, a: torch.Tensor, b: torch.Tensor, got: torch.Tensor, which: int) -> list[Probe]:
    """Properties of one output of close_gap (``which`` = 0 for a_closed, 1 for b_closed)."""
    name, other = ("a", "b") if which == 0 else ("b", "a")
    g = torch.Generator().manual_seed(50 + which)
    mine = (a, b)[which]

    def out(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # which-th output, with `mine` replaced by x
        pair = fn(x, y) if which == 0 else fn(y, x)
        return pair[which]

    theirs = (b, a)[which]
    stranger = uembeddings.l2_normalize(torch.randn(theirs.shape, generator=g) - 2 * theirs.mean(0))
    shift = 0.3 * torch.randn(mine.shape[1], generator=g)
    perm = torch.randperm(len(mine), generator=g)
    return [
        Probe("unit-length rows", lambda: unit_length(got, dim=-1),
              f"the rows of {name}_closed are not unit length: after subtracting the centroid, L2-normalise each "
              "ROW (along the last dimension), not each column, and not by dividing by a standard deviation."),
        Probe(f"depends on {name} only", lambda: torch.allclose(out(mine, stranger), got, atol=1e-4),
              f"{name}_closed changes when {other} changes: each set is centred on its OWN centroid, so "
              f"{name}_closed depends on {name} alone."),
        Probe("a shift of the whole set cancels", lambda: torch.allclose(out(mine + shift, theirs), got, atol=1e-4),
              f"{name}_closed changes when every row of {name} is shifted by the same vector, and subtracting "
              f"{name}'s centroid (the mean over its ROWS, dim=0) cancels any such shift: did you subtract a mean "
              "over the coordinates (dim=1), or not centre at all?"),
        Probe("rows treated alike", lambda: torch.allclose(out(mine[perm], theirs), got[perm], atol=1e-4),
              f"shuffling the rows of {name} should shuffle the rows of {name}_closed the same way: one centroid "
              "for the whole set, subtracted from every row."),
        Probe("centred on the mean", lambda: torch.allclose((pair := out(mine[:2], theirs))[0], -pair[1], atol=1e-4),
              f"for a set of two rows u and v, centring at their mean leaves ±(u − v) / 2, so the two rows of "
              f"{name}_closed must point in opposite directions, and yours do not: subtract the MEAN of the rows, "
              "not a median or another centre."),
    ]


@register("1.5", "close the modality gap", uembeddings.close_gap, hints=(
    "Treat each set on its own: a's centroid comes from a only, b's from b only. Two steps per set, in this "
    "order: subtract the centroid, then bring every row back to unit length.",
    "Section 5, 'Closing the gap — does it matter?': subtracting a set's own mean row moves its centroid to the "
    "origin; the rows are then shorter than 1, so L2-normalise each row again (Exercise 0.2) to put them back on "
    "the sphere, where cosine similarity lives.",
    "Worked sub-step: for a of shape (8, D), its mean over the rows has shape (D,), or (1, D) with keepdim=True, "
    "and broadcasts against the 8 rows when subtracted. Normalise along the last dimension so that every ROW has "
    "length 1, and return the two results as a tuple (a_closed, b_closed).",
))
def _check_close_gap(fn) -> str:
    a, b = _two_clouds(8, 6, seed=5)
    out = fn(a, b)
    if out is None:
        raise Unsolved
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("return a pair (a_closed, b_closed).")
    got_a, got_b = (require_tensor(t, "close_gap") for t in out)
    exp_a, exp_b = uembeddings.close_gap(a, b)
    gap = a.mean(0) - b.mean(0)
    both = torch.cat([a, b]).mean(0)
    for which, (got, exp, mine, other, name) in enumerate(((got_a, exp_a, a, b, "a"), (got_b, exp_b, b, a, "b"))):
        mistakes = {
            "the vectors are no longer unit length: L2-normalise again after subtracting the centroid.":
                mine - mine.mean(0),
            f"you subtracted the OTHER set's centroid from {name}: subtract each set's own mean.":
                uembeddings.l2_normalize(mine - other.mean(0)),
            "you subtracted the mean of both sets together: that moves both clouds by the same vector and "
            "keeps the gap; subtract each set's OWN centroid.": uembeddings.l2_normalize(mine - both),
            "you moved each set half-way along the gap vector (Liang et al.'s shift): here, centre each set "
            "at its own mean instead, so both centroids sit at the origin.":
                uembeddings.l2_normalize(mine - gap / 2 if name == "a" else mine + gap / 2),
        }
        probes = _close_gap_probes(fn, a, b, got.detach(), which) if isinstance(got, torch.Tensor) else []
        diagnose(got, exp, mistakes, f"{name}: subtract {name}'s own centroid, then L2-normalise each row.",
                 probes=probes)
    return "Each set is centred on its own mean and unit length again."


# --- 1.6 top-k retrieval ---------------------------------------------------------------------------------------

def _retrieve_index_probes(fn, queries: torch.Tensor, keys: torch.Tensor, indices: torch.Tensor) -> list[Probe]:
    """Properties of the retrieved indices: a cosine ranking ignores the keys' and queries' lengths, puts a key
    pointing the query's way first, ranks each query on its own, follows the keys when they are reordered, and
    the top 3 are the first 3 of the top 5."""
    g = torch.Generator().manual_seed(60)

    def idx(q: torch.Tensor, k: torch.Tensor, n: int = 3) -> torch.Tensor:
        out = fn(q, k, n)
        if not isinstance(out, (tuple, list)) or len(out) != 2 or not isinstance(out[1], torch.Tensor):
            raise ValueError(f"retrieve returned {describe(out)}")
        return out[1]

    key_lengths = 0.2 + 4 * torch.rand(len(keys), 1, generator=g)
    query_lengths = 0.2 + 4 * torch.rand(len(queries), 1, generator=g)
    own = torch.tensor([4, 11, 17])
    perm = torch.randperm(len(keys), generator=g)
    return [
        Probe("ignores the keys' lengths", lambda: torch.equal(idx(queries, keys * key_lengths), indices),
              "your ranking changes when some keys are made longer (multiplied by a positive number), and a cosine "
              "ranking cannot: normalise each ROW of queries and keys to unit length (dim=-1), not the columns."),
        Probe("ignores the queries' lengths", lambda: torch.equal(idx(queries * query_lengths, keys), indices),
              "your ranking changes when some queries are made longer: each query's ranking depends only on its "
              "direction; normalise each ROW (dim=-1)."),
        Probe("a copy of a key comes first", lambda: torch.equal(idx(0.5 * keys[own], keys)[:, 0], own),
              "a query that points exactly the way one key does (here: half of that key) does not get that key "
              "first: rank by cosine similarity, largest first, and keep the top result — there is no self-match "
              "to skip here."),
        Probe("each query on its own", lambda: torch.equal(idx(queries[:2], keys), indices[:2]),
              "a query's results change when the other queries change: rank each query's row of similarities on "
              "its own, along the keys' dimension."),
        Probe("follows the keys' order", lambda: torch.equal(perm[idx(queries, keys[perm])], indices),
              "your results do not follow the keys when they are listed in another order: return the positions "
              "of the best keys in `keys`, for any order of the keys."),
        Probe("top 3 within the top 5", lambda: torch.equal(idx(queries, keys, 5)[:, :3], indices),
              "your top 3 are not the first 3 of your top 5: take the k best keys for the k asked for, best first."),
    ]


def _retrieve_score_probes(fn, queries: torch.Tensor, keys: torch.Tensor, scores: torch.Tensor) -> list[Probe]:
    """Properties of the returned scores: cosines lie in [-1, 1], come best first, and ignore the keys' lengths."""
    lengths = 0.2 + 4 * torch.rand(len(keys), 1, generator=torch.Generator().manual_seed(61))
    s = scores.detach().float()
    return [
        Probe("cosines lie in [−1, 1]", lambda: bool((s.abs() <= 1 + 1e-5).all()),
              "your scores leave [−1, 1], so they are not cosine similarities: normalise each row of queries and "
              "keys before the dot products, and return those similarities."),
        Probe("best first", lambda: bool((s[:, :-1] >= s[:, 1:] - 1e-6).all()),
              "your scores are not in descending order along each row: return the similarities themselves, best "
              "first — not distances (1 − cosine, Euclidean) or their negatives."),
        Probe("scores ignore the keys' lengths", lambda: _close_enough(fn(queries, keys * lengths, 3)[0], s),
              "your scores change when some keys are made longer: cosine similarity ignores length; normalise "
              "queries and keys (each row) before the dot products."),
    ]


def _close_enough(got: object, expected: torch.Tensor, atol: float = 1e-4) -> bool:
    return (isinstance(got, torch.Tensor) and got.shape == expected.shape
            and torch.allclose(got.detach().float(), expected.float(), atol=atol))


@register("1.6", "top-k retrieval", uembeddings.retrieve, hints=(
    "Cosine, not dot product: the keys here have very different lengths, and a long key would win every query. "
    "Normalise both sides first, then rank each query's row of similarities, best first.",
    "Section 6, 'A toy retrieval system', and Exercise 0.3: the cosine similarities of all queries with all keys "
    "form one (n_queries, n_keys) matrix, one row per query. Retrieval keeps, in each row, the k largest values "
    "and the positions of the keys they belong to.",
    "Worked sub-step: with 5 queries and 20 keys the similarity matrix is (5, 20); the k = 3 best along the "
    "keys' dimension (dim=-1) give two (5, 3) tensors, the similarity values (float) and the key positions "
    "(int64). torch.topk returns both at once, largest first, in that order.",
))
def _check_retrieve(fn) -> str:
    g = torch.Generator().manual_seed(6)
    queries = torch.randn(5, 8, generator=g)
    keys = torch.randn(20, 8, generator=g) * torch.linspace(0.2, 5.0, 20)[:, None]  # very different norms
    out = fn(queries, keys, 3)
    if out is None:
        raise Unsolved
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed(f"return a pair (scores, indices), like torch.topk; got {describe(out)}.")
    scores, indices = (require_tensor(t, "retrieve") for t in out)
    if not scores.is_floating_point() and indices.is_floating_point():
        raise CheckFailed("the pair is in the wrong order: return (scores, indices), like torch.topk's (values, "
                          "indices) — the float similarities first, then the integer positions of the keys.")
    if indices.is_floating_point():
        raise CheckFailed(f"the indices should be integer positions of keys (int64, from topk/argsort); got "
                          f"{describe(indices)}.")
    sim = F.cosine_similarity(queries[:, None], keys[None], dim=-1)
    expected = sim.topk(3, dim=-1)
    if indices.shape != (5, 3):
        if 20 in indices.shape or indices.shape == (3, 5):
            raise CheckFailed(f"indices have shape {tuple(indices.shape)}: one row per QUERY with its k best "
                              "keys, shape (n_queries, k); take topk along the keys' dimension (dim=-1).")
        raise CheckFailed(f"indices should have shape (n_queries, k) = (5, 3), got {tuple(indices.shape)}.")
    if torch.equal(indices, expected.indices):
        at = expected.indices
        score_mistakes = {
            "the indices are right but the scores are raw dot products: return the cosine similarities of the "
            "normalised vectors.": (queries @ keys.T).gather(1, at),
            "the indices are right but only the keys were normalised: normalise the queries too, so that the "
            "scores are cosines.": (queries @ F.normalize(keys, dim=-1).T).gather(1, at),
            "the indices are right but only the queries were normalised: normalise the keys too, so that the "
            "scores are cosines.": (F.normalize(queries, dim=-1) @ keys.T).gather(1, at),
        }
        diagnose(scores, expected.values, score_mistakes,
                 "the indices are right but the scores are not the cosine similarities.",
                 probes=_retrieve_score_probes(fn, queries, keys, scores))
        return "Same top-3 keys and scores as torch.topk over cosine similarities."
    dots = (queries @ keys.T).topk(3, dim=-1).indices
    if torch.equal(indices, dots):
        raise CheckFailed("you ranked by raw dot products: normalise queries and keys first (cosine "
                          "similarity), or long keys win whatever they show.")
    if torch.equal(indices, sim.topk(3, dim=-1, largest=False).indices) or torch.equal(
            indices, sim.argsort(dim=-1)[:, :3]):
        raise CheckFailed("you returned the LEAST similar keys: sort in descending order (topk's default).")
    if torch.equal(indices.sort(-1).values, expected.indices.sort(-1).values):
        raise CheckFailed("the right keys, in the wrong order: best match first.")
    probe = broken(_retrieve_index_probes(fn, queries, keys, indices))
    if probe is not None:
        raise CheckFailed(probe.hint)
    raise Mismatch("the retrieved keys differ from the top-k by cosine similarity.")


# --- 1.7 Recall@K ---------------------------------------------------------------------------------------------

@register("1.7", "Recall@K", metrics.recall_at_k, hints=(
    "For each query row i, look at its k most similar keys and ask one yes-or-no question: is key i among them? "
    "Recall@K is the share of yes answers over all queries, a number between 0 and 1.",
    "Section 6, 'A toy retrieval system': the inputs are already L2-normalised, so the (Q, Q) matrix of dot "
    "products holds the cosines, row i for query i, and query i's own match is key i (the diagonal). Recall@K "
    "can only grow with k, and is 1 when every query's match ranks first.",
    "Worked sub-step: with Q = 30 and k = 3, the top-k positions form a (30, 3) integer tensor, one row per query. "
    "Each row's own index, a (30, 1) column holding 0 … 29, broadcasts against it to (30, 3). From there: one "
    "yes-or-no per row, then the share of yes as a float.",
))
def _check_recall(fn) -> str:
    g = torch.Generator().manual_seed(7)
    keys = uembeddings.l2_normalize(torch.randn(30, 16, generator=g))
    query = uembeddings.l2_normalize(keys + 0.9 * torch.randn(30, 16, generator=g))  # noisy copies: some misses
    query[:4] = uembeddings.l2_normalize(torch.randn(4, 16, generator=g))  # a few hopeless queries
    sim = query @ keys.T
    oracle = {k: (sim.topk(k, dim=-1).indices == torch.arange(30)[:, None]).any(-1).float().mean().item()
              for k in (1, 3, 5)}
    ranks = (sim > sim.diagonal()[:, None]).sum(-1)  # how many keys beat the match
    ks = (1, 3, 5)
    hits = lambda ok: ok.float().mean().item()  # noqa: E731
    # Each mistake is judged on Recall@1, @3 and @5 together: a single k can coincide (two mistakes both give 0.0
    # at k = 1), the three values rarely do.
    mistakes = {
        "you ranked keys against queries (the other direction, keys @ query.T): for each QUERY row, is its own key "
        "(same index) among the k best keys?":
            [hits((sim.T.topk(k, dim=-1).indices == torch.arange(30)[:, None]).any(-1)) for k in ks],
        "you counted the k LEAST similar keys: take the top k by similarity (largest first).":
            [hits(((-sim).topk(k, dim=-1).indices == torch.arange(30)[:, None]).any(-1)) for k in ks],
        "your comparison counts the match itself (>=): its own score ties with itself, so every query looks one "
        "place worse. Count the keys STRICTLY more similar than the match (>), and a hit is fewer than k of them.":
            [hits(ranks + 1 < k) for k in ks],
        "off by one: a query is a hit when at most k − 1 keys score higher than its match, i.e. its match is among "
        "the top k (not k + 1).": [hits(ranks <= k) for k in ks],
        "you returned a count, not a share: divide by the number of queries.":
            [(ranks < k).float().sum().item() for k in ks],
        "your answer ignores k (this is Recall@1 for every k): a hit is the match anywhere in the top k.":
            [oracle[1]] * 3,
    }
    got = [_float(fn(query, keys, k), "recall_at_k") for k in ks]
    expected = [oracle[k] for k in ks]
    same = lambda a, b: all(abs(x - y) <= 1e-4 * max(1.0, abs(y)) for x, y in zip(a, b))  # noqa: E731
    if same(got, expected):
        return f"R@1 {oracle[1]:.2f}, R@3 {oracle[3]:.2f}, R@5 {oracle[5]:.2f} on the check's data, like the oracle."
    for hint_text, wrong in mistakes.items():
        if same(got, wrong):
            raise CheckFailed(hint_text)
    recall = lambda q, k, n: _num(fn(q, k, n))  # noqa: E731
    perm = torch.randperm(30, generator=g)
    shown = ", ".join(f"{v:.3f}" for v in got)
    probes = [
        Probe("a share between 0 and 1", lambda: all(0.0 <= v <= 1.0 for v in got),
              f"Recall@K is a share of queries, between 0 and 1 (not a percentage, not a count); got R@1, R@3, "
              f"R@5 = {shown}."),
        Probe("grows with k", lambda: all(b >= a - 1e-6 for a, b in zip(got, got[1:])),
              f"Recall@K can only grow with k (the top 3 contain the top 1); yours fell: R@1, R@3, R@5 = {shown}. "
              "Did you average over the k results (a precision) instead of asking whether ANY of them is the "
              "match?"),
        Probe("1 for perfect retrieval", lambda: all(_near(recall(keys, keys, k), 1.0) for k in (1, 3)),
              "when every query is identical to its own key, Recall@K must be 1 at every k, and yours is not: "
              "compare each query's top-k with ITS OWN index (row i looks for key i), and count a query once "
              "when its key is anywhere in its top k."),
        Probe("1 when k is every key", lambda: _near(recall(query, keys, len(keys)), 1.0),
              "with k equal to the number of keys every match is among the top k, so Recall@K must be 1, and "
              "yours is not: a hit is the match anywhere among the k best keys."),
        Probe("ignores the order of the pairs", lambda: _near(recall(query[perm], keys[perm], 3), got[1]),
              "your Recall@K changes when the pairs are shuffled (query i and key i moved together), and a "
              "share of hits cannot: compare each query's top-k with its OWN row index, not with the positions "
              "0 … k − 1."),
    ]
    probe = broken(probes)
    if probe is not None:
        raise CheckFailed(probe.hint)
    raise Mismatch(f"Recall@1, @3, @5 differ: got {shown}, expected {', '.join(f'{e:.3f}' for e in expected)}.")
