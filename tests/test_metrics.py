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
