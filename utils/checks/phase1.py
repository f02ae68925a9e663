"""Checks for the Phase 1 exercises (foundations: taxonomy, modality gap, retrieval).

Oracles: the course's answer key with an explanation per model (1.1), scikit-learn's PCA (1.3),
``F.cosine_similarity`` and ``torch.topk`` (1.2, 1.4, 1.6, 1.7).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import clip as C
from .. import embeddings as E
from . import CheckFailed, Unsolved, register
from .oracles import diagnose, require_tensor

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


@register("1.1", "classify real models", {m: v[:3] for m, v in MODEL_KEY.items()})
def _check_taxonomy(answer) -> str:
    if not isinstance(answer, dict):
        raise CheckFailed(f"answer with a dict {{model name: (family, fusion, objective)}}, "
                          f"got {type(answer).__name__}.")
    missing = [m for m in MODEL_KEY if m not in answer]
    if missing:
        raise CheckFailed(f"classify every model; missing: {', '.join(missing)}.")
    allowed = {"family": FAMILIES, "fusion": FUSIONS, "objective": OBJECTIVES}
    wrong: list[str] = []
    for model, (family, fusion, objective, why) in MODEL_KEY.items():
        entry = answer[model]
        if not isinstance(entry, (tuple, list)) or len(entry) != 3:
            raise CheckFailed(f"{model}: give a (family, fusion, objective) tuple, got {entry!r}.")
        fields = []
        for (name, choices), given, right in zip(allowed.items(), entry, (family, fusion, objective)):
            if _norm(given) not in {_norm(c) for c in choices}:
                raise CheckFailed(f"{model}: {given!r} is not a {name}; choose one of {', '.join(choices)}.")
            if _norm(given) != _norm(right):
                fields.append(name)
        if fields:
            wrong.append(f"{model} (check the {' and '.join(fields)}): {why}")
    if wrong:
        shown = "\n   ".join(wrong[:3])
        more = f"\n   ... and {len(wrong) - 3} more." if len(wrong) > 3 else ""
        raise CheckFailed(f"{len(MODEL_KEY) - len(wrong)}/{len(MODEL_KEY)} models right. Think again about:\n   "
                          f"{shown}{more}")
    return f"All {len(MODEL_KEY)} models classified like the course's key."


# --- embedding sets used by the checks ------------------------------------------------------------------

def _two_clouds(n_a: int = 12, n_b: int = 12, dim: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sets of unit vectors in two different cones: a small modality gap to measure."""
    g = torch.Generator().manual_seed(seed)
    a = E.l2_normalize(torch.randn(n_a, dim, generator=g) + 1.5 * torch.eye(dim)[0])
    b = E.l2_normalize(torch.randn(n_b, dim, generator=g) + 1.5 * torch.eye(dim)[1])
    return a, b


def _float(value: object, what: str) -> float:
    if value is None:
        raise Unsolved
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise CheckFailed(f"{what} should be one number, got a tensor of shape {tuple(value.shape)}: "
                              "reduce it to a scalar (and `.item()` it).")
        value = value.item()
    if not isinstance(value, (float, int)):
        raise CheckFailed(f"{what} should return a float, got {type(value).__name__}.")
    return float(value)


def _same_number(got: float, expected: float, mistakes: dict[str, float], default: str) -> None:
    if abs(got - expected) <= 1e-4 * max(1.0, abs(expected)):
        return
    for hint, wrong in mistakes.items():
        if abs(got - wrong) <= 1e-4 * max(1.0, abs(wrong)):
            raise CheckFailed(hint)
    raise CheckFailed(f"{default} (got {got:.4f}, expected {expected:.4f})")


# --- 1.2 the modality gap ---------------------------------------------------------------------------------

@register("1.2", "the modality gap", E.modality_gap)
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
    _same_number(got, E.modality_gap(a, b), mistakes, "the gap is the distance between the two centroids")
    a2, b2 = _two_clouds(10, 7, seed=1)  # sets of different sizes: centroids still compare
    _same_number(_float(fn(a2, b2), "modality_gap"), E.modality_gap(a2, b2), {},
                 "with sets of different sizes the answer differs from ||mean(a) − mean(b)||")
    return "Matches ||mean(a) − mean(b)||, also for sets of different sizes."


# --- 1.3 PCA to 2-D ----------------------------------------------------------------------------------------

def _match_up_to_sign(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """True when each column of ``got`` equals the same column of ``expected`` or its negative."""
    if got.shape != expected.shape:
        return False
    return all(any(torch.allclose(got[:, j].float(), s * expected[:, j].float(), atol=1e-3) for s in (1, -1))
               for j in range(expected.shape[1]))


@register("1.3", "PCA to two dimensions", E.pca_2d)
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
        "you projected onto the first two COLUMNS of Vh: its rows are the directions (use vh[:2].T).":
            centred @ vh[:, :2],
    }
    for hint, wrong in mistakes.items():
        if _match_up_to_sign(got, wrong):
            raise CheckFailed(hint)
    raise CheckFailed("the projection differs from sklearn's PCA(n_components=2): centre, SVD, project onto "
                      "the top-2 right singular vectors.")


# --- 1.4 the cone effect -------------------------------------------------------------------------------------

