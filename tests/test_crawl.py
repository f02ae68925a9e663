"""Tests for utils/world/crawl.py: the noisy web crawl is byte-identical across processes and access orders, its
defects come at their rates, and every label is true of the record it is on."""
from __future__ import annotations

import collections
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils.world import caption
from utils.world.crawl import DEFAULT_RATES, DEFECTS, GENERIC_ALT_TEXTS, HAZARD_RGB, IMAGE_DEFECTS, Crawl
from utils.world.language import CAPTION_TEMPLATES
from utils.world.rendering import render

ROOT = Path(__file__).resolve().parent.parent
N = 1500


@pytest.fixture(scope="module")
def records():
    return Crawl(seed=0).records(N)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """8×8 box-filtered copy, as ints: what survives a small crop and a re-encode."""
    return np.asarray(Image.fromarray(image).resize((8, 8), Image.BOX)).astype(int)


def digest(records) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(r.data + r.alt_text.encode() + r.url.encode() + ",".join(r.defects).encode())
    return h.hexdigest()


def test_same_seed_same_bytes_in_another_process_and_any_order(records):
    code = ("from utils.world.crawl import Crawl; import hashlib; h = hashlib.sha256()\n"
            "for r in Crawl(seed=0).records(300):\n"
            "    h.update(r.data + r.alt_text.encode() + r.url.encode() + ','.join(r.defects).encode())\n"
            "print(h.hexdigest())")
    other = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert other.stdout.strip() == digest(records[:300])
    assert Crawl(seed=0).record(777) == records[777]                 # no dependence on what was made before
    assert digest(Crawl(seed=1).records(50)) != digest(records[:50])


def test_each_defect_comes_at_its_rate(records):
    crawl = Crawl(seed=0)
    drawn = collections.Counter(crawl.image_defect(i) for i in range(N))
    for kind in IMAGE_DEFECTS:
        assert drawn[kind] / N == pytest.approx(DEFAULT_RATES[kind], abs=0.025), kind
    counts = collections.Counter(d for r in records for d in r.defects)
    for kind in ("generic_text", "wrong_text", "partial_text"):
        assert counts[kind] / N == pytest.approx(DEFAULT_RATES[kind], abs=0.025), kind
    assert set(counts) == set(DEFECTS)
    assert 0.18 < sum(not r.defects for r in records) / N < 0.32   # ≈ (1 − 0.36 image) × (1 − 0.60 text)
    assert Crawl(seed=0, rates={"unsafe": 0.5}).rates["unsafe"] == 0.5
    with pytest.raises(AssertionError, match="unknown defects"):
        Crawl(rates={"blurry": 0.1})


def test_duplicates_copy_an_earlier_original_and_keep_its_image_defects(records):
    exact = [r for r in records if "exact_duplicate" in r.defects]
    near = [r for r in records if "near_duplicate" in r.defects]
    assert exact and near
    for r in exact + near:
        source = records[r.source]
        assert r.source < r.index and source.source is None           # an original, never a copy of a copy
        assert r.scene == source.scene
        kept = {"low_resolution", "extreme_aspect", "text_overlay", "unsafe"}
        assert kept & set(r.defects) == kept & set(source.defects)
    for r in exact:
        assert r.sha256() == records[r.source].sha256()
    originals = [r for r in records if r.source is None]
    square = [r for r in originals if r.size == (64, 64)]
    coarse = np.stack([thumbnail(r.image()) for r in square])
    found = 0
    for r in near:
        assert r.sha256() != records[r.source].sha256() and r.size == records[r.source].size
        if r.size == (64, 64):    # the same picture, slightly changed: its source is the nearest original
            found += square[int(np.abs(coarse - thumbnail(r.image())).mean((1, 2, 3)).argmin())].index == r.source
    assert found >= 0.9 * sum(r.size == (64, 64) for r in near)
    assert len({r.sha256() for r in originals}) == len(originals)        # no accidental duplicates


def test_image_defects_are_true_of_the_pixels(records):
    magenta = np.array(HAZARD_RGB[0])
    for r in records:
        w, h = r.size
        image = r.image()
        hazard = (np.abs(image.astype(int) - magenta).sum(-1) < 80).mean()
        if "low_resolution" in r.defects:
            assert max(w, h) <= 16
        elif "extreme_aspect" in r.defects:
            assert max(w, h) >= 3 * min(w, h)
        else:
            assert (w, h) == (64, 64)
        assert (hazard > 0.03) == ("unsafe" in r.defects), r.key
        if "text_overlay" in r.defects and r.source is None and r.format == "png":  # letters darken the scene
            darker = render(r.scene, 64).astype(int) - image.astype(int)
            assert (darker.max(-1) > 40).sum() > 50 and (darker.min(-1) < -40).sum() == 0, r.key
    assert {r.format for r in records} == {"png", "jpeg"}


def test_alt_text_labels_are_true(records):
    for r in records:
        true = {caption(r.scene, template=k) for k in range(CAPTION_TEMPLATES)}
        if "wrong_text" in r.defects:
            assert r.alt_text not in true and r.alt_text.endswith(".")
        elif "generic_text" in r.defects:
            assert not any(w in r.alt_text for w in ("circle", "square", "triangle", "diamond"))
        elif "partial_text" in r.defects:               # one of the scene's objects, and only one
            named = [o for o in r.scene.objects if f"{o.color} {o.shape}" in r.alt_text]
            assert len(named) == 1 and r.alt_text.count(" and ") == 0, r.alt_text
            assert len(r.scene.objects) >= 2 and r.alt_text not in true
        else:
            assert r.alt_text in true
        assert r.true_caption == caption(r.scene)
    generic = {r.alt_text for r in records if "generic_text" in r.defects}
    assert "" in generic and len(generic) > len(GENERIC_ALT_TEXTS)
    assert not any(o.color == "red" and o.shape == "triangle" for r in records for o in r.scene.objects)
