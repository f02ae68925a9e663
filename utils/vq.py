"""Discrete image tokens: a VQ-VAE over the shapes world (Phase 7).

A VQ-VAE (van den Oord et al., 2017) is an autoencoder with a *vector quantiser* in the middle: a convolutional
encoder turns a 32×32 image into a small grid of latent vectors (8×8 of them here), each vector is replaced by the
nearest of K codewords, and a decoder draws the image back from the codewords. The indices of those codewords are
the image's **tokens**: Chameleon, Emu3 and Janus-Pro generate images by writing them the way a GPT writes words.

The model is ``diffusers``' own ``VQModel`` (the first stage of latent diffusion), built tiny from a config and
loaded with ``VQModel.from_pretrained(path)`` — the same call that loads a real one. The zoo's copy,
``data/models/tiny-vqvae-shapes``, is trained by ``make models MODEL=tiny-vqvae-shapes`` around
``vector_quantize_pytorch``'s ``VectorQuantize`` (k-means initialisation, EMA codebook updates, dead-code
replacement); its ``coarse`` subfolder holds the same recipe with one more downsampling (4×4 tokens).

Images go in and come out as floats in [-1, 1] (``to_model_range``); :func:`vector_quantize` is the reference of
Exercise 7.1, :func:`codebook_perplexity` of Exercise 7.2.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from . import env
from .train import History, adamw_one_cycle, train, update

ROOT = Path(__file__).resolve().parent.parent
VQ_DIR = ROOT / "data" / "models" / "tiny-vqvae-shapes"
COARSE = "coarse"  # the 4×4-token variant, a subfolder of VQ_DIR
IMAGE_SIZE = 32


class Quantized(NamedTuple):
    """What a vector quantiser returns: the quantised latents (straight-through), the codes and the two losses."""

    quantized: torch.Tensor       # (B, D, H, W): codebook[indices] in the forward pass, gradient passed to z
    indices: torch.Tensor         # (B, H, W) long
    codebook_loss: torch.Tensor   # ||sg(z) - q||²: moves the chosen codewords towards the encoder's outputs
    commitment_loss: torch.Tensor  # ||z - sg(q)||²: keeps the encoder near its codewords


def vector_quantize(z: torch.Tensor, codebook: torch.Tensor) -> Quantized:
    """Quantise latents ``z`` (B, D, H, W) with ``codebook`` (K, D): each D-vector becomes its nearest codeword
    (Euclidean). The quantised tensor equals the codewords in the forward pass and passes its gradient straight
    through to ``z`` (the straight-through estimator). The losses are mean squared errors: the codebook loss
    reaches only the codebook, the commitment loss only ``z`` (each detaches the other side)."""
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])                  # (B·H·W, D)
    indices = torch.cdist(flat, codebook).argmin(-1)                       # (B·H·W,)
    q = codebook[indices].view(z.shape[0], z.shape[2], z.shape[3], -1).permute(0, 3, 1, 2)  # (B, D, H, W)
    codebook_loss = F.mse_loss(q, z.detach())
    commitment_loss = F.mse_loss(z, q.detach())
    quantized = z + (q - z).detach()                                       # straight-through
    return Quantized(quantized, indices.view(z.shape[0], z.shape[2], z.shape[3]), codebook_loss, commitment_loss)


def codebook_perplexity(indices: torch.Tensor, n_codes: int) -> float:
    """exp(entropy) of how often each of the ``n_codes`` codes is used in ``indices``: n_codes when all are used
    equally, 1 when one code does all the work — "how many codes the codebook effectively has"."""
    counts = torch.bincount(indices.flatten(), minlength=n_codes).float()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return float(entropy.exp())


def dead_share(indices: torch.Tensor, n_codes: int) -> float:
    """Share of the ``n_codes`` codes never used in ``indices`` (dead codes)."""
    return 1.0 - torch.unique(indices).numel() / n_codes


def tiny_vqvae_config(downsamplings: int = 2, channels: Sequence[int] = (16, 32, 32), n_codes: int = 256,
                      code_dim: int = 16) -> dict:
    """A ``diffusers.VQModel`` config for 32×32 world images: ``downsamplings`` halvings (2 → 8×8 tokens, 3 →
    4×4), ``n_codes`` codewords of ``code_dim`` numbers; no attention in the middle block (CPU-sized)."""
    blocks = downsamplings + 1
    widths = (tuple(channels) + (channels[-1],) * blocks)[:blocks]
    return {"down_block_types": ["DownEncoderBlock2D"] * blocks, "up_block_types": ["UpDecoderBlock2D"] * blocks,
            "block_out_channels": list(widths), "layers_per_block": 1, "latent_channels": code_dim,
            "vq_embed_dim": code_dim, "num_vq_embeddings": n_codes, "norm_num_groups": 8,
            "sample_size": IMAGE_SIZE, "mid_block_add_attention": False}


def create_vqvae(config: dict):
    """A fresh ``diffusers.VQModel`` from a config dict (:func:`tiny_vqvae_config`)."""
    from diffusers import VQModel

    return VQModel(**config)


def load_vqvae(path: str | Path = VQ_DIR, subfolder: str | None = None):
    """The zoo VQ-VAE (or its ``coarse`` 4×4-token variant) in eval mode, loaded with ``VQModel.from_pretrained``."""
    from diffusers import VQModel

    # a folder path rather than subfolder=: diffusers reads a subfolder's weights from the parent folder when the
    # parent holds weights too; low_cpu_mem_usage=False: the same loading, without asking for `accelerate`
    folder = Path(path) / subfolder if subfolder else Path(path)
    return VQModel.from_pretrained(str(folder), low_cpu_mem_usage=False).eval()


def to_model_range(images_uint8: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W, 3) → float (N, 3, H, W) in [-1, 1], the range the VQ-VAE reads and writes."""
    return torch.as_tensor(np.ascontiguousarray(images_uint8)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) in [-1, 1] → uint8 (N, H, W, 3), clamped and rounded."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def codebook_of(model) -> torch.Tensor:
    """The VQ-VAE's codebook (K, D), a view of its quantiser's embedding."""
    return model.quantize.embedding.weight


