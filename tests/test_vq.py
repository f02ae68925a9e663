"""Tests for utils/vq.py: the quantiser against diffusers' own VectorQuantizer, perplexity and dead codes, the
VQModel config and its token grid, the image range round trip, codebook fitting with and without dead-code reset,
a short training run."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utils import vq


def test_vector_quantize_equals_vqmodels_quantiser():
    from diffusers.models.autoencoders.vae import VectorQuantizer

    torch.manual_seed(0)
    lib = VectorQuantizer(32, 8, beta=0.25, legacy=False)
    z = torch.randn(2, 8, 4, 4)
    zq, loss, (_, _, idx) = lib(z)
    ours = vq.vector_quantize(z, lib.embedding.weight)
    assert torch.equal(ours.indices.flatten(), idx)
    assert torch.allclose(ours.quantized, zq)
    # diffusers' non-legacy loss is beta * commitment + codebook
    assert torch.allclose(0.25 * ours.commitment_loss + ours.codebook_loss, loss)


def test_vector_quantize_gradients_go_where_they_belong():
    z = torch.randn(1, 4, 2, 3, requires_grad=True)
    book = torch.randn(6, 4, requires_grad=True)
    out = vq.vector_quantize(z, book)
    (gz,) = torch.autograd.grad(out.quantized.sum(), z)
    assert torch.equal(gz, torch.ones_like(z))                       # straight-through
    gz, gb = torch.autograd.grad(out.codebook_loss, (z, book), allow_unused=True)
    assert gz is None and gb.abs().sum() > 0
    gz, gb = torch.autograd.grad(vq.vector_quantize(z, book).commitment_loss, (z, book), allow_unused=True)
    assert gb is None and gz.abs().sum() > 0


def test_perplexity_and_dead_share():
    assert vq.codebook_perplexity(torch.arange(8).repeat(5), 8) == pytest.approx(8.0)
    assert vq.codebook_perplexity(torch.full((10,), 3), 8) == pytest.approx(1.0)
    two = torch.tensor([0, 0, 0, 1])
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert vq.codebook_perplexity(two, 100) == pytest.approx(math.exp(h))
    assert vq.dead_share(two, 4) == 0.5


@pytest.mark.parametrize("downsamplings, side", [(2, 8), (3, 4)])
def test_config_gives_the_token_grid(downsamplings, side):
    model = vq.create_vqvae(vq.tiny_vqvae_config(downsamplings, n_codes=16)).eval()
    assert vq.grid_size(model) == side
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    tokens = vq.tokenize(model, x)
    assert tokens.shape == (2, side, side) and tokens.dtype == torch.long and int(tokens.max()) < 16
    assert vq.detokenize(model, tokens).shape == x.shape


def test_image_range_round_trip_is_exact():
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    x = vq.to_model_range(images)
    assert x.shape == (3, 3, 32, 32) and float(x.min()) >= -1 and float(x.max()) <= 1
    assert np.array_equal(vq.to_uint8(x), images)


def test_fit_codebook_dead_codes_and_reset():
    """Eight tight clusters, 64 codewords from a Gaussian start: most codewords never win and never move; a reset or
    a k-means start uses them all and quantises far better."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(8, 4, generator=g) * 3
    data = centres[torch.randint(8, (20000,), generator=g)] + 0.1 * torch.randn(20000, 4, generator=g)
    plain = vq.fit_codebook(data, 64, steps=150, lr=0.01)
    reset = vq.fit_codebook(data, 64, steps=150, lr=0.01, reset_every=10)
    kmeans = vq.fit_codebook(data, 64, steps=150, lr=0.01, init="kmeans")
    assert plain["dead"] > 0.5 and reset["dead"] < 0.1 and kmeans["dead"] < 0.1 and reset["resets"] > 0
    assert reset["error"] < plain["error"] / 2 and kmeans["error"] < plain["error"] / 2
    assert len(plain["errors"]) == 150 and plain["codebook"].shape == (64, 4)


def test_short_training_copies_the_codebook_and_learns():
    torch.manual_seed(0)
    model = vq.create_vqvae(vq.tiny_vqvae_config(2, channels=(8, 8, 8), n_codes=16, code_dim=4))
    images = torch.rand(64, 3, 32, 32) * 2 - 1
    history = vq.train_vqvae(model, images, steps=6, batch_size=8, desc="test")
    assert len(history.losses) == 6 and all(math.isfinite(v) for v in history.losses)
    with torch.no_grad():
        own = model(images[:4]).sample                              # VQModel's own quantiser, codebook copied
    assert torch.allclose(own.clamp(-1, 1), vq.reconstruct(model, images[:4]), atol=1e-5)
