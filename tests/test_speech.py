"""Tests for the spoken-words dataset (data/speech/, built by tools/make_speech.py; utils/world/speech.py) and the
audio front end (utils/audio.py)."""
from __future__ import annotations

import make_speech  # tools/ is on sys.path (tests/conftest.py)
import pytest
import torch
import torchaudio

from utils.audio import batch_waveforms, pad_or_trim
from utils.world import COLORS, SHAPES
from utils.world import speech as uspeech
from utils.world.speech import HELDOUT_VOICES, SAMPLE_RATE, WORDS, load_speech, speech_index, voice_split


@pytest.fixture(scope="module")
def speech() -> uspeech.SpeechSet:
    return load_speech()


def test_shipped_files_match_index():
    assert make_speech.check() == []


def test_full_grid_present():
    rows = speech_index()
    assert uspeech.WORDS == make_speech.WORDS
    assert set(COLORS) | set(SHAPES) <= set(WORDS) and len(WORDS) == 20
    combos = [(r["word"], r["voice"], int(r["speed"])) for r in rows]
    assert len(combos) == len(set(combos)) == len(WORDS) * len(make_speech.VOICES) * len(make_speech.SPEEDS)
    assert {c[0] for c in combos} == set(WORDS)
    assert {c[1] for c in combos} == set(make_speech.VOICES) and len(make_speech.VOICES) >= 8
    assert {c[2] for c in combos} == set(make_speech.SPEEDS)
    assert set(HELDOUT_VOICES) < set(make_speech.VOICES) and len(HELDOUT_VOICES) == 2


def test_load_is_deterministic_and_typed(speech):
    assert len(speech) == len(speech_index())
    again = load_speech()
    assert all(torch.equal(a, b) for a, b in zip(speech.waveforms, again.waveforms))
    assert speech.words == again.words and speech.voices == again.voices
    assert all(w.dtype == torch.float32 and w.ndim == 1 for w in speech.waveforms)
    assert speech.labels.dtype == torch.long
    assert [WORDS[i] for i in speech.labels.tolist()] == speech.words
    peaks = torch.stack([w.abs().max() for w in speech.waveforms])
    assert torch.allclose(peaks, torch.full_like(peaks, make_speech.PEAK), atol=1e-3)  # peak-normalised


def test_durations_sane(speech):
    seconds = speech.durations()
    assert seconds.min() >= 0.2 and seconds.max() <= 1.5
    assert 0.3 <= seconds.mean() <= 0.8


def test_filtering():
    some = load_speech(words=["red", "seven"], voices=["us"])
    assert set(some.words) == {"red", "seven"} and set(some.voices) == {"us"}
    assert len(some) == 2 * len(make_speech.SPEEDS)
    assert set(some.labels.tolist()) == {WORDS.index("red"), WORDS.index("seven")}  # labels index the full WORDS
    with pytest.raises(ValueError):
        load_speech(words=["hexagon"])


def test_voice_split_disjoint(speech):
    train, test = voice_split(speech)
    assert set(test.voices) == set(HELDOUT_VOICES)
    assert not set(train.voices) & set(test.voices)
    assert len(train) + len(test) == len(speech)
    assert set(test.words) == set(train.words) == set(WORDS)


def test_pad_or_trim_and_batch():
    wave = torch.arange(5, dtype=torch.float32)
    assert torch.equal(pad_or_trim(wave, 3), wave[:3])
    assert torch.equal(pad_or_trim(wave, 7), torch.tensor([0, 1, 2, 3, 4, 0, 0.0]))
    batch = batch_waveforms([wave, torch.ones(10)], 8)
    assert batch.shape == (2, 8) and batch.dtype == torch.float32
    assert batch_waveforms([]).shape == (0, SAMPLE_RATE)


def test_words_recognisable_on_heldout_voices(speech):
    """Nearest centroid on mean log-mel features, trained on the training voices, far above chance (1/20)."""
    train, test = voice_split(speech)
    mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=400, hop_length=160, n_mels=64)

    def features(s: uspeech.SpeechSet) -> torch.Tensor:
        return torch.stack([(mel(w) + 1e-6).log().mean(dim=1) for w in s.waveforms])

    x_train, x_test = features(train), features(test)
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mu) / sd, (x_test - mu) / sd
    centroids = torch.stack([x_train[train.labels == k].mean(0) for k in range(len(WORDS))])
    accuracy = (torch.cdist(x_test, centroids).argmin(1) == test.labels).float().mean().item()
    assert accuracy >= 0.6, accuracy


