"""Tests for utils/curation.py: the average hash against imagehash, Hamming distances, keep-the-first
deduplication, precision and recall, and exact dedup on the crawl (which must find every exact duplicate)."""
from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image

from utils import curation as cu
from utils.world.crawl import Crawl


@pytest.fixture(scope="module")
def records():
    return Crawl(seed=0).records(400)


def test_average_hash_has_imagehash_bits(records):
    for r in records[:120]:
        image = r.image()
        want = imagehash.average_hash(Image.fromarray(image)).hash.flatten()
        assert np.array_equal(cu.average_hash(image), want), r.key
        assert np.array_equal(cu.average_hash(Image.fromarray(image), 4),
                              imagehash.average_hash(Image.fromarray(image), 4).hash.flatten())


def test_hamming_matrix_counts_differing_bits():
    rng = np.random.default_rng(0)
    hashes = rng.random((7, 64)) < 0.5
    d = cu.hamming_matrix(hashes)
    for i in range(7):
        for j in range(7):
            assert d[i, j] == (hashes[i] != hashes[j]).sum()
    h = [imagehash.ImageHash(x.reshape(8, 8)) for x in hashes]
    assert d[2, 5] == h[2] - h[5]                                       # imagehash's `-` is the Hamming distance


def test_first_copies_keeps_the_first_of_each_cluster_and_never_chains_through_a_dropped_one():
    d = np.array([[0, 1, 9, 9],
                  [1, 0, 2, 9],
                  [9, 2, 0, 9],
                  [9, 9, 9, 0]])
    # 1 is within 1 of 0 (dropped); 2 is within 2 of 1 but 1 was dropped and 0 is far: 2 is kept at threshold 2
    assert cu.first_copies(d, 0).tolist() == [True, True, True, True]
    assert cu.first_copies(d, 2).tolist() == [True, False, True, True]
    assert cu.first_copies(d, 9).tolist() == [True, False, False, False]


def test_precision_recall():
    truth = np.array([1, 1, 0, 0, 1], bool)
    assert cu.precision_recall(np.array([1, 0, 1, 0, 0], bool), truth) == (0.5, pytest.approx(1 / 3))
    assert cu.precision_recall(np.zeros(5, bool), truth) == (1.0, 0.0)
    assert cu.precision_recall(truth, np.zeros(5, bool)) == (0.0, 1.0)


def test_exact_dedup_on_the_crawl_is_perfect(records):
    keep = cu.first_of_each([cu.exact_key(r.data) for r in records])
    truth = np.array(["exact_duplicate" in r.defects for r in records])
    assert truth.any() and cu.precision_recall(~keep, truth) == (1.0, 1.0)
    assert cu.exact_key(records[0].data) == records[0].sha256()


def test_near_dedup_on_the_crawl_has_a_usable_threshold():
    """The crawl's design promise (its datasheet): after exact dedup, a 16×16 average hash finds most near-duplicates
    with few false alarms at some threshold, and a looser threshold trades precision for recall."""
    records = Crawl(seed=0).records(1000)
    keep = cu.first_of_each([cu.exact_key(r.data) for r in records])
    rest = [r for r, k in zip(records, keep) if k]
    truth = np.array(["near_duplicate" in r.defects for r in rest])
    distances = cu.hamming_matrix(np.stack([cu.average_hash(r.image(), 16) for r in rest]))
    strict = cu.precision_recall(~cu.first_copies(distances, 8), truth)
    loose = cu.precision_recall(~cu.first_copies(distances, 16), truth)
    assert strict[0] >= 0.85 and strict[1] >= 0.5, strict
    assert loose[1] > strict[1] and loose[0] < strict[0], (strict, loose)


@pytest.fixture(scope="module")
def crawl_1000():
    records = Crawl(seed=0).records(1000)
    return records, [r.image() for r in records]


def truth_of(records, defect: str) -> np.ndarray:
    return np.array([defect in r.defects for r in records])


def test_the_unsafe_stand_in_is_caught_with_recall_one_and_no_false_alarm(crawl_1000):
    records, images = crawl_1000
    flagged = np.array([cu.unsafe_share(im) > 0.02 for im in images])
    assert cu.precision_recall(flagged, truth_of(records, "unsafe")) == (1.0, 1.0)


def test_size_filter_removes_exactly_the_thumbnails_and_banners(crawl_1000):
    records, _ = crawl_1000
    flagged = np.array([not cu.size_ok(r.size) for r in records])
    truth = truth_of(records, "low_resolution") | truth_of(records, "extreme_aspect")
    assert cu.precision_recall(flagged, truth) == (1.0, 1.0)
    assert cu.size_ok((64, 64)) and not cu.size_ok((16, 16)) and not cu.size_ok((96, 32))


def test_overlay_score_finds_burnt_in_text_once_the_unsafe_records_are_gone(crawl_1000):
    from sklearn.metrics import roc_auc_score

    records, images = crawl_1000
    safe = ~truth_of(records, "unsafe")
    scores = np.array([cu.overlay_score(im) for im in images])
    assert roc_auc_score(truth_of(records, "text_overlay")[safe], scores[safe]) > 0.97


def test_clip_score_ranks_bad_alt_text_low_and_the_fraction_kept_is_a_choice(crawl_1000):
    from sklearn.metrics import roc_auc_score

    from utils.clip import load_clip

    records, images = crawl_1000
    model, _, tokenizer = load_clip()
    scores = cu.clip_scores(model, tokenizer, images, [r.alt_text for r in records])
    bad = truth_of(records, "wrong_text") | truth_of(records, "generic_text")
    assert roc_auc_score(bad, -scores) > 0.9
    keep_30 = cu.precision_recall(scores < np.quantile(scores, 0.7), bad)   # DataComp's default: keep the top 30 %
    keep_70 = cu.precision_recall(scores < np.quantile(scores, 0.3), bad)
    assert keep_30[1] == 1.0 and keep_30[0] < 0.5 < keep_70[0]            # on this crawl 30 % throws good data away
