"""Plot helpers with titles and labels by default: loss curves, embeddings, attention maps.

Image grids of the shapes world: :func:`utils.world.show_gallery`.

Introduced in Phase 0.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def plot_loss(losses: Sequence[float] | dict[str, Sequence[float]], title: str = "Training loss",
              smooth: int = 1, ax=None, log: bool = False):
    """Loss curve(s) against step; pass a dict to overlay several runs. Returns the Axes."""
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    curves = losses if isinstance(losses, dict) else {"loss": losses}
    for name, ys in curves.items():
        ys = np.asarray(ys, dtype=float)
        if smooth > 1 and len(ys) >= smooth:
            ys = np.convolve(ys, np.ones(smooth) / smooth, mode="valid")
        ax.plot(np.arange(len(ys)), ys, label=name)
    ax.set(title=title, xlabel="step", ylabel="loss")
    if log:
        ax.set_yscale("log")
    if len(curves) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    return ax


def scatter_embeddings(points: np.ndarray | torch.Tensor, labels: Sequence[str], title: str = "Embeddings",
                       ax=None, method: str = "pca"):
    """2-D scatter of embeddings coloured by label (PCA to 2-D when they have more dims). Returns the Axes."""
    x = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    if x.shape[1] > 2:
        if method != "pca":
            raise ValueError("only method='pca' is supported")
        x = x - x.mean(0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        x = x @ vt[:2].T
    ax = ax or plt.subplots(figsize=(5, 4))[1]
    for name in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == name]
        ax.scatter(x[idx, 0], x[idx, 1], s=10, label=name, alpha=0.7)
    ax.set(title=title, xlabel="component 1", ylabel="component 2")
    ax.legend(fontsize=7, markerscale=1.5)
    return ax


def plot_attention(weights: np.ndarray | torch.Tensor, x_labels: Sequence[str] | None = None,
                   y_labels: Sequence[str] | None = None, title: str = "Attention weights", ax=None):
    """Heat map of an attention matrix (queries as rows, keys as columns). Returns the Axes."""
    w = weights.detach().cpu().numpy() if isinstance(weights, torch.Tensor) else np.asarray(weights)
    ax = ax or plt.subplots(figsize=(5, 4))[1]
    im = ax.imshow(w, cmap="viridis", aspect="auto")
    if x_labels is not None:
        ax.set_xticks(range(len(x_labels)), x_labels, rotation=90, fontsize=7)
    if y_labels is not None:
        ax.set_yticks(range(len(y_labels)), y_labels, fontsize=7)
    ax.set(title=title, xlabel="key", ylabel="query")
    plt.colorbar(im, ax=ax, fraction=0.046)
    return ax


def draw_diagram(ax, boxes: dict[str, tuple[float, float, str, str]], arrows: Sequence[tuple[str, str]] = (),
                 title: str = "", box_size: tuple[float, float] = (0.26, 0.11)):
    """Draw a block diagram on ``ax`` in unit coordinates: ``boxes`` maps a name to (x, y, label, colour)
    (the box's centre), ``arrows`` joins boxes by name. Used for architecture figures (Phase 1 on).
    Returns the Axes."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    w, h = box_size
    patches = {}
    for name, (x, y, label, color) in boxes.items():
        patches[name] = ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.01",
                                                    facecolor=color, edgecolor="0.25", linewidth=1))
        ax.text(x, y, label, ha="center", va="center", fontsize=8)
    for a, b in arrows:  # centre to centre, clipped at the two boxes' edges
        ax.add_patch(FancyArrowPatch(boxes[a][:2], boxes[b][:2], patchA=patches[a], patchB=patches[b],
                                     arrowstyle="-|>", mutation_scale=10, color="0.3", shrinkA=1, shrinkB=1,
                                     linewidth=1))
    ax.set(xlim=(0, 1), ylim=(0, 1), title=title)
    ax.axis("off")
    return ax


def plot_retrieval(queries: Sequence[str], images: np.ndarray, top_indices: np.ndarray | torch.Tensor,
                   is_match: np.ndarray | torch.Tensor, scores: np.ndarray | torch.Tensor | None = None,
                   title: str = "Text → image retrieval"):
    """A retrieval grid: one row per text query, its top-k images left to right (best first); a green frame
    marks a correct image, a red one a wrong one. ``images`` is (N, H, W, 3) uint8, ``top_indices`` and
    ``is_match`` are (Q, k). Introduced in Phase 1. Returns the Figure."""
    top = np.asarray(top_indices)
    match = np.asarray(is_match, dtype=bool)
    q, k = top.shape
    fig, axes = plt.subplots(q, k, figsize=(1.3 * k + 2.6, 1.35 * q), squeeze=False)
    for r in range(q):
        for c in range(k):
            ax = axes[r, c]
            ax.imshow(images[top[r, c]])
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor("tab:green" if match[r, c] else "tab:red")
                spine.set_linewidth(3)
            if scores is not None:
                ax.set_title(f"{float(np.asarray(scores)[r, c]):.2f}", fontsize=7)
        axes[r, 0].set_ylabel(queries[r], rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
