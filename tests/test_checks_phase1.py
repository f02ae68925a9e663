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


def _with(**changes) -> dict:
    answer = _key()
    answer.update({m.replace("_", "-"): v for m, v in changes.items()})
    return answer


# New plausible mistakes; the first two are caught by the consistency properties of the taxonomy, not the key.
@pytest.mark.parametrize("answer, phrase", [
    # the VLMs' image tokens enter the LLM's input sequence, so they look like early fusion
    (_with(**{m.replace("-", "_"): ("encoder-decoder", "early", "next-token") for m in ("LLaVA", "Qwen2-VL",
                                                                                        "PaliGemma")}),
     "LLaVA, Qwen2-VL, PaliGemma: the family and the fusion point do not fit together"),
    # one embedding space for every modality read as "unified"
    (_with(ImageBind=("unified", "early", "contrastive")), "ImageBind: with a contrastive objective only, nothing is"),
    (_with(Flamingo=("dual-encoder", "middle", "next-token")), "Flamingo: the family and the fusion point"),
    (_with(SigLIP=("dual-encoder", "late", "contrastive+next-token")), "SigLIP: a dual-encoder has no decoder"),
    (_with(PaliGemma=("encoder-decoder", "middle", "next-token+diffusion")), "encoder-decoder VLMs output text"),
    (_with(Transfusion=("unified", "early", "next-token")), "diffusion loss for the continuous image patches"),
    ({m: (u, f, o) for m, (f, u, o) in _key().items()}, "'late' is a fusion, not a family"),
])
def test_taxonomy_new_mistakes(answer, phrase):
    failed_with("1.1", answer, phrase)


def test_taxonomy_accepts_lists_for_entries():
    assert evaluate("1.1", {m: list(v) for m, v in _key().items()}).passed


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


# New plausible mistakes, none of them in the check's list: the properties of a distance between centroids.
def gap_sum(a, b):  # centroids as sums
    return (a.sum(0) - b.sum(0)).norm().item()


def gap_manhattan(a, b):  # L1 distance
    return (a.mean(0) - b.mean(0)).abs().sum().item()


def gap_scalar_means(a, b):  # one mean over every entry
    return (a.mean() - b.mean()).abs().item()


def gap_one_minus_cosine(a, b):
    return 1 - F.cosine_similarity(a.mean(0), b.mean(0), dim=0).item()


def gap_joint_mean(a, b):  # right for sets of equal size only
    return 2 * torch.cat([a, -b]).mean(0).norm().item()


def gap_median(a, b):
    return (a.median(0).values - b.median(0).values).norm().item()


def gap_signed(a, b):
    return (a.mean(0) - b.mean(0)).sum().item()


@pytest.mark.parametrize("answer, phrase", [
    (gap_sum, "MEAN of the rows"),
    (gap_manhattan, "rotated together"),
    (gap_scalar_means, "rotated together"),
    (gap_median, "rotated together"),
    (gap_one_minus_cosine, "does not double"),
    (gap_joint_mean, "sets of different sizes (10 and 7 rows)"),
    (gap_signed, "differs from gap(b, a)"),
])
def test_gap_properties_name_new_mistakes(answer, phrase):
    failed_with("1.2", answer, phrase)


@pytest.mark.parametrize("answer", [
    lambda a, b: np.linalg.norm(a.numpy().mean(0) - b.numpy().mean(0)),  # numpy's float32
    lambda a, b: torch.dist(a.double().mean(0), b.double().mean(0)),  # float64
    lambda a, b: torch.cdist(a.mean(0, keepdim=True), b.mean(0, keepdim=True)),  # a (1, 1) tensor
])
def test_gap_correct_variants_pass(answer):
    assert evaluate("1.2", answer).passed


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


# New plausible mistakes, none of them in the check's list: the properties of a PCA projection.
def pca_u_only(x):  # forgot the singular values
    u, _, _ = torch.linalg.svd(x - x.mean(0), full_matrices=False)
    return u[:, :2]


def pca_standardised(x):
    z = (x - x.mean(0)) / x.std(0)
    _, _, vh = torch.linalg.svd(z, full_matrices=False)
    return z @ vh[:2].T


def pca_never_centred(x):
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    return x @ vh[:2].T


def pca_lowrank_uncentred(x):
    u, s, _ = torch.pca_lowrank(x, q=2, center=False, niter=10)
    return u * s