def grid_size(model) -> int:
    """Tokens per side: 32 px halved once per down block but the last (2 halvings → 8)."""
    return IMAGE_SIZE // 2 ** (len(model.config.block_out_channels) - 1)


@torch.no_grad()
def tokenize(model, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Images (N, 3, H, W) in [-1, 1] → tokens (N, h, w), the indices of the nearest codewords."""
    out = []
    for i in range(0, len(images), batch_size):
        z = model.encode(images[i:i + batch_size].to(model.device)).latents
        out.append(vector_quantize(z, codebook_of(model)).indices.cpu())
    return torch.cat(out)


@torch.no_grad()
def detokenize(model, tokens: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Tokens (N, h, w) → images (N, 3, H, W) in [-1, 1], drawn by the decoder from the codewords."""
    out = []
    book = codebook_of(model)
    for i in range(0, len(tokens), batch_size):
        q = book[tokens[i:i + batch_size].to(book.device)].permute(0, 3, 1, 2)
        out.append(model.decode(q, force_not_quantize=True).sample.clamp(-1, 1).cpu())
    return torch.cat(out)


def reconstruct(model, images: torch.Tensor) -> torch.Tensor:
    """Images through the tokens and back: ``detokenize(tokenize(images))``."""
    return detokenize(model, tokenize(model, images))


def train_vqvae(model, images: torch.Tensor, *, steps: int, batch_size: int = 64, lr: float = 2e-3,
                commitment: float = 0.25, dead_code_threshold: float = 2.0, seed: int = 0, desc: str = "VQ-VAE",
                on_step=None) -> History:
    """Train a ``VQModel``'s encoder and decoder around ``vector_quantize_pytorch.VectorQuantize`` (k-means initialised
    codebook, EMA updates, codes whose EMA count falls below ``dead_code_threshold`` replaced by encoder outputs
    of the batch; 0 switches the replacement off; gradients through the library's default rotation trick, a
    refinement of straight-through): loss = MSE reconstruction + ``commitment`` × commitment loss, AdamW with a
    one-cycle schedule. At the end the learned codebook is copied into ``model.quantize``, so the saved model
    quantises on its own."""
    from vector_quantize_pytorch import VectorQuantize

    cfg = model.config
    torch.manual_seed(env.seed(seed))
    vq = VectorQuantize(dim=cfg.vq_embed_dim, codebook_size=cfg.num_vq_embeddings, accept_image_fmap=True,
                        kmeans_init=True, kmeans_iters=10, threshold_ema_dead_code=dead_code_threshold, decay=0.9,
                        commitment_weight=commitment)
    optimizer, schedule = adamw_one_cycle(model.parameters(), lr, steps, weight_decay=0.0)
    g = env.generator(seed)

    def batches():
        while True:
            yield (images[torch.randint(len(images), (batch_size,), generator=g)],)

    def step(batch) -> float:
        model.train()
        vq.train()
        x = batch[0]
        quantized, _, commit = vq(model.encode(x).latents)
        y = model.decode(quantized, force_not_quantize=True).sample
        loss = F.mse_loss(y, x) + commit.sum()
        return update(loss, optimizer, schedule, max_grad_norm=1.0, params=model.parameters())

    history = train(step, batches(), steps, desc=desc, on_step=on_step)
    with torch.no_grad():
        codebook_of(model).copy_(vq.codebook)
    model.eval()
    return history


def latent_vectors(model, images: torch.Tensor) -> torch.Tensor:
    """The encoder's latent vectors of ``images`` before quantisation, one row per grid cell: (N·h·w, D)."""
    with torch.no_grad():
        z = torch.cat([model.encode(images[i:i + 500]).latents for i in range(0, len(images), 500)])
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def fit_codebook(vectors: torch.Tensor, n_codes: int, *, steps: int = 300, batch_size: int = 2048, lr: float = 0.003,
                 init: str = "random", reset_every: int = 0, seed: int = 0,
                 quantize: Callable[[torch.Tensor, torch.Tensor], Quantized] | None = None) -> dict:
    """Learn a codebook for fixed latent ``vectors`` (N, D) with the codebook loss alone (Adam), the encoder frozen:
    the quantiser's half of VQ-VAE training, isolated. ``init``: "random" (Gaussian codewords, the scale of the
    data — the classic start) or "kmeans" (codewords drawn from the data, then 10 k-means steps: SoundStream's and
    ``vector_quantize_pytorch``'s ``kmeans_init``); ``reset_every`` > 0 replaces, every that many steps, each code
    no batch chose since the last reset by a random data vector (Jukebox's and the library's dead-code
    replacement). ``quantize`` is the quantiser (default :func:`vector_quantize`; the notebook passes the
    learner's). Returns the codebook, the dead share and perplexity on all the vectors, and the quantisation
    error (mean squared distance to the nearest codeword) per step."""
    quantize = quantize or vector_quantize
    g = torch.Generator().manual_seed(seed)
    data = vectors.detach()
    if init == "kmeans":
        book = data[torch.randperm(len(data), generator=g)[:n_codes]].clone()
        sample = data[torch.randperm(len(data), generator=g)[:20000]]
        for _ in range(10):
            assign = torch.cdist(sample, book).argmin(-1)
            sums = torch.zeros_like(book).index_add_(0, assign, sample)
            counts = torch.bincount(assign, minlength=n_codes)[:, None]
            book = torch.where(counts > 0, sums / counts.clamp(min=1), book)
    else:
        book = torch.randn(n_codes, data.shape[1], generator=g) * data.std() + data.mean(0)
    book = torch.nn.Parameter(book)
    optimizer = torch.optim.Adam([book], lr=lr)
    used = torch.zeros(n_codes, dtype=torch.bool)
    errors, resets = [], 0
    for step in range(steps):
        batch = data[torch.randint(len(data), (batch_size,), generator=g)]
        _, indices, codebook_loss, _ = quantize(batch.T[None, :, :, None], book)  # the batch as a (1, D, N, 1) grid
        optimizer.zero_grad()
        codebook_loss.backward()
        optimizer.step()
        errors.append(codebook_loss.item())
        used[torch.as_tensor(indices).flatten()] = True
        if reset_every and (step + 1) % reset_every == 0:
            dead = (~used).nonzero().flatten()
            if len(dead):
                with torch.no_grad():
                    book[dead] = data[torch.randint(len(data), (len(dead),), generator=g)]
                resets += len(dead)
            used.zero_()
    with torch.no_grad():
        codes = torch.cat([torch.cdist(data[i:i + 20000], book).argmin(-1) for i in range(0, len(data), 20000)])
        final = float(torch.cat([((data[i:i + 20000] - book[codes[i:i + 20000]]) ** 2).mean(1)
                                 for i in range(0, len(data), 20000)]).mean())
    return {"codebook": book.detach(), "dead": dead_share(codes, n_codes),
            "perplexity": codebook_perplexity(codes, n_codes), "error": final, "errors": errors, "resets": resets}
