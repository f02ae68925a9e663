"""Tests for utils/asr.py: Whisper's features against the library's extractor, transcripts as labels, greedy decoding
against generate, CTC decoding and the CTC recogniser, SpecAugment, a short training run."""
from __future__ import annotations

import pytest
import torch

from utils import asr
from utils.world import speech as uspeech


@pytest.fixture(scope="module")
def tokenizer():
    return asr.build_tokenizer(["is there a red square", "seven three nine", "a small blue circle"])


@pytest.mark.parametrize("window_s, n_mels", [(5, 80), (2, 40), (30, 80)])
def test_log_mel_features_equal_whisper_feature_extractor(window_s, n_mels):
    fe = asr.feature_extractor(window_s, n_mels)
    phrases = uspeech.load_phrases("test")
    waves = [phrases.waveforms[0], phrases.waveforms[5], 0.01 * torch.randn(3000)]
    expected = asr.features(waves, fe)
    padded = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
    got = asr.log_mel_features(padded, torch.from_numpy(fe.mel_filters).float(), fe.n_samples)
    assert got.shape == expected.shape == (3, n_mels, window_s * 100)
    assert torch.allclose(got, expected, atol=1e-4)


def test_encode_transcripts(tokenizer):
    labels = asr.encode_transcripts(tokenizer, ["is there a red square", "seven three"])
    assert labels.shape == (2, 6)
    assert labels[0, -1] == tokenizer.eos_token_id and labels[1, 2] == tokenizer.eos_token_id
    assert (labels[1, 3:] == -100).all()
    assert asr.words_only(tokenizer, labels[0, :-1].tolist()) == "is there a red square"


def test_greedy_decode_equals_generate_on_a_random_model(tokenizer):
    model = asr.tiny_whisper(tokenizer, d_model=32, layers=1, heads=2, window_s=1).eval()
    x = torch.randn(3, 80, 100)
    with torch.no_grad():
        expected = model.generate(x, max_new_tokens=6).tolist()
    eos = model.config.eos_token_id
    expected = [row[:row.index(eos)] if eos in row else row for row in expected]
    assert asr.greedy_decode(model, x, max_new_tokens=6) == expected


def test_quiet_generate_is_generate_and_restores_logging(tokenizer):
    from transformers.utils import logging as hf_logging

    model = asr.tiny_whisper(tokenizer, d_model=32, layers=1, heads=2, window_s=1).eval()
    x = torch.randn(2, 80, 100)
    before = hf_logging.get_verbosity()
    with torch.no_grad():
        assert torch.equal(asr.generate(model, x, max_new_tokens=5), model.generate(x, max_new_tokens=5))
    assert hf_logging.get_verbosity() == before


def test_ctc_greedy_decode_merges_then_drops_blanks():
    path = torch.tensor([[0, 2, 2, 0, 2, 3, 3, 0]])
    scores = torch.nn.functional.one_hot(path, 5).float().log_softmax(-1)
    assert asr.ctc_greedy_decode(scores, blank=0) == [[2, 2, 3]]
    assert asr.ctc_greedy_decode(scores, blank=2) == [[0, 0, 3, 0]]


def test_ctc_recogniser_trains_saves_and_loads(tokenizer, tmp_path):
    model = asr.tiny_ctc(tokenizer, d_model=32, layers=1, heads=2, window_s=1)
    x = torch.randn(4, 80, 100)
    y = asr.encode_transcripts(tokenizer, ["is there a red square", "seven three nine", "a small blue circle", "a"])
    assert model(x).shape == (4, 50, tokenizer.vocab_size)
    assert model.blank == tokenizer.pad_token_id
    loss = model.loss(x, y)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.head.weight.grad.abs().sum() > 0
    model.save_pretrained(tmp_path)
    again = asr.CTCRecogniser.from_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.equal(again(x), model.eval()(x))


def test_spec_augment_masks_a_band_and_a_span():
    x = torch.randn(8, 80, 100)
    a = asr.spec_augment(x, torch.Generator().manual_seed(0))
    b = asr.spec_augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and not torch.equal(a, x)
    changed = a != x
    assert changed.any(dim=2).sum(1).max() <= 80 and (changed.float().mean() < 0.5)
    assert torch.equal(x, x.clone())  # the input is not modified


def test_training_lowers_the_loss(tokenizer):
    model = asr.tiny_whisper(tokenizer, d_model=32, layers=1, heads=2, window_s=1, dropout=0.0)
    x = torch.randn(8, 80, 100)
    y = asr.encode_transcripts(tokenizer, ["is there a red square", "seven three nine"] * 4)
    history = asr.train_recogniser(model, x, y, steps=30, batch_size=8, lr=3e-3, augment=False, desc="test")
    assert history.losses[-1] < 0.5 * history.losses[0]


def test_evaluate_recogniser_per_kind():
    out = asr.evaluate_recogniser(["a b", "c"], ["a b", "d"], ["caption", "digits"])
    assert out == {"wer": round(1 / 3, 4), "wer_caption": 0.0, "wer_digits": 1.0}


def test_hear_is_features_then_transcribe():
    from utils.world import speech

    waves = speech.load_phrases("test").waveforms[:3]
    model, extractor, tokenizer = asr.load_whisper()
    expected = asr.transcribe(model, tokenizer, asr.features(waves, extractor))
    assert asr.hear(waves, (model, extractor, tokenizer)) == expected == asr.hear(waves)
