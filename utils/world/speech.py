"""The shapes world's speech, the course's small datasets in data/speech/: spoken words (Phase 2) and spoken
phrases, in English and accented voices (Phase 6).

The dataset is 20 English words -- the shapes world's 6 colours and 4 shapes plus the digits zero..nine --
each synthesised by several espeak-ng voices at several speeds (``tools/make_speech.py``; datasheet in
``data/speech/README.md``). Clips are 16 kHz mono FLAC, trimmed of silence and peak-normalised. The course
reads them with ``soundfile``; espeak-ng is needed only to rebuild them.

Typical use::

    speech = load_speech()                               # every clip
    train, test = voice_split(speech)                    # test = the held-out voices (HELDOUT_VOICES)
    x = audio.batch_waveforms(train.waveforms)           # float32 (N, 16000): 1 s, zero-padded (utils.audio)
    y = train.labels                                     # int64 (N,), index into WORDS

The phrases (Phase 6) are whole sentences of the world -- captions, questions, digit strings -- each synthesised
as one utterance (not glued words), split by voice *and* by text, plus English read by French, German, Spanish
and Hindi voices (accented speech)::

    train = load_phrases("train")                        # 500 utterances, ten English training voices
    test = load_phrases("test")                          # other texts, the two held-out voices
    train.transcripts[0]                                 # "how many green objects are there"
"""
from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..env import REPO_ROOT
from .vocabulary import COLORS, SHAPES

SAMPLE_RATE: int = 16000
SPEECH_DIR: Path = REPO_ROOT / "data" / "speech"

DIGITS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
WORDS: tuple[str, ...] = (*COLORS, *SHAPES, *DIGITS)  # labels index this tuple

# The voices never used for training in the course: the test split of :func:`voice_split`.
HELDOUT_VOICES: tuple[str, ...] = ("scotland", "gb-f4")


@dataclass
class SpeechSet:
    """A list of clips and their annotations (all lists are aligned). Introduced in Phase 2.

    ``waveforms``: 1-D float32 tensors in [-1, 1] at :data:`SAMPLE_RATE` (lengths differ);
    ``labels``: int64 tensor, the index of each clip's word in :data:`WORDS`.
    """

    waveforms: list[torch.Tensor]
    words: list[str]
    voices: list[str]
    speeds: list[int]
    pitches: list[int]
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.waveforms)

    def subset(self, indices: Sequence[int]) -> SpeechSet:
        """The clips at ``indices``, in that order."""
        idx = list(indices)
        return SpeechSet(waveforms=[self.waveforms[i] for i in idx], words=[self.words[i] for i in idx],
                         voices=[self.voices[i] for i in idx], speeds=[self.speeds[i] for i in idx],
                         pitches=[self.pitches[i] for i in idx],
                         labels=self.labels[torch.as_tensor(idx, dtype=torch.long)])

    def durations(self) -> torch.Tensor:
        """Clip durations in seconds, float32 (N,)."""
        return torch.tensor([len(w) / SAMPLE_RATE for w in self.waveforms], dtype=torch.float32)


def read_clip(path: Path) -> torch.Tensor:
    """One shipped clip as a float32 waveform in [-1, 1]; a clip that is not 16 kHz mono is an error."""
    audio, rate = sf.read(path, dtype="float32")
    if rate != SAMPLE_RATE or audio.ndim != 1:
        raise ValueError(f"{path}: expected {SAMPLE_RATE} Hz mono, got {rate} Hz, shape {audio.shape}")
    return torch.from_numpy(np.ascontiguousarray(audio))


def speech_index(root: Path = SPEECH_DIR) -> list[dict[str, str]]:
    """The rows of ``index.csv`` (path, word, voice, espeak_voice, speed, pitch, n_samples, sha256), in file order.
    Introduced in Phase 2."""
    with open(Path(root) / "index.csv", newline="") as f:
        return list(csv.DictReader(f))


