"""Unit tests of the Phase 1 exercise self-checks (``utils/checks/phase1.py``).

Each wrong answer is written the way a learner would write it, and the test asserts that the check fails
with the hint naming that mistake (and that the reference and a few correct variants pass).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.checks_testing import failed_with
from utils.checks import evaluate
from utils.checks.phase1 import MODEL_KEY

# --- 1.1 ------------------------------------------------------------------------------------------------

def _key() -> dict:
    return {m: v[:3] for m, v in MODEL_KEY.items()}


def test_taxonomy_accepts_case_and_spacing():
    answer = {m: (f.upper(), f" {u} ", o.replace("-", "_")) for m, (f, u, o) in _key().items()}
    assert evaluate("1.1", answer).passed


def test_taxonomy_llava_as_early_fusion_is_explained():
    answer = _key()
    answer["LLaVA"] = ("encoder-decoder", "early", "next-token")
    failed_with("1.1", answer, "LLaVA (check the fusion)")
    failed_with("1.1", answer, "10/11 models right")


def test_taxonomy_blip2_without_its_contrastive_stage():
    answer = _key()
    answer["BLIP-2"] = ("encoder-decoder", "middle", "next-token")
    failed_with("1.1", answer, "image-text contrastive loss")


def test_taxonomy_unknown_label_is_named():
    answer = _key()
    answer["CLIP"] = ("two-tower", "late", "contrastive")
    failed_with("1.1", answer, "'two-tower' is not a family")


def test_taxonomy_missing_models():
    answer = _key()
    del answer["Transfusion"]
    failed_with("1.1", answer, "missing: Transfusion")


# --- 1.2 ------------------------------------------------------------------------------------------------

def gap_cosine_of_centroids(a, b):
    return F.cosine_similarity(a.mean(0), b.mean(0), dim=0).item()


def gap_normalised_centroids(a, b):
    return (F.normalize(a.mean(0), dim=0) - F.normalize(b.mean(0), dim=0)).norm().item()


def gap_pairwise(a, b):
    return (a - b).norm(dim=1).mean().item()


def gap_vector(a, b):
    return a.mean(0) - b.mean(0)


def gap_squared(a, b):
    return ((a.mean(0) - b.mean(0)) ** 2).sum().item()


def gap_wrong_axis(a, b):
    return (a.mean(1) - b.mean(1)).norm().item()


@pytest.mark.parametrize("answer, phrase", [
    (gap_cosine_of_centroids, "cosine similarity of the two centroids"),
    (gap_normalised_centroids, "re-normalised the centroids"),
    (gap_pairwise, "matched pairs"),
    (gap_vector, "should be one number"),
    (gap_squared, "squared distance"),
    (gap_wrong_axis, "dim=0"),
])
def test_gap_mistakes(answer, phrase):
    failed_with("1.2", answer, phrase)


def test_gap_tensor_scalar_is_accepted():
    assert evaluate("1.2", lambda a, b: torch.linalg.vector_norm(a.mean(0) - b.mean(0))).passed


# --- 1.3 ------------------------------------------------------------------------------------------------

def pca_uncentred(x):
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    return (x - x.mean(0)) @ vh[:2].T


def pca_project_raw(x):
    _, _, vh = torch.linalg.svd(x - x.mean(0), full_matrices=False)
    return x @ vh[:2].T


def pca_last_components(x):
    xc = x - x.mean(0)
    _, _, vh = torch.linalg.svd(xc, full_matrices=False)
    return xc @ vh[-2:].T


def pca_columns(x):
    xc = x - x.mean(0)
    _, _, vh = torch.linalg.svd(xc, full_matrices=False)
    return xc @ vh[:, :2]


def pca_directions(x):
    _, _, vh = torch.linalg.svd(x - x.mean(0), full_matrices=False)
    return vh[:2]


def pca_flipped(x):  # correct up to sign: must pass
    xc = x - x.mean(0)
    u, s, _ = torch.linalg.svd(xc, full_matrices=False)
    return -(u[:, :2] * s[:2])


def pca_with_lowrank(x):  # correct, another library route: must pass
    u, s, _ = torch.pca_lowrank(x, q=2, center=True, niter=10)
    return u * s


@pytest.mark.parametrize("answer, phrase", [
    (pca_uncentred, "not centred"),
    (pca_project_raw, "projected the uncentred data"),
    (pca_last_components, "LAST two components"),
    (pca_columns, "COLUMNS of Vh"),
    (pca_directions, "principal directions"),
])
def test_pca_mistakes(answer, phrase):
    failed_with("1.3", answer, phrase)


@pytest.mark.parametrize("answer", [pca_flipped, pca_with_lowrank])
def test_pca_correct_variants_pass(answer):
    assert evaluate("1.3", answer).passed


# --- 1.4 ------------------------------------------------------------------------------------------------

def cone_with_diagonal(x):
    x = F.normalize(x, dim=1)
    return (x @ x.T).mean().item()


def cone_dot_products(x):
    n = len(x)
    d = x @ x.T
    return ((d.sum() - d.trace()) / (n * (n - 1))).item()


def cone_absolute(x):
    x = F.normalize(x, dim=1)
    s = (x @ x.T).abs()
    n = len(x)
    return ((s.sum() - s.trace()) / (n * (n - 1))).item()


def cone_upper_triangle(x):  # correct: the same mean over unordered pairs
    x = F.normalize(x, dim=1)
    i, j = torch.triu_indices(len(x), len(x), offset=1)
    return (x @ x.T)[i, j].mean().item()


@pytest.mark.parametrize("answer, phrase", [
    (cone_with_diagonal, "diagonal"),
    (cone_dot_products, "dot products, not cosines"),
    (cone_absolute, "|cosine|"),
])
def test_cone_mistakes(answer, phrase):
    failed_with("1.4", answer, phrase)


def test_cone_upper_triangle_passes():
    assert evaluate("1.4", cone_upper_triangle).passed


# --- 1.5 ------------------------------------------------------------------------------------------------

def close_without_renorm(a, b):
    return a - a.mean(0), b - b.mean(0)


def close_joint_mean(a, b):
    m = torch.cat([a, b]).mean(0)
    return F.normalize(a - m, dim=1), F.normalize(b - m, dim=1)


def close_swapped(a, b):
    return F.normalize(a - b.mean(0), dim=1), F.normalize(b - a.mean(0), dim=1)


def close_half_shift(a, b):
    g = a.mean(0) - b.mean(0)
    return F.normalize(a - g / 2, dim=1), F.normalize(b + g / 2, dim=1)


@pytest.mark.parametrize("answer, phrase", [
    (close_without_renorm, "no longer unit length"),
    (close_joint_mean, "mean of both sets together"),
    (close_swapped, "OTHER set's centroid"),
    (close_half_shift, "half-way along the gap"),
    (lambda a, b: F.normalize(a - a.mean(0), dim=1), "return a pair"),
])
def test_close_gap_mistakes(answer, phrase):
    failed_with("1.5", answer, phrase)


# --- 1.6 ------------------------------------------------------------------------------------------------

def retrieve_dot(q, k, n):
    return (q @ k.T).topk(n, dim=-1)


def retrieve_ascending(q, k, n):
    s = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T
    idx = s.argsort(dim=-1)[:, :n]
    return s.gather(1, idx), idx


def retrieve_wrong_axis(q, k, n):
    s = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T
    return s.topk(n, dim=0)


def retrieve_unsorted(q, k, n):
    s = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T
    v, i = s.topk(n, dim=-1)
    return v.flip(-1), i.flip(-1)


def retrieve_with_sort(q, k, n):  # correct: sort instead of topk
    s = F.cosine_similarity(q[:, None], k[None], dim=-1)
    v, i = s.sort(dim=-1, descending=True)
    return v[:, :n], i[:, :n]


@pytest.mark.parametrize("answer, phrase", [
    (retrieve_dot, "raw dot products"),
    (retrieve_ascending, "LEAST similar"),
    (retrieve_wrong_axis, "one row per QUERY"),
    (retrieve_unsorted, "best match first"),
])
def test_retrieve_mistakes(answer, phrase):
    failed_with("1.6", answer, phrase)


def test_retrieve_sort_variant_passes():
    assert evaluate("1.6", retrieve_with_sort).passed


# --- 1.7 ------------------------------------------------------------------------------------------------

def recall_transposed(q, keys, k):
    top = (keys @ q.T).topk(k, dim=-1).indices
    return (top == torch.arange(len(q))[:, None]).any(-1).float().mean().item()


def recall_smallest(q, keys, k):
    top = (q @ keys.T).topk(k, dim=-1, largest=False).indices
    return (top == torch.arange(len(q))[:, None]).any(-1).float().mean().item()


def recall_off_by_one(q, keys, k):
    s = q @ keys.T
    rank = (s > s.diagonal()[:, None]).sum(-1)
    return (rank <= k).float().mean().item()


def recall_count(q, keys, k):
    top = (q @ keys.T).topk(k, dim=-1).indices
    return (top == torch.arange(len(q))[:, None]).any(-1).sum().item()


def recall_ignores_k(q, keys, k):
    return ((q @ keys.T).argmax(-1) == torch.arange(len(q))).float().mean().item()


def recall_numpy(q, keys, k):  # correct, numpy route: must pass
    s = (q @ keys.T).numpy()
    order = np.argsort(-s, axis=1)[:, :k]
    return float(np.mean([i in row for i, row in enumerate(order)]))


@pytest.mark.parametrize("answer, phrase", [
    (recall_transposed, "other direction"),
    (recall_smallest, "LEAST similar"),
    (recall_off_by_one, "off by one"),
    (recall_count, "count, not a share"),
    (recall_ignores_k, "ignores k"),
])
def test_recall_mistakes(answer, phrase):
    failed_with("1.7", answer, phrase)


def test_recall_numpy_variant_passes():
    assert evaluate("1.7", recall_numpy).passed


# --- the utils functions behind the references ------------------------------------------------------------

def test_pca_2d_matches_sklearn_and_fixes_signs():
    from sklearn.decomposition import PCA

    from utils.embeddings import pca_2d
    x = torch.randn(50, 7, generator=torch.Generator().manual_seed(0)) * torch.arange(1.0, 8.0)
    ours = pca_2d(x.double())
    theirs = torch.from_numpy(PCA(2).fit_transform(x.double().numpy()))
    for j in range(2):
        assert torch.allclose(ours[:, j].abs(), theirs[:, j].abs(), atol=1e-8)
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(pca_2d(x)[perm], pca_2d(x[perm]), atol=1e-4)  # the sign rule makes it unique


def test_close_gap_removes_the_gap_on_real_shaped_data():
    from utils.embeddings import close_gap, l2_normalize, modality_gap
    g = torch.Generator().manual_seed(1)
    a = l2_normalize(torch.randn(500, 32, generator=g) + 3 * torch.eye(32)[0])
    b = l2_normalize(torch.randn(500, 32, generator=g) + 3 * torch.eye(32)[1])
    ca, cb = close_gap(a, b)
    assert modality_gap(a, b) > 0.5
    assert modality_gap(ca, cb) < 0.1
    assert torch.allclose(ca.norm(dim=1), torch.ones(500))
