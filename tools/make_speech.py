"""Synthesise the course's speech (data/speech/) with espeak-ng, offline and deterministically.

    python tools/make_speech.py                # (re)build everything: the spoken words and the phrases
    python tools/make_speech.py words          # only data/speech/clips/ + index.csv      (Phase 2 on)
    python tools/make_speech.py phrases        # only data/speech/phrases/ + phrases.csv  (Phase 6 on)
    python tools/make_speech.py --check        # verify the shipped files against both indexes (no espeak-ng)

Building needs the espeak-ng program (``apt-get install espeak-ng``); the course itself never does: it only
reads the FLAC files (utils/world/speech.py). Each clip is one text spoken by one espeak-ng voice at one speed and
pitch; the 22,050 Hz output of espeak-ng is resampled to 16 kHz (torchaudio.functional.resample, float64),
trimmed of leading/trailing silence with a frame-energy threshold, peak-normalised and stored as 16-bit FLAC.
The phrases are quantised to 12 bits first (multiples of 16 in the 16-bit samples: a noise floor 72 dB below the
peak, which FLAC stores in ~35 % fewer bytes), so that enough sentences fit in the repository.
The indexes record each clip's sha256 of its 16-bit PCM samples (little-endian), so ``--check`` can verify the
shipped files without espeak-ng, and a rebuild with the same espeak-ng version gives identical indexes.

The words (Phase 2): 20 words x 12 English voices x 2 speeds. The phrases (Phase 6): the world's captions,
questions and digit strings as whole sentences, split by voice AND by phrase, plus English read by voices of
other languages (the "accented speech" of the fine-tuning lesson); see :func:`phrase_plan` and the datasheet.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from utils.world import COLORS, QA_KINDS, SHAPES, World, caption, questions  # noqa: E402
from utils.world.speech import HELDOUT_VOICES  # noqa: E402

OUT = ROOT / "data" / "speech"
INDEX = OUT / "index.csv"
PHRASE_INDEX = OUT / "phrases.csv"
COLUMNS = ("path", "word", "voice", "espeak_voice", "speed", "pitch", "n_samples", "sha256")

DIGITS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
WORDS: tuple[str, ...] = (*COLORS, *SHAPES, *DIGITS)

# voice id (used in file names and by utils.world.speech) -> espeak-ng voice spec (language[+variant]).
# Twelve voices: seven accents of the default male voice, plus variants (female f2/f3/f4, male m3/m7, croak,
# klatt). utils.world.speech.HELDOUT_VOICES ("scotland", "gb-f4") are the ones the course tests on.
VOICES: dict[str, str] = {
    "us": "en-us",
    "gb": "en-gb",
    "scotland": "en-gb-scotland",
    "caribbean": "en-029",
    "nyc": "en-us-nyc",
    "rp-m7": "en-gb-x-rp+m7",
    "lancaster-f3": "en-gb-x-gbclan+f3",
    "us-f2": "en-us+f2",
    "gb-f4": "en-gb+f4",
    "us-m3": "en-us+m3",
    "gb-croak": "en-gb+croak",
    "us-klatt": "en-us+klatt",
}
SPEEDS: tuple[int, ...] = (130, 180)  # words per minute (espeak-ng -s)
PITCHES: tuple[int, ...] = (35, 50, 65)  # espeak-ng -p (0-99, default 50): cycled, see pitch_for


def pitch_for(voice: str, speed: int) -> int:
    """The pitch of a (voice, speed) pair: PITCHES cycled over voice index + speed index, so every voice is heard at
    two pitches and every pitch at both speeds without growing the dataset."""
    return PITCHES[(list(VOICES).index(voice) + SPEEDS.index(speed)) % len(PITCHES)]


def grid() -> list[tuple[str, str, int, int]]:
    """Every clip as (word, voice, speed, pitch), in index.csv order."""
    return [(w, v, s, pitch_for(v, s)) for w in WORDS for v in VOICES for s in SPEEDS]


ESPEAK_RATE = 22050
SAMPLE_RATE = 16000
PEAK = 0.9  # peak amplitude after normalisation
FRAME = 160  # 10 ms frames for the silence threshold
THRESHOLD_DB = -40.0  # a frame is speech if its RMS is within 40 dB of the loudest frame
PAD = 480  # keep 30 ms of margin either side of the speech


def clip_path(word: str, voice: str, speed: int, pitch: int) -> str:
    """Path of a clip relative to data/speech/."""
    return f"clips/{word}/{voice}_s{speed}_p{pitch}.flac"


def pcm_sha256(pcm: np.ndarray) -> str:
    """sha256 of int16 samples as little-endian bytes."""
    return hashlib.sha256(np.ascontiguousarray(pcm, dtype="<i2").tobytes()).hexdigest()


def espeak_version() -> str:
    out = subprocess.run(["espeak-ng", "--version"], check=True, capture_output=True, text=True).stdout
    return out.split("Data at")[0].replace("eSpeak NG text-to-speech:", "").strip()


def synthesise(word: str, espeak_voice: str, speed: int, pitch: int) -> np.ndarray:
    """espeak-ng -> float64 waveform at 22,050 Hz."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "clip.wav"
        subprocess.run(["espeak-ng", "-v", espeak_voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), word],
                       check=True, capture_output=True)
        audio, rate = sf.read(wav, dtype="float64")
    if rate != ESPEAK_RATE or audio.ndim != 1:
        raise RuntimeError(f"unexpected espeak-ng output: {rate} Hz, shape {audio.shape}")
    return audio


