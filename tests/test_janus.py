"""Tests for utils/janus.py: each encoder's image tokens (the CLIP grid the VLM reads, the VQ-VAE's chosen codewords),
the grid layout, the standardiser, the pixel decoder's shapes and learning, the VQA head, evaluation and a save / load
round trip."""
from __future__ import annotations

import pytest
import torch

from utils import janus, vq
from utils.clip import load_clip
from utils.world import World


@pytest.fixture(scope="module")
def encoders():
    images = World(0, image_size=32).arrays("val", 6)[0]
    return images, load_clip()[0].visual.eval(), vq.load_vqvae()


def test_image_tokens_are_the_vlm_grid_and_the_chosen_codewords(encoders):
    images, visual, vqvae = encoders
    clip_tokens = janus.image_tokens("clip", images, visual, vqvae)
    vq_tokens = janus.image_tokens("vq", images, visual, vqvae)
    assert clip_tokens.shape == (6, 16, 128) and vq_tokens.shape == (6, 64, 16)
    codes = vq.tokenize(vqvae, vq.to_model_range(images)).flatten(1)
    assert torch.equal(vq_tokens, vq.codebook_of(vqvae)[codes])    # row-major: cell r*8+c is code (r, c)
    with pytest.raises(ValueError, match="encoder"):
        janus.image_tokens("siglip", images, visual, vqvae)


def test_as_grid_puts_row_major_cells_back_in_place():
    tokens = torch.randn(2, 16, 5)
    grid = janus.as_grid(tokens)
    assert grid.shape == (2, 5, 4, 4)
    assert torch.equal(grid[1, :, 2, 3], tokens[1, 2 * 4 + 3])


def test_standardiser_centres_and_scales_each_channel():
    tokens = torch.randn(50, 16, 3) * torch.tensor([1.0, 10.0, 0.1]) + torch.tensor([5.0, -3.0, 0.0])
    z = janus.Standardiser.fit(tokens)(tokens)
    assert torch.allclose(z.mean((0, 1)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(z.std((0, 1)), torch.ones(3), atol=1e-3)


@pytest.mark.parametrize("side,channels", [(4, 128), (8, 16)])
def test_pixel_decoder_paints_32_pixels_from_either_grid(side, channels):
    decoder = janus.pixel_decoder(channels, side)
    assert decoder(torch.randn(2, channels, side, side)).shape == (2, 3, 32, 32)


def test_train_decoder_learns_and_draw_back_stays_in_range():
    torch.manual_seed(0)
    tokens = torch.randn(16, 64, 3)
    images = torch.nn.functional.interpolate(janus.as_grid(tokens), size=32).tanh()  # learnable from the tokens
    decoder = janus.pixel_decoder(3, 8)
    history = janus.train_decoder(decoder, tokens, images, steps=40, batch_size=8, lr=3e-3)
    assert sum(history.losses[-5:]) < 0.5 * sum(history.losses[:5])
    drawn = janus.draw_back(decoder, tokens, batch_size=5)
    assert drawn.shape == images.shape and drawn.min() >= -1 and drawn.max() <= 1
    assert not decoder.training


def test_probe_round_trip_and_evaluation(tmp_path, encoders):
    images, visual, vqvae = encoders

    class Reader:  # what question_data needs of a TinyVLM: its tower, GPT-2 and tokenizer
        from utils.vlm import ZOO_VLM, TinyVLM
        _vlm = TinyVLM.from_pretrained(ZOO_VLM)
        visual, lm, tokenizer = _vlm.visual, _vlm.lm, _vlm.tokenizer

    data = janus.question_data(World(0, image_size=32), "val", 6, Reader, vqvae)
    assert set(data["tokens"]) == set(janus.ENCODERS) and len(data["answer"]) == len(data["kinds"])
    raw = data["tokens"]["vq"]
    torch.manual_seed(0)
    probe = janus.Probe("vq", janus.Standardiser.fit(raw), janus.vqa_head(64, 16, data["ids"].shape[1]).eval(),
                        janus.pixel_decoder(16, 8).eval())
    janus.save_probe(probe, tmp_path, 64, 16, data["ids"].shape[1])
    loaded = janus.load_probe("vq", tmp_path)
    before, after = janus.evaluate(probe, data), janus.evaluate(loaded, data)
    assert before["vqa"] == after["vqa"] and before["psnr"] == pytest.approx(after["psnr"], abs=1e-5)
    assert set(before["vqa"]) >= {"color", "shape", "all"} and before["drawn"].shape == (6, 32, 32, 3)