def pca_eigh_ascending(x):  # eigh sorts ascending: the last two columns, but in the wrong order
    xc = x - x.mean(0)
    _, vecs = torch.linalg.eigh(xc.T @ xc / (len(x) - 1))
    return xc @ vecs[:, -2:]


def pca_top_variance_features(x):  # "the two most varying features"
    xc = x - x.mean(0)
    return xc[:, xc.var(0).argsort(descending=True)[:2]]


@pytest.mark.parametrize("answer, phrase", [
    (pca_u_only, "multiply it by the singular values S"),
    (pca_standardised, "Don't standardise"),
    (pca_never_centred, "do not have mean 0"),
    (pca_lowrank_uncentred, "do not have mean 0"),
    (pca_eigh_ascending, "ASCENDING order"),
    (pca_top_variance_features, "Don't select or weight the original columns"),
])
def test_pca_properties_name_new_mistakes(answer, phrase):
    failed_with("1.3", answer, phrase)


def pca_eigh(x):  # correct: eigenvectors of the covariance, largest first
    xc = x - x.mean(0)
    _, vecs = torch.linalg.eigh(xc.T @ xc)
    return xc @ vecs[:, [-1, -2]]


def pca_sklearn(x):  # correct: sklearn, float64 back
    from sklearn.decomposition import PCA
    return torch.from_numpy(PCA(2).fit_transform(x.numpy()).astype(np.float64))


def pca_float64(x):  # correct, computed in float64
    xc = x.double() - x.double().mean(0)
    _, _, vh = torch.linalg.svd(xc, full_matrices=False)
    return xc @ vh[:2].T


@pytest.mark.parametrize("answer", [pca_eigh, pca_sklearn, pca_float64])
def test_pca_more_correct_variants_pass(answer):
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


# New plausible mistakes, none of them in the check's list: the properties of a mean pairwise cosine.
def cone_upper_triangle_with_diagonal(x):
    x = F.normalize(x, dim=1)
    i, j = torch.triu_indices(len(x), len(x))  # offset 0 keeps the diagonal
    return (x @ x.T)[i, j].mean().item()


def cone_divides_by_n_squared(x):
    x = F.normalize(x, dim=1)
    s = x @ x.T
    return ((s.sum() - s.trace()) / len(x) ** 2).item()


def cone_normalises_columns(x):
    x = F.normalize(x, dim=0)
    s, n = x @ x.T, len(x)
    return ((s.sum() - s.trace()) / (n * (n - 1))).item()


def cone_neighbours_only(x):
    return F.cosine_similarity(x[:-1], x[1:], dim=-1).mean().item()


@pytest.mark.parametrize("answer, phrase", [
    (cone_upper_triangle_with_diagonal, "all orthogonal to each other"),
    (cone_divides_by_n_squared, "not n²"),
    (cone_normalises_columns, "not each column"),
    (cone_neighbours_only, "rows are shuffled"),
])
def test_cone_properties_name_new_mistakes(answer, phrase):
    failed_with("1.4", answer, phrase)


def cone_from_the_mean_vector(x):  # correct: ||sum of unit rows||² = n + sum over pairs of different rows
    n = len(x)
    m = F.normalize(x, dim=1).sum(0)
    return ((m.dot(m) - n) / (n * (n - 1))).item()


def cone_loop(x):  # correct: a double loop, float64
    x = x.double()
    n = len(x)
    return sum(F.cosine_similarity(x[i], x[j], dim=0).item() for i in range(n) for j in range(n) if i != j) / (
        n * (n - 1))


@pytest.mark.parametrize("answer", [cone_from_the_mean_vector, cone_loop])
def test_cone_correct_variants_pass(answer):
    assert evaluate("1.4", answer).passed


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


# New plausible mistakes, none of them in the check's list: the properties of each closed set.
def close_normalises_columns(a, b):
    return F.normalize(a - a.mean(0), dim=0), F.normalize(b - b.mean(0), dim=0)


def close_mean_over_coordinates(a, b):
    return F.normalize(a - a.mean(1, keepdim=True), dim=1), F.normalize(b - b.mean(1, keepdim=True), dim=1)


def close_only_a(a, b):
    return F.normalize(a - a.mean(0), dim=1), b


