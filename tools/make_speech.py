"""Synthesise the course's spoken-words dataset (data/speech/) with espeak-ng, offline and deterministically.

    python tools/make_speech.py            # (re)build data/speech/clips/ and data/speech/index.csv
    python tools/make_speech.py --check    # verify the shipped files against index.csv (no espeak-ng needed)

Building needs the espeak-ng program (``apt-get install espeak-ng``); the course itself never does: it only
reads the FLAC files (utils/world/speech.py). Each clip is one word spoken by one espeak-ng voice at one speed and
pitch; the 22,050 Hz output of espeak-ng is resampled to 16 kHz (torchaudio.functional.resample, float64),
trimmed of leading/trailing silence with a frame-energy threshold, peak-normalised and stored as 16-bit FLAC.
index.csv records each clip's sha256 of its 16-bit PCM samples (little-endian), so ``--check`` can verify the
shipped files without espeak-ng, and a rebuild with the same espeak-ng version gives an identical index.csv.
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

from utils.world import COLORS, SHAPES  # noqa: E402

OUT = ROOT / "data" / "speech"
INDEX = OUT / "index.csv"
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


def to_pcm(audio: np.ndarray) -> np.ndarray:
    """Peak-normalise to PEAK and quantise to int16."""
    return np.round(audio / np.abs(audio).max() * PEAK * 32767).astype(np.int16)


def make_clip(word: str, espeak_voice: str, speed: int, pitch: int) -> np.ndarray:
    return to_pcm(trim(resample(synthesise(word, espeak_voice, speed, pitch))))


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
    on_disk = {p.relative_to(out).as_posix() for p in (out / "clips").rglob("*") if p.is_file()}
    if on_disk != set(listed):
        problems.append(f"files on disk differ from index.csv: {sorted(on_disk ^ set(listed))[:5]}")
    for r in rows:
        path = out / r["path"]
        if not path.is_file():
            continue
        pcm, rate = sf.read(path, dtype="int16")
        if rate != SAMPLE_RATE or pcm.ndim != 1:
            problems.append(f"{r['path']}: {rate} Hz, shape {pcm.shape}")
        elif len(pcm) != int(r["n_samples"]) or pcm_sha256(pcm) != r["sha256"]:
            problems.append(f"{r['path']}: samples differ from index.csv")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="verify shipped files against index.csv and exit")
    args = parser.parse_args()
    if args.check:
        problems = check()
        for p in problems:
            print("FAIL", p)
        n = len(read_index())
        print(f"{n} clips checked: {'OK' if not problems else f'{len(problems)} problems'}")
        sys.exit(1 if problems else 0)
    rows = build()
    seconds = np.array([int(r["n_samples"]) for r in rows]) / SAMPLE_RATE
    print(f"espeak-ng {espeak_version()}: {len(rows)} clips, {len(WORDS)} words x {len(VOICES)} voices x "
          f"{len(SPEEDS)} speeds (pitches {PITCHES} cycled); duration min {seconds.min():.2f} s, "
          f"mean {seconds.mean():.2f} s, max {seconds.max():.2f} s, total {seconds.sum():.0f} s")


if __name__ == "__main__":
    main()
