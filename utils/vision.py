"""Images as token sequences (ViT patching). Introduced in Phase 0, extended in Phase 2.

Reference for Exercise 0.8 (how many tokens a ViT sees).
"""
from __future__ import annotations

import torch
from torch import nn


def num_patch_tokens(image_size: int, patch_size: int) -> int:
    """Patch tokens a ViT makes from a square ``image_size`` image: (image_size // patch_size) ** 2 (no CLS)."""
    return (image_size // patch_size) ** 2


def patch_embed_tokens(image_size: int, patch_size: int, dim: int = 8) -> int:
    """Count tokens by running a real (strided-convolution) patch embedding on a blank image."""
    embed = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)
    with torch.no_grad():
        grid = embed(torch.zeros(1, 3, image_size, image_size))  # (1, dim, H/P, W/P)
    return grid.flatten(2).shape[-1]