def load_speech(words: Iterable[str] | None = None, voices: Iterable[str] | None = None,
                root: Path = SPEECH_DIR) -> SpeechSet:
    """Load the spoken-words clips, optionally only some ``words`` and/or ``voices``. Introduced in Phase 2.

    Order is that of index.csv (word, then voice, speed, pitch), so loading is deterministic. Labels always
    index the full :data:`WORDS`, whatever subset is asked for.
    """
    keep_words = None if words is None else set(words)
    keep_voices = None if voices is None else set(voices)
    rows = speech_index(root)
    known_words, known_voices = {r["word"] for r in rows}, {r["voice"] for r in rows}
    if keep_words is not None and not keep_words <= known_words:
        raise ValueError(f"unknown words {sorted(keep_words - known_words)}; the dataset has {WORDS}")
    if keep_voices is not None and not keep_voices <= known_voices:
        raise ValueError(f"unknown voices {sorted(keep_voices - known_voices)}; the dataset has {sorted(known_voices)}")
    rows = [r for r in rows if (keep_words is None or r["word"] in keep_words)
            and (keep_voices is None or r["voice"] in keep_voices)]
    waveforms = [read_clip(Path(root) / r["path"]) for r in rows]
    return SpeechSet(waveforms=waveforms, words=[r["word"] for r in rows], voices=[r["voice"] for r in rows],
                     speeds=[int(r["speed"]) for r in rows], pitches=[int(r["pitch"]) for r in rows],
                     labels=torch.tensor([WORDS.index(r["word"]) for r in rows], dtype=torch.long))


def voice_split(speech: SpeechSet, test_voices: Iterable[str] = HELDOUT_VOICES) -> tuple[SpeechSet, SpeechSet]:
    """Split by speaker: (train, test) where test holds every clip of ``test_voices`` and train the rest, so no
    voice is in both. Introduced in Phase 2."""
    test_set = set(test_voices)
    train_idx = [i for i, v in enumerate(speech.voices) if v not in test_set]
    test_idx = [i for i, v in enumerate(speech.voices) if v in test_set]
    return speech.subset(train_idx), speech.subset(test_idx)


def spoken_phrases(speech: SpeechSet, phrases: Sequence[Sequence[str]], gap_s: float = 0.05
                   ) -> tuple[list[torch.Tensor], list[int], list[str]]:
    """Say multi-word phrases by joining clips of ONE voice and speed, ``gap_s`` seconds of silence between.

    For every phrase (e.g. ``("red", "circle")``) and every (voice, speed) in ``speech`` that has all of its
    words, returns the waveform; also the phrase's index in ``phrases`` and the voice, aligned lists.
    Phase 3 uses it to speak the shapes world's objects ("red circle") for an ImageBind-style audio tower.
    """
    clips = {(w, v, s): wave for w, v, s, wave in zip(speech.words, speech.voices, speech.speeds, speech.waveforms)}
    gap = torch.zeros(round(gap_s * SAMPLE_RATE))
    waves, which, voices = [], [], []
    for voice, speed in sorted({(v, s) for v, s in zip(speech.voices, speech.speeds)}):
        for i, phrase in enumerate(phrases):
            parts = [clips.get((w, voice, speed)) for w in phrase]
            if any(p is None for p in parts):
                continue
            joined = [parts[0]]
            for p in parts[1:]:
                joined += [gap, p]
            waves.append(torch.cat(joined))
            which.append(i)
            voices.append(voice)
    return waves, which, voices


# ----------------------------------------------------------------------------------------------------------
# Phrases (Phase 6)

PHRASE_SPLITS: tuple[str, ...] = ("train", "test", "accent-train", "accent-test")
PHRASE_KINDS: tuple[str, ...] = ("caption", "question", "digits")
ACCENTS: tuple[str, ...] = ("french", "german", "spanish", "hindi")


