"""Attention from scratch: scaled dot-product, multi-head, cross-attention. Introduced in Phase 0.

Reference implementations of Exercises 0.4 and 0.5. Mask convention (the same as
``torch.nn.functional.scaled_dot_product_attention``): a boolean mask is True where a query MAY attend.
"""
from __future__ import annotations

import math

import torch


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None, return_weights: bool = False):
    """softmax(q kᵀ / sqrt(d) + mask) v for tensors shaped (..., T, d).

    ``mask`` is boolean and broadcastable to (..., T_q, T_k); True keeps a key. With
    ``return_weights=True`` also returns the attention weights (..., T_q, T_k).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    out = weights @ v
    return (out, weights) if return_weights else out


def causal_mask(t: int) -> torch.Tensor:
    """Boolean (t, t) mask that lets position i attend to positions 0..i only."""
    return torch.ones(t, t, dtype=torch.bool).tril()


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, D) → (B, H, T, D/H)."""
    b, t, d = x.shape
    return x.view(b, t, n_heads, d // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, d) → (B, T, H·d)."""
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


def multi_head_attention(x_q: torch.Tensor, x_kv: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor,
                         w_v: torch.Tensor, w_o: torch.Tensor, n_heads: int,
                         mask: torch.Tensor | None = None, return_weights: bool = False):
    """Multi-head attention of queries from ``x_q`` (B, Tq, D) over keys/values from ``x_kv`` (B, Tk, D).

    Weights are (D, D) matrices applied like ``nn.Linear`` (``x @ w.T``), without biases. Self-attention
    is ``x_q is x_kv``; cross-attention uses another sequence (e.g. image patches) for ``x_kv``.
    Returns (B, Tq, D), and the per-head weights (B, H, Tq, Tk) with ``return_weights=True``.
    """
    q = split_heads(x_q @ w_q.T, n_heads)
    k = split_heads(x_kv @ w_k.T, n_heads)
    v = split_heads(x_kv @ w_v.T, n_heads)
    out, weights = scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    out = merge_heads(out) @ w_o.T
    return (out, weights) if return_weights else out