def resample(audio: np.ndarray) -> np.ndarray:
    import torch
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(audio), ESPEAK_RATE, SAMPLE_RATE).numpy()


def trim(audio: np.ndarray) -> np.ndarray:
    """Cut leading/trailing frames whose RMS is more than 40 dB below the loudest frame (30 ms margin kept)."""
    n = len(audio) // FRAME
    rms = np.sqrt(np.mean(audio[: n * FRAME].reshape(n, FRAME) ** 2, axis=1) + 1e-20)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > THRESHOLD_DB)
    start = max(0, loud[0] * FRAME - PAD)
    stop = min(len(audio), (loud[-1] + 1) * FRAME + PAD)
    return audio[start:stop]


def to_pcm(audio: np.ndarray, bits: int = 16) -> np.ndarray:
    """Peak-normalise to PEAK and quantise to int16; with ``bits`` < 16, to multiples of 2**(16 - bits)."""
    step = 2 ** (16 - bits)
    return (np.round(audio / np.abs(audio).max() * PEAK * 32767 / step) * step).astype(np.int16)


def make_clip(word: str, espeak_voice: str, speed: int, pitch: int, bits: int = 16) -> np.ndarray:
    return to_pcm(trim(resample(synthesise(word, espeak_voice, speed, pitch))), bits)


