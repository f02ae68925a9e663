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


def test_training_lowers_the_loss_and_generation_stops(data):
    torch.manual_seed(0)
    model = tts.CodecTTS(data.vocabulary, data.voices, n_codebooks=2, width=32, layers=1, heads=2, dropout=0.0)
    history = tts.train_tts(model, data, steps=40, batch_size=8, lr=3e-3)
    assert history.losses[-1] < history.losses[0] - 0.3
    codes, frames = model.generate(["red", "circle"], ["us", "gb"], max_frames=12)
    assert codes.shape[:2] == (2, 2) and codes.shape[2] <= 12 and int(codes.max()) < 8
    assert ((frames >= 0) & (frames <= 12)).all()
    again, _ = model.generate(["red", "circle"], ["us", "gb"], max_frames=12)
    assert torch.equal(codes, again)  # seeded sampling
