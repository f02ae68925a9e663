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
