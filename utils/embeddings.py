"""Embedding-space geometry: L2 normalisation and cosine similarity. Introduced in Phase 0.

Reference implementations of Exercises 0.2 and 0.3; CLIP-style models (Phase 3 on) use them.
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
