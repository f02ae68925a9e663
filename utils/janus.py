"""One image encoder for both jobs? Janus's point, measured (Phase 7).

Janus and Janus-Pro (DeepSeek, 2024–2025) read images through a semantic encoder (SigLIP) and write them through a
VQ tokenizer, because one encoder serves the two jobs badly. The course has both kinds: the zoo CLIP's feature grid
(what the zoo VLM reads: 4×4 cells of 128 numbers at ``layer2``) and the zoo VQ-VAE's codewords (what the Chameleon
writes: 8×8 cells of 16 numbers). This module puts each representation to both jobs with the same heads, the same
data and the same budget:

- **understanding**: Phase 4's projector VQA head (:class:`utils.fusion.FusionVQA`, pattern ``"projector"``) reads
  the image tokens beside the question's hidden states and picks an answer;
- **drawing back**: a decoder of the VQ-VAE's own design (``diffusers``' VAE ``Decoder``: 3 halvings undone for the
  CLIP's 4×4 grid, 2 for the VQ's 8×8) learns to paint the image from the tokens; scored by PSNR.

Both encoders stay frozen; their tokens are standardised per channel (statistics of the training images) so that one
learning rate suits both. The zoo's copy, ``data/models/tiny-two-encoders-shapes``, is trained by ``make models
MODEL=tiny-two-encoders-shapes``: per encoder a subfolder with ``head.safetensors``, ``decoder.safetensors`` and
``probe_config.json``, loaded with :func:`load_probe`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from . import env
from .clip import clip_grid_tokens, normalize_images
from .fusion import FusionVQA
from .train import History, adamw_one_cycle, train, update
from .vq import VQ_DIR, codebook_of, to_model_range, tokenize

ZOO_TWO_ENCODERS = VQ_DIR.parent / "tiny-two-encoders-shapes"
ENCODERS: tuple[str, ...] = ("clip", "vq")  # the zoo CLIP's feature grid, the zoo VQ-VAE's codewords
CLIP_LAYER = "layer2"  # the grid the zoo VLM reads
DECODER_WIDTHS = (16, 32, 32, 32)  # the VQ-VAE decoder's widths, one more block where one more halving is undone


@torch.no_grad()
def image_tokens(encoder: str, images_uint8: np.ndarray, visual: nn.Module, vqvae) -> torch.Tensor:
    """What an image becomes for the model that reads it, (N, cells, channels), row-major cells:
    ``"clip"`` — the zoo CLIP tower's ``layer2`` grid (N, 16, 128); ``"vq"`` — the VQ-VAE's chosen codewords
    (N, 64, 16), i.e. the vectors its decoder draws from."""
    if encoder == "clip":
        return clip_grid_tokens(visual, normalize_images(images_uint8), CLIP_LAYER)
    if encoder == "vq":
        return codebook_of(vqvae).detach()[tokenize(vqvae, to_model_range(images_uint8))].flatten(1, 2)
    raise ValueError(f"encoder must be one of {ENCODERS}, not {encoder!r}")


class Standardiser(NamedTuple):
    """Per-channel mean and standard deviation of an encoder's tokens on the training images."""

    mean: torch.Tensor  # (C,)
    std: torch.Tensor   # (C,)

    @classmethod
    def fit(cls, tokens: torch.Tensor) -> "Standardiser":
        return cls(tokens.mean((0, 1)), tokens.std((0, 1)) + 1e-5)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        return (tokens - self.mean) / self.std


def as_grid(tokens: torch.Tensor) -> torch.Tensor:
    """Row-major tokens (N, side², C) → a feature map (N, C, side, side)."""
    side = int(round(tokens.shape[1] ** 0.5))
    return tokens.transpose(1, 2).reshape(len(tokens), tokens.shape[2], side, side)


