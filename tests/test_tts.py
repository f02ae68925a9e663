"""Tests for utils/tts.py, the codec-token TTS (a GPT-2 over words and codec frames): word ids, training data from the
zoo codec, the loss on frames and on the end of an utterance, a short training run and generation."""
from __future__ import annotations

import pytest
import torch

from utils import codec as ucodec
from utils import tts
from utils.world import speech


def test_encode_words_pads_with_zero():
    ids, mask = tts.encode_words(["red circle", "blue"], [tts.PAD, "blue", "circle", "red"])
    assert ids.tolist() == [[3, 2], [1, 0]] and mask.tolist() == [[1, 1], [1, 0]]
    with pytest.raises(KeyError):
        tts.encode_words(["green"], [tts.PAD, "blue"])


@pytest.fixture(scope="module")
def data():
    words = speech.load_speech(words=["red", "blue", "circle", "square"], voices=["us", "gb"])
    return tts.tts_examples(ucodec.load_codec().eval(), words.words, words.voices, words.waveforms, 2)


def test_examples_hold_the_codec_codes_of_each_clip(data):
    assert data.codes.shape[:2] == (len(data), 2) and int(data.codes.max()) < 8
    assert data.vocabulary[0] == tts.PAD and set(data.vocabulary[1:]) == {"red", "blue", "circle", "square"}
    assert data.voices == ["gb", "us"]
    assert (data.frames <= data.codes.shape[-1]).all() and (data.frames > 10).all()  # half a second: ~25 frames


def test_steps_group_frames_and_come_back():
    model = tts.CodecTTS([tts.PAD, "red"], ["us"], n_codebooks=2, group=4, width=16, layers=1, heads=2)
    codes = torch.arange(2 * 10).reshape(1, 2, 10)
    steps = model.to_steps(codes)                       # 10 frames -> 3 steps of 4 frames (2 padded with 0)
    assert steps.shape == (1, 3, 8)
    assert steps[0, 0].tolist() == [0, 10, 1, 11, 2, 12, 3, 13]  # (frame, codebook) pairs, frame by frame
    assert torch.equal(model.from_steps(steps)[..., :10], codes)


def test_word_hints_split_the_steps_by_letters():
    chars = torch.tensor([[2, 4, 0], [7, 0, 0]])       # "a red" (letters + 1), "circle"; 0 pads
    hints = tts.word_hints(chars, torch.tensor([6, 3]), 8)
    assert hints[0].tolist() == [0, 0, 1, 1, 1, 1, 1, 1]  # "a" gets a third of the 6 steps; past the end: last word
    assert hints[1].tolist() == [0] * 8


def test_planned_length_follows_the_voice_rate(data):
    model = tts.CodecTTS(data.vocabulary, data.voices, n_codebooks=2, width=16, layers=1, heads=2)
    model.fit_durations(data)
    planned = model.planned_steps(data.words, data.voices_ids) * model.group
    assert ((planned - data.frames).abs().float() / data.frames).mean() < 0.3  # one rate per voice, four words
    slower = model.planned_steps(data.words, data.voices_ids, speed=0.5)
    assert torch.allclose(slower.float(), 2 * model.planned_steps(data.words, data.voices_ids).float(), atol=1)


def test_training_lowers_the_loss_and_generation_is_seeded(data, tmp_path):
    torch.manual_seed(0)
    model = tts.CodecTTS(data.vocabulary, data.voices, n_codebooks=2, width=32, layers=1, heads=2, dropout=0.0)
    history = tts.train_tts(model, data, steps=40, batch_size=8, lr=3e-3)
    assert history.losses[-1] < history.losses[0] - 0.3
    codes, frames = model.generate(["red", "circle"], ["us", "gb"])
    assert codes.shape[:2] == (2, 2) and int(codes.max()) < 8
    assert codes.shape[2] == int(frames.max()) and (frames % model.group == 0).all()
    assert torch.equal(codes, model.generate(["red", "circle"], ["us", "gb"])[0])  # seeded sampling
    other = model.generate(["red", "circle"], ["us", "gb"], seed=1)[0]
    greedy = [model.generate(["red", "circle"], ["us", "gb"], temperature=0, seed=s)[0] for s in (0, 1)]
    assert not torch.equal(codes, other) and torch.equal(*greedy)  # the seed matters only when sampling
    model.save_pretrained(tmp_path)
    again = tts.CodecTTS.from_pretrained(tmp_path)
    assert torch.equal(again.generate(["red"], ["us"])[0], model.generate(["red"], ["us"])[0])
    assert torch.equal(again.steps_per_char, model.steps_per_char)


def test_speak_decodes_to_the_planned_length(data):
    codec = ucodec.load_codec().eval()
    model = tts.CodecTTS(data.vocabulary, data.voices, n_codebooks=2, width=16, layers=1, heads=2)
    model.fit_durations(data)
    audio = tts.speak(model, codec, ["red circle"], ["us"])
    _, frames = model.generate(["red circle"], ["us"])
    assert len(audio) == 1 and len(audio[0]) == int(frames[0]) * 320


def test_sampling_keeps_the_top_k_and_zero_temperature_is_greedy():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0]])
    assert torch.allclose(tts.sampling_distribution(logits, 0.5, 2), torch.tensor([[0.8808, 0.1192, 0.0, 0.0]]),
                          atol=1e-4)
    draws = tts.sample_top_k(logits.expand(2000, -1), 1.0, 2, torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {0, 1} and 0.6 < (draws == 0).float().mean() < 0.85  # softmax([2, 1]): 0.73
    assert tts.sample_top_k(logits, 0, 2).tolist() == [0]
