"""Tests for utils/codec.py: RVQ against EncodecModel's quantiser and vector-quantize-pytorch, bitrates, the codec's
round trip, a short training run, the spectral distance."""
from __future__ import annotations

import pytest
import torch

from utils import codec


@pytest.fixture(scope="module")
def model():
    from transformers import EncodecModel

    torch.manual_seed(0)
    m = EncodecModel(codec.tiny_codec_config(codebooks=4, codebook_size=32, hidden_size=16, num_filters=4)).eval()
    g = torch.Generator().manual_seed(1)
    for q, layer in enumerate(m.quantizer.layers):
        layer.codebook.embed.copy_(torch.randn(32, 16, generator=g) * 0.5 ** q)
    return m


def test_rvq_equals_encodec_quantiser_and_vector_quantize_pytorch(model):
    from vector_quantize_pytorch import ResidualVQ

    books = codec.codebooks_of(model)
    x = torch.randn(3, 16, 25)
    codes = codec.rvq_encode(x, books)
    assert codes.shape == (4, 3, 25) and codes.dtype == torch.long
    with torch.no_grad():
        assert torch.equal(codes, model.quantizer.encode(x))
        assert torch.allclose(codec.rvq_decode(codes, books), model.quantizer.decode(codes), atol=1e-6)
    rvq = ResidualVQ(dim=16, num_quantizers=4, codebook_size=32).eval()
    with torch.no_grad():
        for layer, book in zip(rvq.layers, books):
            layer._codebook.embed.copy_(book[None])
        quantized, indices, _ = rvq(x.transpose(1, 2))
    assert torch.equal(indices.permute(2, 0, 1), codes)
    assert torch.allclose(quantized.transpose(1, 2), codec.rvq_decode(codes, books), atol=1e-5)
    errors = [(x - codec.rvq_decode(codes[:q], books)).norm() for q in range(1, 5)]
    assert all(a > b for a, b in zip(errors, errors[1:]))  # every level brings the latents closer


def test_bitrates_and_bandwidths(model):
    cfg = model.config
    assert cfg.frame_rate == 50 and cfg.num_quantizers == 4
    assert [model.quantizer.get_num_quantizers_for_bandwidth(b) for b in cfg.target_bandwidths] == [1, 2, 4]
    assert codec.bitrate(model, 2) == 50 * 2 * 5
    assert codec.bandwidth_for(model, 4) == cfg.target_bandwidths[-1]
    with pytest.raises(ValueError):
        codec.bandwidth_for(model, 3)


def test_roundtrip_keeps_lengths_and_uses_the_codes(model):
    waves = [torch.randn(16000) * 0.1, torch.randn(9000) * 0.1]
    codes = codec.compress(model, waves, 2)
    assert codes.shape == (2, 2, 50)
    out = codec.decompress(model, codes, [len(w) for w in waves])
    assert [len(o) for o in out] == [16000, 9000]
    assert codec.mel_distance(waves, waves) == 0.0 and codec.mel_distance(waves, out) > 0
    # in batches of one clip (to bound memory), the same codes and, up to float noise, the same audio
    assert torch.equal(codec.compress(model, waves, 2, batch_size=1), codes)
    for a, b in zip(codec.decompress(model, codes, [len(w) for w in waves], batch_size=1), out):
        assert torch.allclose(a, b, atol=1e-5)


def test_unquantised_floor_skips_only_the_quantiser(model):
    """The floor decodes the encoder's own latents: each clip alone gives the same samples as in a batch, lengths
    kept, and it differs from every quantised roundtrip (the quantiser really is left out)."""
    waves = [torch.randn(16000) * 0.1, torch.randn(9000) * 0.1]
    floor = codec.unquantised(model, waves)
    assert [len(o) for o in floor] == [16000, 9000]
    with torch.no_grad():
        alone = model.decoder(model.encoder(waves[0][None, None]))[0, 0]
    assert torch.allclose(floor[0], alone, atol=1e-5)
    for n in (1, 4):
        assert not torch.allclose(floor[0], codec.roundtrip(model, waves, n)[0], atol=1e-4)


def test_training_runs_and_copies_codebooks():
    from transformers import EncodecModel

    torch.manual_seed(0)
    m = EncodecModel(codec.tiny_codec_config(codebooks=2, codebook_size=16, hidden_size=8, num_filters=4))
    waves = [torch.sin(torch.arange(8000) * f) * 0.5 for f in (0.05, 0.1, 0.2, 0.3)]
    history, rvq = codec.train_codec(m, waves, steps=4, batch_size=4, crop_s=0.25, desc="test")
    assert len(history.losses) == 4 and all(torch.isfinite(torch.tensor(history.losses)))
    assert torch.equal(codec.codebooks_of(m), rvq.codebooks)
    usage = codec.codebook_usage(codec.compress(m.eval(), waves, 2), 16)
    assert usage.shape == (2,) and (usage > 0).all()
