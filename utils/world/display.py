"""Showing scenes: a gallery of images with their captions (Phase 0)."""
from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def to_hwc_uint8(image: Any) -> np.ndarray:
    """Accept uint8 HWC arrays or float CHW/HWC arrays/tensors in [0, 1]; return uint8 HWC."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = image.transpose(1, 2, 0)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
    return image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image


def show_gallery(
    images: Any,
    captions: Sequence[str] | None = None,
    ncols: int = 8,
    title: str | None = None,
    cell_size: float = 1.6,
    wrap: int = 24,
):
    """Plot images in a grid, each with its (wrapped) caption above it; returns the matplotlib Figure.

    ``images`` may be a uint8 array (N, H, W, 3), a float tensor (N, 3, H, W) in [0, 1], a list of such
    images, or a list of :meth:`World.item` dicts (their captions are used when ``captions`` is None).
    """
    import matplotlib.pyplot as plt  # imported lazily: the rest of the module does not need matplotlib

    images = list(images)
    if images and isinstance(images[0], dict):
        if captions is None:
            captions = [it["caption"] for it in images]
        images = [it["image"] for it in images]
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    lines = max((len(textwrap.wrap(c, wrap)) for c in captions), default=0) if captions is not None else 0
    text_h = 0.13 * lines
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell_size * ncols, (cell_size + text_h) * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(to_hwc_uint8(images[i]), interpolation="nearest")
        if captions is not None:
            ax.set_title(textwrap.fill(captions[i], wrap), fontsize=6)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
