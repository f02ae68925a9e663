"""The course's metrics, one home for every phase: retrieval (Recall@K, in blocks), accuracy per kind, box IoU,
and a plain-text results table. Introduced in Phase 1 (Recall@K); Phase 4 (per-kind tables), Phase 5 (IoU);
Phase 9's evaluation suite grows here.

Each is small and exact; where a library computes the same thing it is the oracle in the tests
(``torchvision.ops.box_iou`` for IoU).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def recall_at_k(query: torch.Tensor, keys: torch.Tensor, k: int = 1) -> float:
    """Share of queries whose matching key (same index) is among their ``k`` most similar keys (dot product:
    pass L2-normalised embeddings for cosine similarity). Exercise 1.7."""
    top = (query @ keys.T).topk(k, dim=-1).indices
    return (top == torch.arange(len(query))[:, None]).any(-1).float().mean().item()


def recall_in_blocks(query: torch.Tensor, keys: torch.Tensor, block: int = 100, k: int = 1) -> float:
    """Recall@k with each query searched among the ``block`` keys of its own block (rows i·block…), averaged
    over the blocks: "R@1 among 100" on a long list of pairs. Introduced in Phase 1."""
    return float(np.mean([recall_at_k(query[b:b + block], keys[b:b + block], k) for b in range(0, len(query), block)]))


def per_kind_accuracy(correct: Sequence[bool], kinds: Sequence[str], order: Sequence[str] | None = None
                      ) -> dict[str, float]:
    """Accuracy per kind (e.g. question kind), in ``order`` (default: sorted; kinds outside ``order`` are left
    out), and over everything ("all")."""
    ok, kinds = np.asarray(correct, dtype=bool), np.asarray(kinds)
    order = sorted(set(kinds.tolist())) if order is None else order
    out = {k: float(ok[kinds == k].mean()) for k in order if (kinds == k).any()}
    out["all"] = float(ok.mean())
    return out


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1); 0 when the union is empty. Exercise 5.6."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def accuracy_table(rows: dict[str, dict[str, float]], columns: Sequence[str]) -> str:
    """A plain-text table: one row per entry of ``rows`` (name -> {column: value}), numbers to 3 decimals,
    integers with thousands separators."""
    width = max(len(n) for n in rows) + 2
    lines = ["".ljust(width) + "".join(c.rjust(12) for c in columns)]
    for name, values in rows.items():
        cells = []
        for c in columns:
            v = values.get(c, float("nan"))
            text = f"{v:,}" if isinstance(v, int) else f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3f}"
            cells.append(text.rjust(12))
        lines.append(name.ljust(width) + "".join(cells))
    return "\n".join(lines)