def build(out: Path = OUT) -> list[dict[str, str]]:
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng not found: install it to build (apt-get install espeak-ng); `--check` needs no espeak-ng")
    if (out / "clips").exists():
        shutil.rmtree(out / "clips")
    rows = []
    for word, voice, speed, pitch in grid():
        spec = VOICES[voice]
        pcm = make_clip(word, spec, speed, pitch)
        rel = clip_path(word, voice, speed, pitch)
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(out / rel, pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16", compression_level=1.0)
        rows.append({"path": rel, "word": word, "voice": voice, "espeak_voice": spec, "speed": str(speed),
                     "pitch": str(pitch), "n_samples": str(len(pcm)), "sha256": pcm_sha256(pcm)})
    with open(out / "index.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return rows


def read_index(index: Path = INDEX) -> list[dict[str, str]]:
    with open(index, newline="") as f:
        return list(csv.DictReader(f))


def check(out: Path = OUT) -> list[str]:
    """Verify data/speech/ against index.csv: every word x voice x speed present (at its pitch_for), each file
    16 kHz mono with the recorded length and PCM sha256, and no stray files. Returns the problems (empty = OK)."""
    problems = []
    rows = read_index(out / "index.csv")
    expected = {clip_path(*clip) for clip in grid()}
    listed = [r["path"] for r in rows]
    if set(listed) != expected or len(listed) != len(expected):
        problems.append(f"index.csv lists {len(listed)} clips, expected the {len(expected)} of the full grid")
    return problems + check_files(out, "clips", rows, "index.csv")


def check_files(out: Path, folder: str, rows: list[dict[str, str]], index: str, bits: int = 16) -> list[str]:
    """The clips under ``out/folder`` against the rows of ``index``: the same files, no stray ones; each 16 kHz mono
    with the recorded length and PCM sha256, and with samples on a ``bits``-bit grid. Returns the problems."""
    problems = []
    listed = {r["path"] for r in rows}
    on_disk = {p.relative_to(out).as_posix() for p in (out / folder).rglob("*") if p.is_file()}
    if on_disk != listed:
        problems.append(f"files on disk differ from {index}: {sorted(on_disk ^ listed)[:5]}")
    step = 2 ** (16 - bits)
    for r in rows:
        path = out / r["path"]
        if not path.is_file():
            continue
        pcm, rate = sf.read(path, dtype="int16")
        if rate != SAMPLE_RATE or pcm.ndim != 1:
            problems.append(f"{r['path']}: {rate} Hz, shape {pcm.shape}")
        elif len(pcm) != int(r["n_samples"]) or pcm_sha256(pcm) != r["sha256"]:
            problems.append(f"{r['path']}: samples differ from {index}")
        elif np.any(pcm % step):
            problems.append(f"{r['path']}: not quantised to {bits} bits")
    return problems


# ----------------------------------------------------------------------------------------------------------
# Phrases (Phase 6): whole sentences of the world, English voices and accented ones

PHRASE_COLUMNS = ("path", "split", "kind", "text", "answer", "voice", "espeak_voice", "accent", "speed", "pitch",
                  "scene", "n_samples", "sha256")
PHRASE_BITS = 12  # see the module docstring
PHRASE_SPEEDS: tuple[int, ...] = (150, 175, 200)  # words per minute
PHRASE_SEED = 6  # the plan's own stream (texts, voices, speeds): data, so COURSE_SEED never moves it
ENGLISH_TRAIN_VOICES: tuple[str, ...] = tuple(v for v in VOICES if v not in HELDOUT_VOICES)
# Accented English: espeak-ng voices of other languages reading the English text with their own letter-to-sound
# rules and phonemes. Three speakers per accent (the language's default voice and two variants).
ACCENTS: dict[str, str] = {"french": "fr-fr", "german": "de", "spanish": "es", "hindi": "hi"}
ACCENT_VARIANTS: dict[str, str] = {"": "", "f2": "+f2", "m3": "+m3"}
ACCENT_TEST_VARIANT = "m3"  # the fine-tuning lesson adapts on the other two speakers and tests on this one
# How many texts: train (one English training voice each), test (each read by both held-out voices),
# per accented fine-tuning speaker (drawn from the train texts), per accented test speaker (from the test texts).
N_TRAIN = {"caption": 250, "question": 175, "digits": 75}
N_TEST = {"caption": 15, "question": 15, "digits": 10}
N_ACCENT_TRAIN, N_ACCENT_TEST = 12, 20
QUESTION_REPEATS = 3
HELDOUT_PHRASE = "red triangle"  # the world's held-out composition: never heard in training, in half the test texts


def accent_voices() -> dict[str, tuple[str, str]]:
    """Accented voice id ("french", "french-f2", ...) -> (accent, espeak-ng voice spec)."""
    return {(a if not v else f"{a}-{v}"): (a, spec + suffix) for a, spec in ACCENTS.items()
            for v, suffix in ACCENT_VARIANTS.items()}


def digit_string(rng: np.random.Generator) -> str:
    """Three to five digits spoken as words: "seven three nine"."""
    return " ".join(DIGITS[int(d)] for d in rng.integers(0, 10, int(rng.integers(3, 6))))


def _texts(world: World, split: str, counts: dict[str, int], rng: np.random.Generator, avoid: set[str],
           start: int, with_heldout: float = 0.0) -> list[tuple[str, str, str, str]]:
    """(text, kind, scene, answer) for ``counts`` texts of each kind from ``split`` scenes of one or two objects,
    none in ``avoid``. Captions and digit strings are all different; a question may come back up to
    QUESTION_REPEATS times (there are only four "what color is the <shape>?"), about another scene. A share
    ``with_heldout`` of the captions and questions say HELDOUT_PHRASE; with 0, none does."""
    out: list[tuple[str, str, str, str]] = []
    said: dict[str, int] = {t: QUESTION_REPEATS for t in avoid}
    holdout = world.holdout_for(split)
    for kind in ("caption", "question"):
        i, made, need_heldout = start, 0, round(counts[kind] * with_heldout)
        limit = 1 if kind == "caption" else QUESTION_REPEATS
        while made < counts[kind]:
            scene = world.scene(split, i)
            i += 1
            if len(scene.objects) > 2:
                continue
            want_heldout = made < need_heldout
            if kind == "caption":
                pool = [(caption(scene, template=int(rng.integers(5))), "")]
            else:  # the question kinds take turns over the scenes (colour, shape, size, count, exists, position)
                pool = [(qa.question, qa.answer) for qa in questions(scene, rng, holdout=holdout)
                        if qa.kind == QA_KINDS[i % len(QA_KINDS)]]
            pool = [(t, a) for t, a in pool if said.get(t, 0) < limit and (HELDOUT_PHRASE in t) == want_heldout]
            if not pool:
                continue
            text, answer = pool[int(rng.integers(len(pool)))]
            said[text] = said.get(text, 0) + 1
            out.append((text, kind, f"{split}:{i - 1}", answer))
            made += 1
    made = 0
    while made < counts["digits"]:
        text = digit_string(rng)
        if text not in said:
            said[text] = 1
            out.append((text, "digits", "", ""))
            made += 1
    return out


def phrase_plan() -> list[dict[str, str]]:
    """Every phrase clip as index.csv will list it, minus the audio columns: deterministic (World(seed=0), a
    fixed generator). Splits: ``train`` (the training texts, each read by one of the ten English training voices),
    ``test`` (other texts — half of the captions and questions saying the held-out "red triangle" — each read by
    both held-out voices), ``accent-train`` (training texts read by two speakers of each accent) and
    ``accent-test`` (test texts read by the third speaker of each accent)."""
    world = World(seed=0)
    rng = np.random.default_rng(PHRASE_SEED)
    train = _texts(world, "train", N_TRAIN, rng, set(), start=0)
    test = _texts(world, "test", N_TEST, rng, {t for t, *_ in train}, start=0, with_heldout=0.5)
    rows: list[dict[str, str]] = []

    def add(split: str, number: int, text: str, kind: str, scene: str, answer: str, voice: str, spec: str,
            accent: str) -> None:
        speed = PHRASE_SPEEDS[int(rng.integers(len(PHRASE_SPEEDS)))]
        pitch = PITCHES[int(rng.integers(len(PITCHES)))]
        rows.append({"path": f"phrases/{split}/{number:04d}_{voice}.flac", "split": split, "kind": kind, "text": text,
                     "answer": answer, "voice": voice, "espeak_voice": spec, "accent": accent, "speed": str(speed),
                     "pitch": str(pitch), "scene": scene})

    order = rng.permutation(len(train))
    for k, j in enumerate(order):  # the ten training voices take turns over the shuffled texts
        voice = ENGLISH_TRAIN_VOICES[k % len(ENGLISH_TRAIN_VOICES)]
        add("train", int(j), *train[int(j)], voice, VOICES[voice], "english")
    for j, item in enumerate(test):
        for voice in HELDOUT_VOICES:
            add("test", j, *item, voice, VOICES[voice], "english")
    for voice, (accent, spec) in accent_voices().items():
        if voice.endswith(f"-{ACCENT_TEST_VARIANT}"):
            for j in sorted(rng.choice(len(test), N_ACCENT_TEST, replace=False).tolist()):
                add("accent-test", j, *test[j], voice, spec, accent)
        else:
            for j in sorted(rng.choice(len(train), N_ACCENT_TRAIN, replace=False).tolist()):
                add("accent-train", j, *train[j], voice, spec, accent)
    return rows


def build_phrases(out: Path = OUT) -> list[dict[str, str]]:
    """Synthesise every clip of :func:`phrase_plan` into ``out/phrases/`` and write ``out/phrases.csv``."""
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng not found: install it to build (apt-get install espeak-ng); `--check` needs no espeak-ng")
    if (out / "phrases").exists():
        shutil.rmtree(out / "phrases")
    rows = []
    for row in phrase_plan():
        pcm = make_clip(row["text"], row["espeak_voice"], int(row["speed"]), int(row["pitch"]), bits=PHRASE_BITS)
        (out / row["path"]).parent.mkdir(parents=True, exist_ok=True)
        sf.write(out / row["path"], pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16", compression_level=1.0)
        rows.append({**row, "n_samples": str(len(pcm)), "sha256": pcm_sha256(pcm)})
    with open(out / "phrases.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=PHRASE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return rows


def check_phrases(out: Path = OUT) -> list[str]:
    """Verify data/speech/phrases/ against phrases.csv and phrases.csv against :func:`phrase_plan`: the same
    clips (texts, voices, speeds, pitches, splits), each file 16 kHz mono with the recorded length and PCM sha256,
    quantised to PHRASE_BITS, and no stray files. Returns the problems (empty = OK)."""
    problems = []
    rows = read_index(out / "phrases.csv")
    plan = phrase_plan()
    keys = [c for c in PHRASE_COLUMNS if c not in ("n_samples", "sha256")]
    if [{k: r[k] for k in keys} for r in rows] != plan:
        problems.append(f"phrases.csv ({len(rows)} rows) differs from phrase_plan() ({len(plan)} clips)")
    return problems + check_files(out, "phrases", rows, "phrases.csv", bits=PHRASE_BITS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", help="what to build: words, phrases (default: both)")
    parser.add_argument("--check", action="store_true", help="verify shipped files against the indexes and exit")
    args = parser.parse_args()
    if set(args.parts) - {"words", "phrases"}:  # not argparse's choices: with nargs="*" it rejects an empty list
        parser.error(f"unknown parts {args.parts}: choose from words, phrases")
    if args.check:
        problems = check() + check_phrases()
        for p in problems:
            print("FAIL", p)
        n = len(read_index()) + len(read_index(PHRASE_INDEX))
        print(f"{n} clips checked: {'OK' if not problems else f'{len(problems)} problems'}")
        sys.exit(1 if problems else 0)
    parts = args.parts or ["words", "phrases"]
    if "words" in parts:
        rows = build()
        seconds = np.array([int(r["n_samples"]) for r in rows]) / SAMPLE_RATE
        print(f"espeak-ng {espeak_version()}: {len(rows)} clips, {len(WORDS)} words x {len(VOICES)} voices x "
              f"{len(SPEEDS)} speeds (pitches {PITCHES} cycled); duration min {seconds.min():.2f} s, "
              f"mean {seconds.mean():.2f} s, max {seconds.max():.2f} s, total {seconds.sum():.0f} s")
    if "phrases" in parts:
        rows = build_phrases()
        for split in ("train", "test", "accent-train", "accent-test"):
            seconds = np.array([int(r["n_samples"]) for r in rows if r["split"] == split]) / SAMPLE_RATE
            print(f"phrases {split}: {len(seconds)} clips, duration min {seconds.min():.2f} s, mean "
                  f"{seconds.mean():.2f} s, max {seconds.max():.2f} s, total {seconds.sum():.0f} s")


if __name__ == "__main__":
    main()
