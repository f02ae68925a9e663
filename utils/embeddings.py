"""Embedding-space geometry. Introduced in Phase 0, extended in Phase 1.

Phase 0 (Exercises 0.2, 0.3): L2 normalisation and cosine similarity. Phase 1 (Exercises 1.2-1.6): the
modality gap, PCA to 2-D, the cone effect, closing the gap, top-k retrieval. CLIP-style models in every
later phase use them.
"""
from __future__ import annotations

import torch


def l2_normalize(x: torch.Tensor, dim: int = -1, eps: float = 1e-12) -> torch.Tensor:
    """Scale each vector along ``dim`` to unit L2 norm (zero vectors stay zero, thanks to ``eps``)."""
    return x / x.norm(dim=dim, keepdim=True).clamp_min(eps)


def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All-pairs cosine similarity: ``a`` (N, D) and ``b`` (M, D) give an (N, M) matrix."""
    return l2_normalize(a) @ l2_normalize(b).T


def random_unit_vectors(n: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` random directions in ``dim`` dimensions (Gaussian samples, L2-normalised)."""
    return l2_normalize(torch.randn(n, dim, generator=generator))


def modality_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Distance between the centroids of two sets of L2-normalised embeddings, ``||mean(a) - mean(b)||``
    (Liang et al., 2022, "Mind the Gap"). Introduced in Phase 1."""
    return (a.mean(0) - b.mean(0)).norm().item()


def pca_2d(x: torch.Tensor, k: int = 2) -> torch.Tensor:
    """Project the rows of ``x`` (N, D) onto their top-``k`` principal components: centre, SVD, project.

    Each component's sign is fixed so that its largest-magnitude loading is positive (the result is then
    unique; sklearn's PCA agrees up to the sign of each column). Introduced in Phase 1.
    """
    centred = x - x.mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    components = vh[:k]
    signs = torch.sign(components.gather(1, components.abs().argmax(1, keepdim=True)))
    return centred @ (components * signs).T


def mean_pairwise_cosine(x: torch.Tensor) -> float:
    """Mean cosine similarity over all pairs of distinct rows of ``x`` (the diagonal excluded).

    Close to 0 for random directions; large when the vectors share a cone (Phase 1's cone effect).
    """
    n = len(x)
    sim = cosine_similarity_matrix(x, x)
    return ((sim.sum() - sim.diagonal().sum()) / (n * (n - 1))).item()


def close_gap(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove the modality gap: subtract each set's own centroid, then L2-normalise again. Introduced in Phase 1."""
    return l2_normalize(a - a.mean(0, keepdim=True)), l2_normalize(b - b.mean(0, keepdim=True))


def retrieve(queries: torch.Tensor, keys: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` keys by cosine similarity for each query: (scores, indices), each (Q, k), best first.

    Introduced in Phase 1 (the toy retrieval system).
    """
    return cosine_similarity_matrix(queries, keys).topk(k, dim=-1)


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors (B, T, D) over the real tokens only (``attention_mask`` (B, T), 1 = token,
    0 = padding): a sentence embedding from a text encoder's hidden states. Introduced in Phase 2."""
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def linear_probe(train_x, train_y, test_x, test_y, max_iter: int = 1000) -> float:
    """Held-out accuracy of a linear classifier on frozen features: standardise each feature (on the
    training set), fit a logistic regression, score on the test set. Introduced in Phase 2."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    as_np = lambda a: a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a  # noqa: E731
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    clf.fit(as_np(train_x), as_np(train_y))
    return float(clf.score(as_np(test_x), as_np(test_y)))
