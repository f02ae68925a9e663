"""Images as token sequences. Introduced in Phase 0 (token counts, Exercise 0.8), extended in Phase 2:
patchify, the ViT input embedding, a minimal ViT, spectrogram patches (audio tokens).
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


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images (B, C, H, W) into non-overlapping p × p patches: (B, N, C·p·p), N = (H // p)·(W // p).

    Patches in raster order (row by row); inside a patch the values are flattened channel first, then rows,
    then columns — the order of ``F.unfold`` and of a strided conv's weight, so that
    ``patchify(x, p) @ conv.weight.reshape(D, -1).T + conv.bias`` equals the conv patch embedding.
    Reference of Exercise 2.1 (patchify); also cuts spectrograms into audio tokens.
    """
    b, c, h, w = images.shape
    nh, nw = h // patch_size, w // patch_size
    x = images[:, :, : nh * patch_size, : nw * patch_size]
    x = x.reshape(b, c, nh, patch_size, nw, patch_size).permute(0, 2, 4, 1, 3, 5)  # (B, nh, nw, C, p, p)
    return x.reshape(b, nh * nw, c * patch_size * patch_size)


def vit_embed(images: torch.Tensor, patch_embed: nn.Conv2d, cls_token: torch.Tensor,
              pos_embed: torch.Tensor) -> torch.Tensor:
    """The input of a ViT: patch tokens from a strided conv, a learned [CLS] token in front, plus learned
    position embeddings. images (B, C, H, W), cls_token (1, 1, D), pos_embed (1, N + 1, D) → (B, N + 1, D).
    Reference of Exercise 2.2 (the ViT's input embedding)."""
    tokens = patch_embed(images).flatten(2).transpose(1, 2)               # (B, N, D)
    cls = cls_token.expand(len(images), -1, -1)                           # (B, 1, D)
    return torch.cat([cls, tokens], dim=1) + pos_embed


class TinyViT(nn.Module):
    """A minimal Vision Transformer: :func:`vit_embed`, pre-norm transformer blocks, [CLS] pooling, a linear
    head. ``embed`` replaces :func:`vit_embed` (Phase 2 passes the learner's). Introduced in Phase 2."""

    def __init__(self, image_size: int = 32, patch_size: int = 4, dim: int = 64, depth: int = 2, heads: int = 4,
                 n_classes: int = 10, embed=None) -> None:
        super().__init__()
        self.n_patches = num_patch_tokens(image_size, patch_size)
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, self.n_patches + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True,
                                                               norm_first=True) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)
        self.embed = embed or vit_embed

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """All output tokens (B, N + 1, D), [CLS] first."""
        x = self.embed(images, self.patch_embed, self.cls_token, self.pos_embed)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images)[:, 0])

    @torch.no_grad()
    def cls_attention(self, images: torch.Tensor) -> torch.Tensor:
        """How much the [CLS] token attends to each patch in the last block (averaged over heads): (B, N)."""
        x = self.embed(images, self.patch_embed, self.cls_token, self.pos_embed)
        for block in self.blocks[:-1]:
            x = block(x)
        last = self.blocks[-1]
        h = last.norm1(x)
        _, weights = last.self_attn(h, h, h, need_weights=True, average_attn_weights=True)
        return weights[:, 0, 1:]


def spectrogram_tokens(spec: torch.Tensor, patch_freq: int, patch_time: int) -> torch.Tensor:
    """Cut spectrograms (B, n_mels, frames) into patch_freq × patch_time patches, in raster order over the
    (frequency band, time step) grid, lowest band first: (B, N, patch_freq · patch_time).
    The audio counterpart of :func:`patchify` (AST, Whisper-style audio tokens; Exercise 2.6)."""
    b, f, t = spec.shape
    nf, nt = f // patch_freq, t // patch_time
    x = spec[:, : nf * patch_freq, : nt * patch_time].reshape(b, nf, patch_freq, nt, patch_time)
    return x.permute(0, 1, 3, 2, 4).reshape(b, nf * nt, patch_freq * patch_time)


def small_cnn(n_classes: int, width: int = 16, image_size: int = 32) -> nn.Sequential:
    """Two conv blocks and an MLP head: the course's baseline image classifier (Phase 0, reused in Phase 2).
    ``model[:-1]`` gives its 64-d penultimate features."""
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),            # 32 -> 16
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 16 -> 8
        nn.Flatten(), nn.Linear(2 * width * (image_size // 4) ** 2, 64), nn.ReLU(), nn.Linear(64, n_classes))
