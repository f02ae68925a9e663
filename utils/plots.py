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
