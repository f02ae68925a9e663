"""Data curation, stage by stage: deduplication by exact and perceptual hashes, scored against the truth (Phase 8).

A web-scale pipeline (LAION, DataComp) removes exact duplicates by a hash of the bytes, then near-duplicates by a
*perceptual* hash — a short bit string that changes little when the picture changes little — compared with a
Hamming-distance threshold. Every stage is a filter, and a filter is judged by its precision (of what it removed, how
much was truly bad) and recall (of what was truly bad, how much it removed). The shapes-world crawl
(:mod:`utils.world.crawl`) carries the truth, so both can be measured.

* :func:`exact_key`, :func:`first_of_each` — exact deduplication by a hash of the bytes;
* :func:`average_hash` — the reference of the learner's perceptual hash, the same bits as ``imagehash.average_hash``;
* :func:`hamming_matrix`, :func:`first_copies` — pairwise distances and the keep-the-first rule of deduplication;
* :func:`precision_recall` — a filter scored against the truth.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from PIL import Image


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
