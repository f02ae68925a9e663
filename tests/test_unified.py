"""Tests for utils/unified.py: the union vocabulary, the two sequence layouts, the per-modality losses against
transformers' causal-LM loss, the image-token restriction against SuppressTokensLogitsProcessor, drawing and
captioning with a tiny random model, and the pixel-level judges against rendered world images."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utils import unified as U
from utils.world import COLORS, SHAPES, World, caption, position_phrase


@pytest.fixture(scope="module")
def vocab_and_tokenizer():
    caps = [caption(s, template=k) for s in World(0, image_size=32, max_objects=1).arrays("train", 50)[1]
            for k in range(5)]
    tok = U.build_tokenizer(caps, 16)
    return U.Vocab.of(tok), tok


def test_union_vocabulary_puts_codes_in_one_block(vocab_and_tokenizer):
    vocab, tok = vocab_and_tokenizer
    assert vocab.n_codes == 16 and vocab.size == len(tok)
    assert [tok.convert_tokens_to_ids(U.image_token(k)) for k in range(16)] == list(range(vocab.image_offset,
                                                                                         vocab.image_offset + 16))
    assert vocab.boi == tok.convert_tokens_to_ids(U.BOI) and vocab.eoi == tok.convert_tokens_to_ids(U.EOI)
    assert vocab.is_image(torch.tensor([vocab.image_offset, vocab.image_offset + 15, vocab.eoi])).tolist() == [
        True, True, False]


def test_sequences_put_the_task_in_the_order(vocab_and_tokenizer):
    vocab, tok = vocab_and_tokenizer
    words = U.caption_ids(tok, ["a small red circle."])[0]
    codes = torch.arange(4).view(2, 2)
    t2i = U.text_to_image(words, codes, vocab)
    i2t = U.image_to_text(words, codes, vocab)
    img = [vocab.image_offset + k for k in range(4)]
    assert t2i == [vocab.bos, *words, vocab.boi, *img, vocab.eoi, vocab.eos]
    assert i2t == [vocab.bos, vocab.boi, *img, vocab.eoi, *words, vocab.eos]
    ids, labels = U.pad_batch([t2i, i2t[:-2]], vocab.pad)
    assert ids.shape == (2, len(t2i)) and (labels[1, len(i2t) - 2:] == -100).all()


def test_modality_losses_equal_the_causal_lm_loss_per_modality(vocab_and_tokenizer):
    from transformers.loss.loss_utils import ForCausalLMLoss

    vocab, _ = vocab_and_tokenizer
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(vocab.size, (4, 11), generator=g)
    labels[3, 8:] = -100
    logits = torch.randn(4, 11, vocab.size, generator=g)
    text, image = U.modality_losses(logits, labels, vocab.image_offset, vocab.n_codes)
    is_img = vocab.is_image(labels)
    assert text.item() == pytest.approx(ForCausalLMLoss(logits, labels.masked_fill(is_img, -100), vocab.size).item())
    assert image.item() == pytest.approx(ForCausalLMLoss(logits, labels.masked_fill(~is_img, -100), vocab.size).item())


def test_only_image_tokens_equals_suppress_tokens():
    from transformers import SuppressTokensLogitsProcessor

    x = torch.randn(3, 20)
    others = [i for i in range(20) if not 5 <= i < 13]
    want = SuppressTokensLogitsProcessor(others)(torch.zeros(3, 1, dtype=torch.long), x.clone())
    before = x.clone()
    assert torch.equal(U.only_image_tokens(x, 5, 8), want) and torch.equal(x, before)


def test_draw_and_describe_with_a_tiny_model(vocab_and_tokenizer):
    from transformers import LlamaForCausalLM

    vocab, tok = vocab_and_tokenizer
    torch.manual_seed(0)
    model = LlamaForCausalLM(U.tiny_unified_config(vocab, hidden=32, layers=1, heads=2)).eval()
    prompts = U.caption_ids(tok, ["a small red circle.", "a large blue square in the top left."])
    codes = U.draw(model, vocab, prompts, n_tokens=4, temperature=1.0, generator=torch.Generator().manual_seed(1))
    assert codes.shape == (2, 4) and int(codes.min()) >= 0 and int(codes.max()) < vocab.n_codes
    greedy = [U.draw(model, vocab, prompts, n_tokens=4, temperature=0) for _ in range(2)]
    assert torch.equal(greedy[0], greedy[1])
    alone = U.draw(model, vocab, prompts[1:], n_tokens=4, temperature=0)   # left padding changes nothing
    assert torch.equal(alone[0], greedy[0][1])
    words = U.describe(model, vocab, codes.view(2, 2, 2), max_words=5)
    assert len(words) == 2 and all(len(w) <= 6 for w in words)
    assert not any(vocab.is_image(torch.tensor(w, dtype=torch.long)).any() for w in words if w)


def test_train_unified_records_both_losses(vocab_and_tokenizer):
    from transformers import LlamaForCausalLM

    vocab, tok = vocab_and_tokenizer
    scenes = World(0, image_size=32, max_objects=1).arrays("train", 8)[1]
    data = U.UnifiedData(torch.randint(16, (8, 2, 2)), [U.caption_ids(tok, [caption(s, template=k) for k in range(5)])
                                                         for s in scenes])
    torch.manual_seed(0)
    model = LlamaForCausalLM(U.tiny_unified_config(vocab, hidden=32, layers=1, heads=2))
    history, curves = U.train_unified(model, data, vocab, steps=3, batch_size=4, desc="test")
    assert len(curves["text"]) == len(curves["image"]) == 3
    assert all(math.isfinite(v) for v in curves["text"] + curves["image"] + history.losses)


def _tiny_data(tok, n=8):
    scenes = World(0, image_size=32, max_objects=1).arrays("train", n)[1]
    return U.UnifiedData(torch.randint(16, (n, 2, 2), generator=torch.Generator().manual_seed(2)),
                         [U.caption_ids(tok, [caption(s, template=k) for k in range(5)]) for s in scenes])


def test_weightings_match_their_definitions(vocab_and_tokenizer):
    vocab, tok = vocab_and_tokenizer
    data = _tiny_data(tok)
    to_image = torch.tensor([True, True, True, False])
    ids, labels = U.make_batch(data, vocab, torch.arange(4), to_image, torch.zeros(4, dtype=torch.long))
    logits = torch.randn(*ids.shape, vocab.size, generator=torch.Generator().manual_seed(3))
    targets = labels[:, 1:]
    each = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, vocab.size), targets.reshape(-1),
                                             ignore_index=-100, reduction="none").view(targets.shape)
    valid = targets != -100
    pooled = U._weighted_loss(logits, labels, to_image, "pooled")
    assert torch.isclose(pooled, each[valid].mean())
    direction = U._weighted_loss(logits, labels, to_image, "direction")
    rows_t2i, rows_i2t = valid & to_image[:, None], valid & ~to_image[:, None]
    assert torch.isclose(direction, each[rows_t2i].mean() + each[rows_i2t].mean())
    only_t2i = U._weighted_loss(logits[:3], labels[:3], to_image[:3], "direction")   # a missing direction adds 0
    assert torch.isclose(only_t2i, each[:3][valid[:3]].mean())
    with pytest.raises(ValueError, match="weighting"):
        U._weighted_loss(logits, labels, to_image, "tokens")


def test_task_losses_read_the_right_modality(vocab_and_tokenizer):
    vocab, tok = vocab_and_tokenizer
    data = _tiny_data(tok, 4)
    batches = U.task_batches(data, vocab)
    ids_c, _ = batches["captioning"]
    ids_d, _ = batches["drawing"]
    assert (ids_c[:, 1] == vocab.boi).all() and (ids_d[:, 1] != vocab.boi).all()
    torch.manual_seed(0)
    model = U.create_unified(vocab, hidden=32, layers=1, heads=2).train()
    got = U.task_losses(model, batches, vocab)
    assert model.training                                    # the mode is restored
    with torch.no_grad():
        model.eval()
        for name, which in (("captioning", 0), ("drawing", 1)):
            ids, labels = batches[name]
            logits = model(input_ids=ids, attention_mask=labels != -100).logits
            assert math.isclose(got[name], float(U.modality_losses(logits, labels, vocab.image_offset,
                                                                   vocab.n_codes)[which]), rel_tol=1e-5)


def test_train_unified_adds_the_extra_loss(vocab_and_tokenizer):
    vocab, tok = vocab_and_tokenizer
    torch.manual_seed(0)
    model = U.create_unified(vocab, hidden=32, layers=1, heads=2)
    seen = []
    history, curves = U.train_unified(model, _tiny_data(tok), vocab, steps=3, batch_size=4, weighting="pooled",
                                      desc="test", extra_loss=lambda labels: seen.append(labels.shape) or
                                      torch.tensor(0.5))
    assert len(seen) == 3 and curves["extra"] == [0.5, 0.5, 0.5]
    assert all(math.isfinite(v) for v in history.losses)


def test_pixel_judges_read_rendered_objects():
    images, scenes = World(3, image_size=32, max_objects=1).arrays("val", 60)
    assert U.palette_color(images) == [s.objects[0].color for s in scenes]
    where = U.where(images)
    agree = np.mean([w == position_phrase(s.objects[0].x, s.objects[0].y) for w, s in zip(where, scenes)])
    assert agree >= 0.9  # the centroid of pixels vs the scene's centre: only objects on a grid line may differ
    assert U.palette_color(np.full((1, 32, 32, 3), 0, np.uint8)) != [None]  # a black canvas is not empty
    from utils.world import BACKGROUND_RGB
    assert U.palette_color(np.full((1, 32, 32, 3), BACKGROUND_RGB, np.uint8)) == [None]


def test_attributes_and_prompts():
    assert U.attributes("a small red circle in the top left.") == {"size": "small", "color": "red", "shape": "circle"}
    assert U.attributes("there is a blue thing") == {"size": None, "color": "blue", "shape": None}
    texts, wanted = U.prompts()
    assert len(texts) == 2 * len(COLORS) * len(SHAPES) and wanted[0] == (COLORS[0], SHAPES[0])


def test_add_image_output_gives_a_reading_lm_image_tokens_to_write():
    """The reverse direction on the zoo VLM's GPT-2: <boi>, <eoi> and the codes in one block after its words, the
    tied embeddings (= output head) grown, the positions too, the old tokens unchanged; it can then draw."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from utils.vlm import ZOO_VLM

    lm = AutoModelForCausalLM.from_pretrained(ZOO_VLM / "lm")
    tok = AutoTokenizer.from_pretrained(ZOO_VLM / "lm")
    before, old = len(tok), lm.get_input_embeddings().weight.detach().clone()
    words = tok("a small red circle", add_special_tokens=False)["input_ids"]
    vocab = U.add_image_output(lm, tok, 16, n_positions=96)
    assert vocab.n_codes == 16 and vocab.image_offset == before + 2 and vocab.size == before + 18 == len(tok)
    assert (vocab.boi, vocab.eoi) == (before, before + 1)
    assert tok("a small red circle", add_special_tokens=False)["input_ids"] == words
    weight = lm.get_input_embeddings().weight
    assert weight.shape[0] == vocab.size and torch.equal(weight[:before], old)
    assert lm.get_output_embeddings().weight.data_ptr() == weight.data_ptr()  # tied: the new rows are the head
    assert lm.config.n_positions == 96
    codes = U.draw(lm.eval(), vocab, [words, words], n_tokens=64, generator=torch.Generator().manual_seed(0))
    assert codes.shape == (2, 64) and int(codes.min()) >= 0 and int(codes.max()) < 16
