"""Tests for utils/shards.py: crawl records written as Parquet shards stream back in order, byte-exact images, and
split across two ranks without overlap."""
from __future__ import annotations

import numpy as np
import pytest

from utils import shards
from utils.world.crawl import Crawl


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    records = Crawl(seed=0).records(120)
    rows = [{"key": r.key, "image": r.data, "text": r.alt_text} for r in records]
    folder = tmp_path_factory.mktemp("shards")
    return records, folder, shards.write_shards(rows, folder, rows_per_shard=30)


def test_shards_stream_back_in_order_with_the_same_images(written):
    records, folder, paths = written
    assert [p.name for p in paths] == [f"shard-{i:05d}.parquet" for i in range(4)]
    rows = list(shards.stream_shards(folder))
    assert [r["key"] for r in rows] == [r.key for r in records]
    assert [r["text"] for r in rows] == [r.alt_text for r in records]
    for row, record in zip(rows[::7], records[::7]):
        assert np.array_equal(np.asarray(row["image"].convert("RGB")), record.image())


def test_each_rank_streams_its_own_whole_shards(written):
    records, folder, _ = written
    parts = [[r["key"] for r in shards.stream_shards(folder, rank, 2)] for rank in range(2)]
    assert not set(parts[0]) & set(parts[1]) and sorted(parts[0] + parts[1]) == sorted(r.key for r in records)
    assert len(parts[0]) == len(parts[1]) == 60


def test_an_empty_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no shard"):
        shards.stream_shards(tmp_path)
