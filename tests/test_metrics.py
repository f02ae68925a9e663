"""Tests for utils/metrics.py: Recall@K (and in blocks), per-kind accuracy, box IoU against torchvision, the table."""
from __future__ import annotations

import pytest
import torch
from torchvision.ops import box_iou as tv_iou

from utils import metrics


def test_recall_at_k():
    q = torch.eye(4)
    assert metrics.recall_at_k(q, q) == 1.0
    assert metrics.recall_at_k(q, q.flip(0)) == 0.0
    assert metrics.recall_at_k(q, q.flip(0), k=4) == 1.0


def test_recall_in_blocks_searches_each_block_alone():
    q = torch.eye(4).repeat(2, 1)  # rows 4..7 repeat rows 0..3: across blocks they would collide
    assert metrics.recall_in_blocks(q, q, block=4) == 1.0
    assert metrics.recall_at_k(q, q) < 1.0  # one block of 8: duplicate keys tie, half the queries miss


def test_per_kind_accuracy():
    assert metrics.per_kind_accuracy([True, False, True], ["color", "color", "count"]) == {
        "color": 0.5, "count": 1.0, "all": 2 / 3}
    assert metrics.per_kind_accuracy([True, False], ["a", "b"], order=["b"]) == {"b": 0.0, "all": 0.5}


def test_box_iou_matches_torchvision():
    for a, b in [((0, 0, 10, 10), (5, 5, 15, 15)), ((0, 0, 4, 4), (10, 10, 12, 12)), ((1, 2, 9, 7), (1, 2, 9, 7)),
                 ((0, 0, 10, 10), (2, 2, 4, 4))]:
        expected = tv_iou(torch.tensor([a], dtype=torch.float), torch.tensor([b], dtype=torch.float)).item()
        assert metrics.box_iou(a, b) == pytest.approx(expected)
    assert metrics.box_iou((1, 1, 1, 1), (1, 1, 1, 1)) == 0.0  # empty union


def test_accuracy_table():
    table = metrics.accuracy_table({"a": {"x": 0.5, "n": 1234}}, ["x", "n"])
    assert "0.500" in table and "1,234" in table
    lines = metrics.accuracy_table({"a": {"x": 0.5}, "a longer name": {"x": 150.4, "n": 2}}, ["x", "n"]).splitlines()
    assert lines[1].split() == ["a", "0.500", "—"] and lines[2].split()[-2:] == ["150", "2"]
    assert len({len(line) for line in lines}) == 1  # columns line up


def test_word_error_rate_matches_jiwer():
    import random

    import jiwer

    rng = random.Random(0)
    vocab = "a b c d e".split()
    for _ in range(300):
        refs = [" ".join(rng.choices(vocab, k=rng.randint(1, 7))) for _ in range(3)]
        hyps = [" ".join(rng.choices(vocab, k=rng.randint(0, 7))) for _ in range(3)]
        assert metrics.word_error_rate(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps))
    assert metrics.word_edits("a b c", "a x b c") == 1
    assert metrics.word_error_rate(["a"], ["x y z"]) == 3.0
    with pytest.raises(ValueError):
        metrics.word_error_rate(["a"], [])


def test_psnr_of_a_known_error():
    import math

    x = torch.zeros(2, 3, 8, 8)
    assert metrics.psnr(x, x + 0.1) == pytest.approx(10 * math.log10(4 / 0.1 ** 2), abs=1e-3)  # range 2: [-1, 1]
    on_unit = metrics.psnr(x / 2 + 0.5, x / 2 + 0.55, data_range=1.0, low=0.0)  # the same images on [0, 1]
    assert metrics.psnr(x, x + 0.1) == pytest.approx(on_unit, abs=1e-3)
    assert metrics.psnr(x, x + 5) == pytest.approx(10 * math.log10(4 / 1.0), abs=1e-3)  # clamped to the range first


