"""An invisible watermark for generated images: spread spectrum in the pixels, detected by correlation.

Cox, Kilian, Leighton and Shamoon (1997) hid a mark in an image by adding a faint pseudo-random ±1 pattern, known
only from a secret key, and found it again by correlating the image with that pattern. The pattern is invisible (±2
of 255 levels, about 42 dB PSNR) yet easy to detect: over the 3,072 numbers of a 32×32 colour image the pattern adds
up while the picture, uncorrelated with it, averages out. Stable Diffusion's reference scripts mark their outputs with
a frequency-domain cousin (the ``invisible-watermark`` package, DWT-DCT), and Google's SynthID learns the embedder
and the detector together; the principle, a key-dependent signal under the noise floor, is the same.

The pieces, in the order the Phase 10 notebook uses them:

* ``key_pattern``  the secret ±1 pattern of a key (``block`` > 1: constant over ``block`` × ``block`` squares, a
  lower-frequency mark);
* ``embed``        add ``strength`` × pattern to 8-bit images, rounded and clipped (exercise 10.7);
* ``highpass``     an image minus its 3×3 local mean: the flat regions of a picture vanish, the pattern stays;
* ``detection_z``  the normalised correlation of a residual with the pattern, a z-score that is about N(0, 1) on
  an image without the mark (exercise 10.8);
* ``detect``       both: the z-score of images, to compare with a threshold (4: a false alarm in about 30,000 clean
  images, if the z-score really is N(0, 1), which the notebook measures);
* ``jpeg``, ``add_noise``, ``shift`` and ``psnr``: what happens to a marked image on its way, and how visible the
  mark is.
"""
from __future__ import annotations

import io

import numpy as np

THRESHOLD = 4.0   # z above this: "marked"


def key_pattern(key: int, shape: tuple[int, int, int] = (32, 32, 3), block: int = 1) -> np.ndarray:
    """The secret pattern of ``key``: ±1 per pixel and channel (float64, ``shape`` = (H, W, C)), drawn from a
    generator seeded by the key. With ``block`` > 1 the signs are drawn per ``block`` × ``block`` square, so the
    mark lives at lower spatial frequencies (H and W must be multiples of ``block``)."""
    h, w, c = shape
    if h % block or w % block:
        raise ValueError(f"the image size {h}×{w} is not a multiple of block={block}")
    signs = np.random.default_rng(key).choice([-1.0, 1.0], size=(h // block, w // block, c))
    return np.kron(signs, np.ones((block, block, 1)))


def embed(images: np.ndarray, pattern: np.ndarray, strength: float) -> np.ndarray:
    """Marked copies of 8-bit ``images`` (N, H, W, C): each pixel plus ``strength`` × ``pattern`` (levels of 255),
    rounded to the nearest level and clipped into [0, 255], back as uint8 (what a saved PNG holds)."""
    marked = np.asarray(images, dtype=np.float64) + strength * np.asarray(pattern, dtype=np.float64)
    return np.clip(np.round(marked), 0, 255).astype(np.uint8)


def highpass(images: np.ndarray) -> np.ndarray:
    """Each pixel minus the mean of its 3×3 neighbourhood, per channel (edges reflected), as float64 (N, H, W, C):
    the smooth content of a picture drops out, fine detail and an added ±1 pattern remain."""
    from scipy.ndimage import uniform_filter

    x = np.asarray(images, dtype=np.float64)
    return x - uniform_filter(x, size=(1, 3, 3, 1), mode="reflect")


def detection_z(residuals: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """One z-score per image: the correlation of its residual (N, H, W, C) with ``pattern`` (H, W, C), after
    removing the residual's mean, divided by what it would be for noise of the residual's own size:
    z = Σ (r − mean r) · p / (std(r) · ‖p‖). Without the mark (r independent of p) z is about N(0, 1), whatever
    the image's contrast; with it, z grows with strength × √(number of pixels) / std(r)."""
    r = np.asarray(residuals, dtype=np.float64)
    p = np.asarray(pattern, dtype=np.float64)
    axes = tuple(range(1, r.ndim))
    r = r - r.mean(axis=axes, keepdims=True)
    return (r * p).sum(axis=axes) / (r.std(axis=axes) * np.linalg.norm(p) + 1e-12)


def detect(images: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """The watermark z-score of each 8-bit image: ``detection_z`` of its ``highpass`` residual."""
    return detection_z(highpass(images), pattern)


def jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    """``images`` saved as JPEG at ``quality`` (Pillow) and read back, uint8: a marked image shared online."""
    from PIL import Image

    out = []
    for image in np.asarray(images, dtype=np.uint8):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        out.append(np.array(Image.open(buffer).convert("RGB")))
    return np.stack(out)


def add_noise(images: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """``images`` plus Gaussian noise of ``sigma`` levels (seeded), rounded and clipped to uint8."""
    noise = np.random.default_rng(seed).normal(0.0, sigma, np.shape(images))
    return np.clip(np.round(np.asarray(images, dtype=np.float64) + noise), 0, 255).astype(np.uint8)


def shift(images: np.ndarray, pixels: int = 1) -> np.ndarray:
    """``images`` moved right by ``pixels`` (wrapping around): the picture is the same, the mark is misaligned."""
    return np.roll(np.asarray(images), pixels, axis=2)


def psnr(original: np.ndarray, marked: np.ndarray) -> float:
    """Peak signal-to-noise ratio of ``marked`` against ``original`` in dB, over every pixel (8-bit images)."""
    mse = np.mean((np.asarray(original, dtype=np.float64) - np.asarray(marked, dtype=np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))