def close_standardised(a, b):
    return (a - a.mean(0)) / a.std(0), (b - b.mean(0)) / b.std(0)


def close_median(a, b):
    return F.normalize(a - a.median(0).values, dim=1), F.normalize(b - b.median(0).values, dim=1)


@pytest.mark.parametrize("answer, phrase", [
    (close_normalises_columns, "rows of a_closed are not unit length"),
    (close_standardised, "not by dividing by a standard deviation"),
    (close_mean_over_coordinates, "mean over the coordinates (dim=1)"),
    (close_only_a, "b_closed changes when every row of b is shifted"),
    (close_median, "not a median"),
])
def test_close_gap_properties_name_new_mistakes(answer, phrase):
    failed_with("1.5", answer, phrase)


def close_manual(a, b):  # correct: manual norms
    ca, cb = a - a.mean(0), b - b.mean(0)
    return ca / ca.norm(dim=1, keepdim=True), cb / cb.norm(dim=1, keepdim=True)


def close_list_float64(a, b):  # correct: a list, in float64
    return [F.normalize(s.double() - s.double().mean(0, keepdim=True), dim=-1) for s in (a, b)]


@pytest.mark.parametrize("answer", [close_manual, close_list_float64])
def test_close_gap_correct_variants_pass(answer):
    assert evaluate("1.5", answer).passed


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


# New plausible mistakes, none of them in the check's list: the properties of a cosine top-k.
def _cos(q, k):
    return F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T


def retrieve_normalises_columns(q, k, n):
    return (F.normalize(q, dim=0) @ F.normalize(k, dim=0).T).topk(n, dim=-1)


def retrieve_skips_the_first(q, k, n):  # "drop the self-match", where there is none
    v, i = _cos(q, k).topk(n + 1, dim=-1)
    return v[:, 1:], i[:, 1:]


def retrieve_euclidean_unnormalised(q, k, n):
    v, i = torch.cdist(q, k).topk(n, dim=-1, largest=False)
    return -v, i


def retrieve_distance_scores(q, k, n):  # right keys, but 1 − cosine as the score
    v, i = _cos(q, k).topk(n, dim=-1)
    return 1 - v, i


def retrieve_euclidean_scores(q, k, n):  # right keys, distances of the normalised vectors as scores
    return torch.cdist(F.normalize(q, dim=-1), F.normalize(k, dim=-1)).topk(n, dim=-1, largest=False)


def retrieve_dot_scores(q, k, n):  # right keys, raw dot products as the scores
    i = _cos(q, k).topk(n, dim=-1).indices
    return (q @ k.T).gather(1, i), i


@pytest.mark.parametrize("answer, phrase", [
    (retrieve_normalises_columns, "made longer"),
    (retrieve_euclidean_unnormalised, "not the columns"),
    (retrieve_skips_the_first, "no self-match to skip"),
    (retrieve_distance_scores, "not in descending order"),
    (retrieve_euclidean_scores, "leave [−1, 1]"),
    (retrieve_dot_scores, "scores are raw dot products"),
])
def test_retrieve_properties_name_new_mistakes(answer, phrase):
    failed_with("1.6", answer, phrase)


def retrieve_einsum_float64(q, k, n):  # correct: einsum, in float64
    return torch.einsum("qd,kd->qk", F.normalize(q.double(), dim=-1), F.normalize(k.double(), dim=-1)).topk(n)


def retrieve_loop(q, k, n):  # correct: a loop over the queries with Python's sorted
    rows = [sorted(((F.cosine_similarity(qi, kj, dim=0).item(), j) for j, kj in enumerate(k)), reverse=True)[:n]
            for qi in q]
    return torch.tensor([[s for s, _ in r] for r in rows]), torch.tensor([[j for _, j in r] for r in rows])


@pytest.mark.parametrize("answer", [retrieve_einsum_float64, retrieve_loop])
def test_retrieve_correct_variants_pass(answer):
    assert evaluate("1.6", answer).passed


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


# New plausible mistakes, none of them in the check's list: the properties of Recall@K.
def recall_against_positions(q, keys, k):  # compares with 0 … k − 1 instead of the query's own index
    top = (q @ keys.T).topk(k, dim=-1).indices
    return (top == torch.arange(k)).any(-1).float().mean().item()