@register("1.4", "mean pairwise cosine (the cone effect)", E.mean_pairwise_cosine)
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
    _same_number(got, sim[off].mean().item(), mistakes, "average the cosine over all pairs of distinct rows")
    return "Matches the mean off-diagonal cosine similarity."


# --- 1.5 closing the gap ------------------------------------------------------------------------------------

@register("1.5", "close the modality gap", E.close_gap)
def _check_close_gap(fn) -> str:
    a, b = _two_clouds(8, 6, seed=5)
    out = fn(a, b)
    if out is None:
        raise Unsolved
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("return a pair (a_closed, b_closed).")
    got_a, got_b = (require_tensor(t, "close_gap") for t in out)
    exp_a, exp_b = E.close_gap(a, b)
    gap = a.mean(0) - b.mean(0)
    both = torch.cat([a, b]).mean(0)
    for got, exp, mine, other, name in ((got_a, exp_a, a, b, "a"), (got_b, exp_b, b, a, "b")):
        mistakes = {
            "the vectors are no longer unit length: L2-normalise again after subtracting the centroid.":
                mine - mine.mean(0),
            f"you subtracted the OTHER set's centroid from {name}: subtract each set's own mean.":
                E.l2_normalize(mine - other.mean(0)),
            "you subtracted the mean of both sets together: that moves both clouds by the same vector and "
            "keeps the gap; subtract each set's OWN centroid.": E.l2_normalize(mine - both),
            "you moved each set half-way along the gap vector (Liang et al.'s shift): here, centre each set "
            "at its own mean instead, so both centroids sit at the origin.":
                E.l2_normalize(mine - gap / 2 if name == "a" else mine + gap / 2),
        }
        diagnose(got, exp, mistakes, f"{name}: subtract {name}'s own centroid, then L2-normalise each row.")
    return "Each set is centred on its own mean and unit length again."


# --- 1.6 top-k retrieval ---------------------------------------------------------------------------------------

@register("1.6", "top-k retrieval", E.retrieve)
def _check_retrieve(fn) -> str:
    g = torch.Generator().manual_seed(6)
    queries = torch.randn(5, 8, generator=g)
    keys = torch.randn(20, 8, generator=g) * torch.linspace(0.2, 5.0, 20)[:, None]  # very different norms
    out = fn(queries, keys, 3)
    if out is None:
        raise Unsolved
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("return a pair (scores, indices), like torch.topk.")
    scores, indices = (require_tensor(t, "retrieve") for t in out)
    sim = F.cosine_similarity(queries[:, None], keys[None], dim=-1)
    expected = sim.topk(3, dim=-1)
    if indices.shape != (5, 3):
        if 20 in indices.shape or indices.shape == (3, 5):
            raise CheckFailed(f"indices have shape {tuple(indices.shape)}: one row per QUERY with its k best "
                              "keys, shape (n_queries, k); take topk along the keys' dimension (dim=-1).")
        raise CheckFailed(f"indices should have shape (n_queries, k) = (5, 3), got {tuple(indices.shape)}.")
    if torch.equal(indices, expected.indices):
        diagnose(scores, expected.values, {}, "the indices are right but the scores are not the cosine similarities.")
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
    raise CheckFailed("the retrieved keys differ from the top-k by cosine similarity.")


# --- 1.7 Recall@K ---------------------------------------------------------------------------------------------

@register("1.7", "Recall@K", C.recall_at_k)
def _check_recall(fn) -> str:
    g = torch.Generator().manual_seed(7)
    keys = E.l2_normalize(torch.randn(30, 16, generator=g))
    query = E.l2_normalize(keys + 0.9 * torch.randn(30, 16, generator=g))  # noisy copies: some misses
    query[:4] = E.l2_normalize(torch.randn(4, 16, generator=g))  # a few hopeless queries
    sim = query @ keys.T
    oracle = {k: (sim.topk(k, dim=-1).indices == torch.arange(30)[:, None]).any(-1).float().mean().item()
              for k in (1, 3, 5)}
    ranks = (sim > sim.diagonal()[:, None]).sum(-1)  # how many keys beat the match
    for k in (1, 3, 5):
        got = _float(fn(query, keys, k), "recall_at_k")
        mistakes = {
            "you ranked keys against queries (the other direction, keys @ query.T): for each QUERY row, is its "
            "own key (same index) among the k best keys?":
                ((query @ keys.T).T.topk(k, dim=-1).indices == torch.arange(30)[:, None]).any(-1).float().mean().item(),
            "you counted the k LEAST similar keys: take the top k by similarity (largest first).":
                ((-sim).topk(k, dim=-1).indices == torch.arange(30)[:, None]).any(-1).float().mean().item(),
            "off by one: a query is a hit when at most k − 1 keys score higher than its match, i.e. its match "
            "is among the top k (not k + 1).": (ranks <= k).float().mean().item(),
            "you returned a count, not a share: divide by the number of queries.":
                (ranks < k).float().sum().item(),
        }
        if k > 1:
            mistakes["your answer ignores k (this is Recall@1): a hit is the match anywhere in the top k."] = oracle[1]
        _same_number(got, oracle[k], mistakes, f"Recall@{k} differs")
    return f"R@1 {oracle[1]:.2f}, R@3 {oracle[3]:.2f}, R@5 {oracle[5]:.2f} on the check's data, like the oracle."
