"""Tests for utils/curation.py: the average hash against imagehash, Hamming distances, keep-the-first
deduplication, precision and recall, and exact dedup on the crawl (which must find every exact duplicate); each
filter against the crawl's truth, the whole pipeline, and recaptions read off the zoo VLM scored against the scene."""
from __future__ import annotations

import imagehash
import numpy as np
import pytest
import torch
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
    partial = truth_of(records, "partial_text")
    full = ~bad & ~partial
    assert roc_auc_score(bad[~partial], -scores[~partial]) > 0.95
    assert roc_auc_score(partial[~bad], -scores[~bad]) > 0.9                  # true but short text scores lower too
    assert np.median(scores[bad]) < np.median(scores[partial]) < np.median(scores[full])

    def kept(share):
        keep = scores >= np.quantile(scores, 1 - share)
        return bad[keep].mean(), (keep & full).sum() / full.sum()

    (bad_30, full_30), (bad_50, full_50) = kept(0.3), kept(0.5)
    assert bad_30 == 0 and full_30 < 0.85                    # DataComp's 30 %: clean, but good captions thrown away
    assert bad_50 > 0 and full_50 > full_30 + 0.1             # keeping more lets wrong text in: a choice on a curve

def test_the_pipeline_runs_its_stages_in_order_and_each_removes_what_it_is_for(crawl_1000):
    from utils.clip import load_clip

    records, images = crawl_1000
    model, _, tokenizer = load_clip()
    scores = cu.clip_scores(model, tokenizer, images, [r.alt_text for r in records])
    kept = cu.run_pipeline(records, images, scores, keep=0.5)
    assert list(kept) == list(cu.STAGES)
    masks = list(kept.values())
    assert all((later <= earlier).all() for earlier, later in zip(masks, masks[1:]))    # stages only remove
    left = {stage: set().union(*(records[i].defects for i in np.flatnonzero(m))) for stage, m in kept.items()}
    assert "exact_duplicate" not in left["exact_dedup"] and "unsafe" not in left["unsafe"]
    assert not {"low_resolution", "extreme_aspect"} & left["size"] and "text_overlay" not in left["overlay"]
    final = kept["clip_score"]
    assert final.sum() == pytest.approx(0.5 * kept["overlay"].sum(), abs=1)
    bad_text = truth_of(records, "wrong_text") | truth_of(records, "generic_text")
    assert bad_text[final].mean() < 0.05 < bad_text.mean()


def test_recaptions_read_off_the_vlm_name_what_is_there(records):
    from utils.clip import normalize_images
    from utils.vlm import ZOO_VLM, TinyVLM

    clean = [r for r in records if not set(r.defects) & {"low_resolution", "extreme_aspect", "unsafe",
                                                         "text_overlay"}][:80]
    vlm = TinyVLM.from_pretrained(ZOO_VLM)
    with torch.no_grad():
        features = vlm.image_features(normalize_images(cu.small_images([r.image() for r in clean])))
        scenes = cu.read_scenes(vlm, features)
    truth = [r.scene for r in clean]
    assert np.mean([sorted(s.labels()) == sorted(t.labels()) for s, t in zip(scenes, truth)]) > 0.9
    captions = cu.describe_scenes(scenes, seed=0)
    quality = cu.caption_scores(captions, truth)
    assert quality["chair_i"] < 0.03 and quality["recall"] > 0.95
    assert quality["exact"] > cu.caption_scores([r.alt_text for r in clean], truth)["exact"] + 0.3
    assert captions == cu.recaption(vlm, features, seed=0)                        # seeded
    assert len({c.split(" a ")[0] for c in captions}) > 3                        # varied sentence patterns
    fixed = cu.describe_scenes(scenes, varied=False)
    assert all(c.startswith("a ") for c in fixed)


def test_caption_scores_count_hallucinated_and_missed_objects():
    from utils.world import Obj, Scene

    scene = Scene((Obj("circle", "red", "small", 0.2, 0.2), Obj("square", "blue", "large", 0.7, 0.7)))
    assert cu.mentioned_objects("A small red circle and a blue square.") == {("small", "red", "circle"),
                                                                             (None, "blue", "square")}
    perfect = cu.caption_scores(["a small red circle and a large blue square."], [scene])
    assert perfect == {"chair_i": 0.0, "chair_s": 0.0, "recall": 1.0, "exact": 1.0}
    half = cu.caption_scores(["a red circle and a green diamond.", "photo"], [scene, scene])
    assert half["chair_i"] == 0.5 and half["chair_s"] == 1.0 and half["recall"] == 0.25 and half["exact"] == 0.0


def test_stage_sampler_follows_its_schedule():
    draw = cu.stage_sampler([(np.arange(10), 2), (np.arange(100, 110), 3)], batch_size=16)
    g = torch.Generator().manual_seed(0)
    batches = [draw(g) for _ in range(7)]
    assert all(b.max() < 10 for b in batches[:2]) and all(b.min() >= 100 for b in batches[2:])


def test_captioning_quality_scores_what_the_vlm_writes_after_a_bare_image_prompt():
    from utils.world import World, caption

    scenes = World(seed=0).scenes("val", 6)

    class Captioner:                          # right about the first three scenes, silent about the rest
        def generate_text(self, features, prompts):
            assert prompts == ["<image>"] * len(features)
            return [caption(s) if i < 3 else "" for i, s in enumerate(scenes)]

    quality = cu.captioning_quality(Captioner(), torch.zeros(6, 16, 8), scenes)
    assert quality["exact"] == 0.5 and quality["chair_i"] == 0.0 and quality["captions"][3] == ""
    assert quality["recall"] == pytest.approx(sum(len(s) for s in scenes[:3]) / sum(len(s) for s in scenes))


def test_caption_recalls_are_per_caption_shares_of_the_scene_named():
    from utils.world import Obj, Scene

    scene = Scene((Obj("circle", "red", "small", 0.2, 0.2), Obj("square", "blue", "large", 0.7, 0.7)))
    one = Scene((Obj("diamond", "green", "small", 0.5, 0.5),))
    recalls = cu.caption_recalls(["a red circle and a green diamond.", "a large blue square, a small red circle",
                                  "nothing here"], [scene, scene, one])
    assert recalls.tolist() == [0.5, 1.0, 0.0]
