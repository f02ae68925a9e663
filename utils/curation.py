"""Data curation, stage by stage: deduplication by exact and perceptual hashes, scored against the truth (Phase 8).

A web-scale pipeline (LAION, DataComp) removes exact duplicates by a hash of the bytes, then near-duplicates by a
*perceptual* hash — a short bit string that changes little when the picture changes little — compared with a
Hamming-distance threshold. Every stage is a filter, and a filter is judged by its precision (of what it removed, how
much was truly bad) and recall (of what was truly bad, how much it removed). The shapes-world crawl
(:mod:`utils.world.crawl`) carries the truth, so both can be measured.

* :func:`exact_key`, :func:`first_of_each` — exact deduplication by a hash of the bytes;
* :func:`average_hash` — the reference of the learner's perceptual hash, the same bits as ``imagehash.average_hash``;
* :func:`hamming_matrix`, :func:`first_copies` — pairwise distances and the keep-the-first rule of deduplication;
* :func:`unsafe_share`, :func:`overlay_score`, :func:`size_ok` — the crawl's safety stand-in, burnt-in text,
  thumbnails and banners;
* :func:`clip_scores` — DataComp's CLIP score (cosine of image and alt-text embeddings) with any open_clip model;
* :func:`precision_recall` — a filter scored against the truth.

The unsafe filter here matches the crawl's stand-in pattern by colour. That is the shape of the real thing — matching
against a list of known material, which child-safety organisations run as hash-matching services, plus trained
classifiers — and nothing more: no rule written by hand is a safety filter for real data.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from .world.crawl import HAZARD_RGB


def exact_key(data: bytes) -> str:
    """The exact-deduplication key of an encoded image: the hex SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


def first_of_each(keys: Sequence[str]) -> np.ndarray:
    """Boolean mask: True where a key appears for the first time (exact dedup keeps the first copy)."""
    seen: set[str] = set()
    keep = np.zeros(len(keys), dtype=bool)
    for i, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            keep[i] = True
    return keep


def average_hash(image: np.ndarray | Image.Image, hash_size: int = 8) -> np.ndarray:
    """Average hash (aHash): the image in grey levels, shrunk to ``hash_size``×``hash_size`` with a Lanczos filter;
    bit (r, c) is whether that cell is brighter than the mean of all cells. Returns a flat bool array of
    ``hash_size**2`` bits, row-major — the bits of ``imagehash.average_hash(image, hash_size).hash.flatten()``."""
    image = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    pixels = np.asarray(image.convert("L").resize((hash_size, hash_size), Image.LANCZOS))
    return (pixels > pixels.mean()).flatten()


def hamming_matrix(hashes: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances (N, N) between the rows of ``hashes`` (N, bits), bool."""
    h = np.asarray(hashes, dtype=np.int32)
    return h @ (1 - h).T + (1 - h) @ h.T


def first_copies(distances: np.ndarray, threshold: int) -> np.ndarray:
    """Near-deduplication's keep mask: walk the records in order and drop a record when a *kept* earlier record lies
    within ``threshold`` (distance ≤ threshold) — the first copy of each cluster is kept."""
    keep = np.zeros(len(distances), dtype=bool)
    for i in range(len(distances)):
        keep[i] = not (distances[i, :i][keep[:i]] <= threshold).any()
    return keep


def precision_recall(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(precision, recall) of a filter: ``flagged`` = what it removed, ``truth`` = what should go (bool masks).
    Precision is 1.0 when nothing was flagged; recall is 1.0 when nothing should go."""
    flagged, truth = np.asarray(flagged, bool), np.asarray(truth, bool)
    hits = int((flagged & truth).sum())
    return (hits / flagged.sum() if flagged.any() else 1.0), (hits / truth.sum() if truth.any() else 1.0)


def unsafe_share(image: np.ndarray, marker: tuple[int, int, int] = HAZARD_RGB[0], tolerance: int = 80) -> float:
    """Share of pixels within ``tolerance`` (sum of channel differences) of the crawl's unsafe marker colour; the
    stand-in's band covers several percent of an image, nothing else does."""
    return float((np.abs(np.asarray(image, dtype=np.int32) - np.array(marker)).sum(-1) < tolerance).mean())


def overlay_score(image: np.ndarray) -> float:
    """Share of dark, colourless pixels (brightest channel < 130, channels within 40 of each other): burnt-in letters
    are dark grey, the world's shapes are saturated and its background light — an OCR-free text detector."""
    x = np.asarray(image, dtype=np.int32)
    brightest, darkest = x.max(-1), x.min(-1)
    return float(((brightest < 130) & (brightest - darkest < 40)).mean())


def size_ok(size: tuple[int, int], min_side: int = 24, max_aspect: float = 2.5) -> bool:
    """The resolution and aspect-ratio filter: both sides at least ``min_side`` pixels, long side at most
    ``max_aspect`` times the short one. ``size`` is (width, height)."""
    w, h = size
    return min(w, h) >= min_side and max(w, h) <= max_aspect * min(w, h)


@torch.no_grad()
def clip_scores(model, tokenizer: Callable, images: Sequence[np.ndarray], texts: Sequence[str],
                image_size: int = 32) -> np.ndarray:
    """CLIP score of each (image, text) pair: the cosine of the two L2-normalised embeddings (DataComp's filter).
    Images of any size are resized to ``image_size`` (box filter) and normalised as the course's CLIP expects;
    empty texts are scored as a single space."""
    from .clip import encode_images, encode_texts, normalize_images

    small = np.stack([np.asarray(Image.fromarray(np.asarray(im, dtype=np.uint8)).convert("RGB").resize(
        (image_size, image_size), Image.BOX)) for im in images])
    image_emb = encode_images(model, normalize_images(small))
    text_emb = encode_texts(model, tokenizer, [t or " " for t in texts])
    return (image_emb * text_emb).sum(-1).numpy()