def recall_as_precision(q, keys, k):  # mean over the k results
    top = (q @ keys.T).topk(k, dim=-1).indices
    return (top == torch.arange(len(q))[:, None]).float().mean().item()


def recall_percent(q, keys, k):
    top = (q @ keys.T).topk(k, dim=-1).indices
    return 100 * (top == torch.arange(len(q))[:, None]).any(-1).float().mean().item()


def recall_last_place_only(q, keys, k):  # is the match exactly k-th?
    top = (q @ keys.T).topk(k, dim=-1).indices
    return (top[:, -1] == torch.arange(len(q))).float().mean().item()


@pytest.mark.parametrize("answer, phrase", [
    (recall_against_positions, "ITS OWN index"),
    (recall_as_precision, "(a precision)"),
    (recall_percent, "not a percentage"),
    (recall_last_place_only, "can only grow with k"),
])
def test_recall_properties_name_new_mistakes(answer, phrase):
    failed_with("1.7", answer, phrase)


def recall_argsort_float64(q, keys, k):  # correct: ascending argsort, the last k; a float64 tensor
    top = (q @ keys.T).argsort(dim=-1)[:, -k:]
    return (top == torch.arange(len(q))[:, None]).any(-1).double().mean()


def recall_by_rank(q, keys, k):  # correct: count the keys strictly more similar than the match
    s = q @ keys.T
    return ((s > s.diagonal()[:, None]).sum(-1) < k).float().mean().item()


@pytest.mark.parametrize("answer", [recall_argsort_float64, recall_by_rank])
def test_recall_correct_variants_pass(answer):
    assert evaluate("1.7", answer).passed


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


# --- the cases the independent audit found misleading (issue: checks that name the mistake) -------------------

def test_retrieve_returning_indices_then_scores_is_told_the_order():
    def swapped(queries, keys, k=5):
        s = F.normalize(queries, dim=-1) @ F.normalize(keys, dim=-1).T
        top = s.topk(k, dim=-1)
        return top.indices, top.values

    failed_with("1.6", swapped, "wrong order: return (scores, indices)")


def test_recall_with_greater_or_equal_is_told_it_counts_the_match_itself():
    def ge(query, keys, k=1):
        sim = query @ keys.T
        rank = (sim >= sim.diagonal()[:, None]).sum(-1)  # the match ties with itself
        return (rank < k).float().mean().item()

    failed_with("1.7", ge, "counts the match itself (>=)")


# --- the property probes never blame a right answer ----------------------------------------------------------

def _off_on_first_call(right, offset=0.5):
    """Right everywhere except on its first call (the check's main comparison): every probe the check then runs
    sees a right answer and must hold, so the verdict is the generic fallback."""
    calls = []

    def answer(*args):
        calls.append(1)
        out = right(*args)
        return out + offset if len(calls) == 1 else out

    return answer


@pytest.mark.parametrize("exercise", ["1.2", "1.4", "1.7"])
def test_numeric_probes_hold_for_the_reference(exercise):
    from utils.checks import reference
    result = evaluate(exercise, _off_on_first_call(reference(exercise), 0.05 if exercise == "1.7" else 0.5))
    assert result.status == "failed" and not result.named, result.message


def test_tensor_probes_hold_for_the_reference():
    from utils import embeddings
    from utils.checks import phase1
    from utils.checks.oracles import broken
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 5, generator=g) * torch.tensor([4.0, 2.0, 1.0, 0.5, 0.2]) + 1.0
    assert broken(phase1._pca_probes(embeddings.pca_2d, x, embeddings.pca_2d(x))) is None
    a, b = phase1._two_clouds(8, 6, seed=5)
    for which, got in enumerate(embeddings.close_gap(a, b)):
        assert broken(phase1._close_gap_probes(embeddings.close_gap, a, b, got, which)) is None
    q, k = torch.randn(5, 8, generator=g), torch.randn(20, 8, generator=g)
    scores, indices = embeddings.retrieve(q, k, 3)
    assert broken(phase1._retrieve_index_probes(embeddings.retrieve, q, k, indices)) is None
    assert broken(phase1._retrieve_score_probes(embeddings.retrieve, q, k, scores)) is None


def test_the_answer_key_is_consistent_with_the_taxonomy_probes():
    from utils.checks.oracles import broken
    from utils.checks.phase1 import _taxonomy_probes
    assert broken(_taxonomy_probes(_key())) is None