def pixel_decoder(channels: int, side: int, image_size: int = 32) -> nn.Module:
    """``diffusers``' VAE ``Decoder`` from a ``side``×``side`` grid of ``channels`` to RGB ``image_size`` pixels: the
    zoo VQ-VAE's decoder design (GroupNorm of 8, one ResNet layer per block, no attention): one up block per halving
    to undo plus the last, full-resolution one (3 blocks from 8×8, 4 from 4×4)."""
    from diffusers.models.autoencoders.vae import Decoder

    blocks = int(np.log2(image_size // side)) + 1
    return Decoder(in_channels=channels, out_channels=3, up_block_types=("UpDecoderBlock2D",) * blocks,
                   block_out_channels=DECODER_WIDTHS[:blocks], layers_per_block=1, norm_num_groups=8,
                   mid_block_add_attention=False)


def train_decoder(decoder: nn.Module, tokens: torch.Tensor, images: torch.Tensor, *, steps: int, batch_size: int = 64,
                  lr: float = 2e-3, seed: int = 0, desc: str = "decoder") -> History:
    """Train ``decoder`` to draw ``images`` (N, 3, H, W) in [-1, 1] from standardised ``tokens`` (N, cells, C):
    mean squared error, AdamW with a one-cycle schedule (the VQ-VAE's recipe, its encoder and codebook frozen)."""
    torch.manual_seed(env.seed(seed))
    optimizer, schedule = adamw_one_cycle(decoder.parameters(), lr, steps, weight_decay=0.0)
    g = env.generator(seed)

    def batches():
        while True:
            pick = torch.randint(len(tokens), (batch_size,), generator=g)
            yield as_grid(tokens[pick]), images[pick]

    def step(batch) -> float:
        decoder.train()
        return update(F.mse_loss(decoder(batch[0]), batch[1]), optimizer, schedule, max_grad_norm=1.0,
                      params=decoder.parameters())

    history = train(step, batches(), steps, desc=desc)
    decoder.eval()
    return history


@torch.no_grad()
def draw_back(decoder: nn.Module, tokens: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Images (N, 3, H, W) in [-1, 1] painted by ``decoder`` from standardised ``tokens``."""
    decoder.eval()
    return torch.cat([decoder(as_grid(tokens[i:i + batch_size])).clamp(-1, 1)
                      for i in range(0, len(tokens), batch_size)])


def vqa_head(cells: int, channels: int, max_text: int, text_dim: int = 64) -> FusionVQA:
    """Phase 4's projector VQA head for ``cells`` image tokens of ``channels`` numbers."""
    return FusionVQA("projector", grid_dim=channels, pooled_dim=text_dim, text_dim=text_dim, n_grid=cells,
                     max_text=max_text)


class Probe(NamedTuple):
    """One encoder's two heads, as trained on its frozen tokens."""

    encoder: str
    standardise: Standardiser
    head: FusionVQA       # understanding
    decoder: nn.Module    # drawing back


def save_probe(probe: Probe, out: str | Path, cells: int, channels: int, max_text: int) -> None:
    """Write ``probe`` to ``out/<encoder>/``: ``head.safetensors``, ``decoder.safetensors``, ``probe_config.json``."""
    folder = Path(out) / probe.encoder
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in probe.head.state_dict().items()}, folder / "head.safetensors")
    save_file({k: v.contiguous() for k, v in probe.decoder.state_dict().items()}, folder / "decoder.safetensors")
    config = {"encoder": probe.encoder, "cells": cells, "channels": channels, "max_text": max_text,
              "mean": probe.standardise.mean.tolist(), "std": probe.standardise.std.tolist()}
    (folder / "probe_config.json").write_text(json.dumps(config) + "\n")


def load_probe(encoder: str, path: str | Path = ZOO_TWO_ENCODERS) -> Probe:
    """The saved heads of ``encoder`` (``"clip"`` or ``"vq"``), in eval mode."""
    folder = Path(path) / encoder
    config = json.loads((folder / "probe_config.json").read_text())
    head = vqa_head(config["cells"], config["channels"], config["max_text"])
    head.load_state_dict(load_file(folder / "head.safetensors"))
    decoder = pixel_decoder(config["channels"], int(round(config["cells"] ** 0.5)))
    decoder.load_state_dict(load_file(folder / "decoder.safetensors"))
    standardise = Standardiser(torch.tensor(config["mean"]), torch.tensor(config["std"]))
    return Probe(encoder, standardise, head.eval(), decoder.eval())


def question_data(world, split: str, n_scenes: int, vlm, vqvae, seed: int = 0) -> dict:
    """Phase 4's VQA data (:func:`utils.fusion.vqa_data`) for scenes 0..n_scenes-1 of ``split``, the questions
    encoded by the zoo VLM's frozen GPT-2 (``vlm``: a :class:`utils.vlm.TinyVLM`, whose tokenizer knows every
    question word), plus each encoder's raw tokens under ``"tokens"`` (``{"clip": ..., "vq": ...}``)."""
    from .fusion import vqa_data

    data = vqa_data(world, split, n_scenes, vlm.visual, vlm.lm, vlm.tokenizer, seed=seed)
    assert data["grid"].shape[1:] == (16, 128), "vqa_data's grid is no longer the VLM's layer2 grid"
    data["tokens"] = {"clip": data["grid"], "vq": image_tokens("vq", data["pixels"], vlm.visual, vqvae)}
    return data


def evaluate(probe: Probe, data: dict) -> dict:
    """``probe`` on held-out :func:`question_data`: VQA accuracy per question kind (and "all") and the PSNR (dB) of
    the images drawn back, with the images themselves (uint8) under ``"drawn"``."""
    from .fusion import accuracy_by_kind, predict
    from .metrics import psnr
    from .vq import to_uint8

    tokens = probe.standardise(data["tokens"][probe.encoder])
    vqa = accuracy_by_kind(predict(probe.head, {**data, "grid": tokens}), data)
    drawn = draw_back(probe.decoder, tokens)
    return {"vqa": vqa, "psnr": psnr(to_model_range(data["pixels"]), drawn), "drawn": to_uint8(drawn)}