def transcript(text: str) -> str:
    """What a recogniser should write for ``text``: lower case, punctuation dropped, single spaces
    ("Is there a red square?" -> "is there a red square"). Introduced in Phase 6."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


@dataclass
class PhraseSet:
    """Spoken phrases and their annotations (all lists aligned). Introduced in Phase 6.

    ``waveforms``: 1-D float32 tensors in [-1, 1] at :data:`SAMPLE_RATE`; ``texts``: the sentence as written
    ("is there a red square?"); ``transcripts``: the words a recogniser should output (:func:`transcript`);
    ``kinds``: "caption", "question" or "digits"; ``answers``: a question's answer about its scene ("" for the
    others); ``scenes``: "split:index" of the ``World(seed=0)`` scene a caption or question is about ("" for
    digits); ``voices``, ``accents`` ("english" or one of :data:`ACCENTS`), ``speeds``, ``splits``.
    """

    waveforms: list[torch.Tensor]
    texts: list[str]
    kinds: list[str]
    answers: list[str]
    scenes: list[str]
    voices: list[str]
    accents: list[str]
    speeds: list[int]
    splits: list[str]

    def __len__(self) -> int:
        return len(self.waveforms)

    @property
    def transcripts(self) -> list[str]:
        return [transcript(t) for t in self.texts]

    def subset(self, indices: Sequence[int]) -> PhraseSet:
        """The clips at ``indices``, in that order."""
        idx = list(indices)
        return PhraseSet(**{name: [getattr(self, name)[i] for i in idx] for name in self.__dataclass_fields__})

    def where(self, **fields: str | Iterable[str]) -> PhraseSet:
        """The clips whose fields have the given values, e.g. ``where(kinds="question")`` or
        ``where(voices=["scotland"])`` (field names as the attributes)."""
        keep = {k: {v} if isinstance(v, str) else set(v) for k, v in fields.items()}
        unknown = set(keep) - set(self.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}; a PhraseSet has {list(self.__dataclass_fields__)}")
        return self.subset([i for i in range(len(self)) if all(getattr(self, k)[i] in v for k, v in keep.items())])

    def durations(self) -> torch.Tensor:
        """Clip durations in seconds, float32 (N,)."""
        return torch.tensor([len(w) / SAMPLE_RATE for w in self.waveforms], dtype=torch.float32)


def phrase_index(root: Path = SPEECH_DIR) -> list[dict[str, str]]:
    """The rows of ``phrases.csv`` (path, split, kind, text, answer, voice, espeak_voice, accent, speed, pitch,
    scene, n_samples, sha256), in file order. Introduced in Phase 6."""
    with open(Path(root) / "phrases.csv", newline="") as f:
        return list(csv.DictReader(f))


def load_phrases(splits: str | Iterable[str] | None = None, root: Path = SPEECH_DIR) -> PhraseSet:
    """Load the spoken phrases of one split or several (:data:`PHRASE_SPLITS`; None = all), in file order.
    Introduced in Phase 6.

    ``train``: 500 texts, each read by one of the ten English training voices; ``test``: 40 other texts (half of
    the captions and questions say "red triangle", a combination never heard in training), each read by both
    held-out voices (:data:`HELDOUT_VOICES`); ``accent-train``: training texts read by two speakers of each accent;
    ``accent-test``: test texts read by a third speaker of each accent. The datasheet is data/speech/README.md.
    """
    wanted = set(PHRASE_SPLITS) if splits is None else {splits} if isinstance(splits, str) else set(splits)
    if not wanted <= set(PHRASE_SPLITS):
        raise ValueError(f"unknown splits {sorted(wanted - set(PHRASE_SPLITS))}; choose from {PHRASE_SPLITS}")
    rows = [r for r in phrase_index(root) if r["split"] in wanted]
    waveforms = [read_clip(Path(root) / r["path"]) for r in rows]
    return PhraseSet(waveforms=waveforms, texts=[r["text"] for r in rows], kinds=[r["kind"] for r in rows],
                     answers=[r["answer"] for r in rows], scenes=[r["scene"] for r in rows],
                     voices=[r["voice"] for r in rows], accents=[r["accent"] for r in rows],
                     speeds=[int(r["speed"]) for r in rows], splits=[r["split"] for r in rows])
