"""Tests for utils/transfusion.py: Transfusion's attention mask against FlexAttention's create_mask and inside the
model (a caption reaches the image, an image position sees a later one of its image, text never sees a later image),
the patches, the v-prediction target against diffusers, the batch layout (segments, labels, noise only on text →
image images), training, drawing, captioning and a save / load round trip with a tiny model."""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn.attention.flex_attention import create_mask

from utils import diffusion as D
from utils import transfusion as T
from utils import unified as U
from utils.world import World, caption


@pytest.fixture(scope="module")
def tiny():
    scenes = World(0, image_size=32, max_objects=1).arrays("train", 12)[1]
    caps = [[caption(s, template=k) for k in range(2)] for s in scenes]
    tok = U.build_tokenizer([c for cs in caps for c in cs], n_codes=0)
    vocab = U.Vocab.of(tok)
    latents = torch.randn(12, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    data = T.TransfusionData(T.standardised(latents, *D.latent_statistics(latents)),
                             [U.caption_ids(tok, cs) for cs in caps])
    torch.manual_seed(0)
    return T.create_transfusion(vocab, hidden=32, layers=1, heads=2).eval(), vocab, tok, data


def test_mask_equals_flex_attention_rule():
    seg = torch.tensor([[0, 1, 1, 0, 2, 2, 0], [1, 1, 1, 2, 2, 0, 0]])

    def rule(b, h, q, kv):
        return (q >= kv) | ((seg[b, q] == seg[b, kv]) & (seg[b, q] > 0))

    assert torch.equal(T.transfusion_mask(seg), create_mask(rule, 2, None, 7, 7, device="cpu")[:, 0])
    assert torch.equal(T.transfusion_mask(torch.zeros(1, 5, dtype=torch.long))[0], torch.ones(5, 5).tril().bool())


def test_vocabulary_without_image_codes(tiny):
    _, vocab, tok, _ = tiny
    assert vocab.n_codes == 0 and vocab.image_offset == len(tok) == vocab.size
    assert vocab.boi == tok.convert_tokens_to_ids(U.BOI) and vocab.eoi == tok.convert_tokens_to_ids(U.EOI)


def test_patches_and_grid_are_inverse():
    z = torch.randn(3, 16, 8, 8)
    seq = T.as_sequence(z)
    assert seq.shape == (3, T.N_IMAGE, 64) and torch.equal(T.as_grid(seq), z)
    assert set(seq[0, 1].tolist()) == set(z[0, :, 0:2, 2:4].flatten().tolist())  # patch 1: the top row, second block


def test_velocity_equals_diffusers():
    x0, noise = torch.randn(4, 16, 64), torch.randn(4, 16, 64)
    t = torch.tensor([0, 10, 500, 999])
    want = D.scheduler(prediction_type="v_prediction").get_velocity(x0, noise, t)
    assert torch.allclose(T.velocity(x0, noise, t, D.linear_betas()), want, atol=1e-5)


def test_batch_layout(tiny):
    _, vocab, _, data = tiny
    betas = D.linear_betas()
    to_image = torch.tensor([True, False, True])
    noise = torch.randn(3, T.N_IMAGE, 64)
    b = T.make_batch(data, vocab, torch.tensor([0, 1, 2]), to_image, torch.tensor([0, 1, 0]),
                     torch.tensor([999, 500, 10]), noise, betas, drop=torch.tensor([False, False, True]))
    words = data.captions[0][0]
    assert b.ids[0, :len(words) + 2].tolist() == [vocab.bos, *words, vocab.boi]
    assert b.ids[2, :2].tolist() == [vocab.bos, vocab.boi]          # the caption dropped: the empty condition
    assert b.ids[1, :2].tolist() == [vocab.bos, vocab.boi] and (b.segments[1, 2:18] == 1).all()
    assert b.t.tolist() == [999, 0, 10]                               # image → text images stay clean
    assert (b.segments > 0).sum(1).tolist() == [16, 16, 16]
    start = len(words) + 2
    assert torch.allclose(b.latents[0, start:start + 16], D.add_noise(data.latents[0:1], noise[0:1],
                                                                      torch.tensor([999]), betas)[0])
    assert torch.equal(b.latents[1, 2:18], data.latents[1])
    assert torch.allclose(b.target[2], T.velocity(data.latents[2:3], noise[2:3], torch.tensor([10]), betas)[0])
    assert (b.labels[b.segments > 0] == -100).all() and (b.labels[:, 0] == -100).all()
    assert vocab.eoi not in b.labels.tolist()[0] and vocab.eos in b.labels[1].tolist()
    assert (b.labels[b.attention == 0] == -100).all()


def test_mask_inside_the_model(tiny):
    model, vocab, _, _ = tiny
    ids = torch.tensor([[vocab.bos, 3, 4, vocab.boi, 0, 0, 0, vocab.eoi, 5]])
    seg = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 0, 0]])
    lat = torch.zeros(1, 9, 64)
    lat[0, 4:7] = torch.randn(3, 64)
    t, att = torch.tensor([400]), torch.ones_like(ids)
    logits, eps = model(ids, lat, seg, t, att)
    assert logits.shape == (1, 9, vocab.size) and eps.shape == (1, 9, 64)
    later = lat.clone()
    later[0, 6] += 1.0                                                # the last image position changes
    logits2, eps2 = model(ids, later, seg, t, att)
    assert (eps2[0, 4] - eps[0, 4]).abs().max() > 1e-4                 # seen by the first one (bidirectional)
    assert torch.allclose(logits2[0, :4], logits[0, :4], atol=1e-6)     # never by the text before the image
    other = ids.clone()
    other[0, 1] = 6                                                   # another caption word
    assert (model(other, lat, seg, t, att)[1][0, 4:7] - eps[0, 4:7]).abs().max() > 1e-4


def test_train_draw_describe_save_load(tiny, tmp_path):
    model, vocab, tok, data = tiny
    history, curves = T.train_transfusion(model, data, vocab, steps=3, batch_size=6, desc="test")
    assert len(curves["text"]) == len(curves["diffusion"]) == 3
    assert all(math.isfinite(v) for v in history.losses)
    x, kept = T.draw(model, vocab, [data.captions[0][0], data.captions[1][1]], guidance=2.0, steps=3, keep=[2],
                     generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, T.N_IMAGE, 64) and list(kept) == [2]
    words = T.describe(model, vocab, data.latents[:2], max_words=4)
    assert len(words) == 2 and all(len(w) <= 5 for w in words)
    stats = (torch.zeros(16), torch.ones(16))  # per latent channel
    T.save_transfusion(model, tok, stats, tmp_path)
    again, tok2, vocab2, (mean, std) = T.load_transfusion(tmp_path)
    assert vocab2 == vocab and torch.equal(mean, stats[0]) and torch.equal(std, stats[1])
    y, _ = T.draw(again, vocab, [data.captions[0][0], data.captions[1][1]], guidance=2.0, steps=3,
                  generator=torch.Generator().manual_seed(0))
    assert torch.allclose(x, y, atol=1e-5)