def test_bootstrap_ci_brackets_the_mean_shrinks_with_data_and_covers():
    import numpy as np
    from scipy.stats import bootstrap

    rng = np.random.default_rng(0)
    small, large = rng.random(50) < 0.7, rng.random(5000) < 0.7
    mean, low, high = metrics.bootstrap_ci(small)
    assert low < mean < high and mean == small.mean()
    _, low_l, high_l = metrics.bootstrap_ci(large)
    assert (high_l - low_l) < (high - low) / 5          # ~1/sqrt(n): 10x the width for 100x less data
    ref = bootstrap((small.astype(float),), np.mean, n_resamples=20000, method="percentile", random_state=1)
    assert low == pytest.approx(ref.confidence_interval.low, abs=0.02)
    assert high == pytest.approx(ref.confidence_interval.high, abs=0.02)
    covered = 0
    for seed in range(200):                              # a 95 % interval covers the true 0.7 about 95 % of the time
        sample = np.random.default_rng(100 + seed).random(200) < 0.7
        _, lo, hi = metrics.bootstrap_ci(sample, resamples=500, seed=seed)
        covered += lo <= 0.7 <= hi
    assert 0.88 <= covered / 200 <= 0.99


def test_paired_bootstrap_sees_a_small_consistent_gain_that_unpaired_intervals_miss():
    import numpy as np

    rng = np.random.default_rng(1)
    hard = rng.random(400) < 0.5                         # both models get the same easy items right
    a, b = hard.copy(), hard.copy()
    a[rng.choice(np.flatnonzero(~hard), 16, replace=False)] = True   # a also gets 16 more
    paired = metrics.paired_bootstrap(a, b)
    assert paired["difference"] == pytest.approx(16 / 400) and paired["low"] > 0 and paired["p_not_better"] < 0.01
    _, _, high_b = metrics.bootstrap_ci(b)
    _, low_a, _ = metrics.bootstrap_ci(a)
    assert low_a < high_b                                # the two separate intervals overlap
    tie = metrics.paired_bootstrap(b, b)
    assert tie["difference"] == 0 and tie["p_not_better"] == 1.0


def test_bleu_matches_sacrebleu():
    import sacrebleu

    hyps = ["a small red circle left of a big blue square", "there is a green triangle",
            "two objects : a red square and a blue circle", "a red"]
    refs = ["a small red circle left of a big blue square", "a green triangle is there",
            "two objects : a red square and a blue triangle", "a red one is there"]
    for n in (1, 2, 3, 4):
        want = sacrebleu.corpus_bleu(hyps[:n], [refs[:n]], tokenize="none", smooth_method="none").score
        assert metrics.bleu(hyps[:n], refs[:n]) == pytest.approx(want, abs=1e-9)
    assert metrics.bleu(["red blue"], ["green square"]) == 0.0


def test_yes_no_metrics_match_scikit_learn():
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    rng = np.random.default_rng(2)
    truth = rng.random(300) < 0.5
    said = np.where(rng.random(300) < 0.3, True, truth)             # a model that leans to yes
    m = metrics.yes_no_metrics(said, truth)
    assert m["accuracy"] == pytest.approx(accuracy_score(truth, said))
    assert m["precision"] == pytest.approx(precision_score(truth, said))
    assert m["recall"] == pytest.approx(recall_score(truth, said))
    assert m["f1"] == pytest.approx(f1_score(truth, said))
    assert m["yes_ratio"] == pytest.approx(said.mean()) and m["yes_ratio"] > 0.6
    assert m["hallucination"] == pytest.approx(said[~truth].mean())


def test_cohen_kappa_matches_scikit_learn():
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(3)
    for labels in (2, 3, 5):
        a = rng.integers(0, labels, 200)
        b = np.where(rng.random(200) < 0.6, a, rng.integers(0, labels, 200))
        assert metrics.cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert metrics.cohen_kappa(list("yyn"), list("yyn")) == 1.0


def test_sequence_scores_all_or_nothing_against_per_token():
    import numpy as np

    logprobs = np.log(np.array([[0.9, 0.8, 0.9, 0.7], [0.9, 0.2, 0.9, 0.9], [0.1, 0.1, 0.1, 0.1]]))
    right = logprobs > np.log(0.5)
    exact, mean = metrics.sequence_scores(logprobs, right)
    assert exact == pytest.approx(1 / 3)                 # one wrong token spoils the second answer
    assert mean == pytest.approx(logprobs.mean())        # equal lengths: the mean of rows is the mean of tokens
    assert metrics.sequence_scores(logprobs[:, :1], right[:, :1])[0] == pytest.approx(right[:, 0].mean())