# --- phrases (Phase 6) ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def phrases() -> uspeech.PhraseSet:
    return uspeech.load_phrases()


def test_shipped_phrases_match_their_index_and_the_plan():
    assert make_speech.check_phrases() == []


def test_phrase_check_catches_a_changed_file(tmp_path):
    import shutil

    import numpy as np
    import soundfile as sf

    shutil.copytree(make_speech.OUT, tmp_path / "speech")
    row = uspeech.phrase_index()[3]
    path = tmp_path / "speech" / row["path"]
    pcm, rate = sf.read(path, dtype="int16")
    sf.write(path, (pcm.astype(np.int32) + 16).clip(-32768, 32767).astype(np.int16), rate, format="FLAC",
             subtype="PCM_16")
    assert any(row["path"] in p for p in make_speech.check_phrases(tmp_path / "speech"))
    (tmp_path / "speech" / "phrases" / "stray.flac").write_bytes(b"")
    assert any("stray.flac" in p and "differ from phrases.csv" in p
               for p in make_speech.check_phrases(tmp_path / "speech"))


def test_phrase_splits_are_apart_by_voice_and_by_sentence(phrases):
    train, test = phrases.where(splits="train"), phrases.where(splits="test")
    assert len(train) == 500 and len(test) == 80
    assert set(train.voices) == set(make_speech.ENGLISH_TRAIN_VOICES) and set(test.voices) == set(HELDOUT_VOICES)
    assert not set(train.texts) & set(test.texts)                       # held-out sentences
    assert not any("red triangle" in t for t in train.texts)            # a combination never heard in training
    assert sum("red triangle" in t for t in test.texts) >= 20
    for split in ("accent-train", "accent-test"):
        part = phrases.where(splits=split)
        assert set(part.accents) == set(uspeech.ACCENTS) and not set(part.voices) & set(make_speech.VOICES)
    a_train, a_test = phrases.where(splits="accent-train"), phrases.where(splits="accent-test")
    assert not set(a_train.voices) & set(a_test.voices)                  # other speakers
    assert set(a_train.texts) <= set(train.texts) and set(a_test.texts) <= set(test.texts)


def test_phrases_load_typed_and_transcribed(phrases):
    assert len(phrases) == len(uspeech.phrase_index()) == 756
    assert all(w.dtype == torch.float32 and w.ndim == 1 for w in phrases.waveforms)
    assert phrases.durations().max() <= 5.0  # Phase 6's recogniser window
    assert uspeech.transcript("Is there a Red square?") == "is there a red square"
    assert uspeech.transcript("two objects: a small red circle, and a large blue square.") == \
        "two objects a small red circle and a large blue square"
    assert set(phrases.kinds) == set(uspeech.PHRASE_KINDS)
    questions = phrases.where(kinds="question")
    assert all(q.endswith("?") and a for q, a in zip(questions.texts, questions.answers))
    with pytest.raises(ValueError):
        uspeech.load_phrases("validation")
    with pytest.raises(ValueError):
        phrases.where(colour="red")


def test_spoken_questions_are_answered_by_their_scene(phrases):
    """The answer column is the world's own answer to the question about the scene it names (the candidates that
    name a random absent colour or shape depend on the generator, so several generators are pooled)."""
    import numpy as np

    from utils.world import World, questions

    world = World(seed=0)
    spoken = phrases.where(kinds="question", splits="train")
    for text, answer, ref in list(zip(spoken.texts, spoken.answers, spoken.scenes))[:40]:
        split, index = ref.split(":")
        scene, holdout = world.scene(split, int(index)), world.holdout_for(split)
        asked = {(qa.question, qa.answer) for k in range(30)
                 for qa in questions(scene, np.random.default_rng(k), holdout=holdout)}
        assert (text, answer) in asked
