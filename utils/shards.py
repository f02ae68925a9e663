"""Shards: a curated dataset written as Parquet files and read back as a stream (Phase 8).

At scale a dataset is never one file and never fits in memory: it is a folder of shards — WebDataset tar files or
Parquet files of a few hundred megabytes each — that training streams, each data-parallel worker reading its own
shards. The course writes Parquet with ``datasets`` (``Dataset.to_parquet``; the image column keeps the encoded
bytes, decoded only when read) and streams it back with ``load_dataset("parquet", ..., streaming=True)``;
``datasets.distributed.split_dataset_by_node`` gives each rank its part, whole shards when the shard count divides
by the number of ranks.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

SHARD_PATTERN = "shard-{:05d}.parquet"


def write_shards(rows: Sequence[dict], out: str | Path, rows_per_shard: int) -> list[Path]:
    """Write ``rows`` — dicts with ``key`` (str), ``image`` (encoded bytes: PNG or JPEG) and ``text`` (str) — as
    Parquet shards of ``rows_per_shard`` rows in ``out``, in order; returns the shard paths."""
    from datasets import Dataset, Features, Image, Value

    features = Features({"key": Value("string"), "image": Image(), "text": Value("string")})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, start in enumerate(range(0, len(rows), rows_per_shard)):
        part = rows[start:start + rows_per_shard]
        table = {"key": [r["key"] for r in part], "image": [{"bytes": r["image"], "path": None} for r in part],
                 "text": [r["text"] for r in part]}
        path = out / SHARD_PATTERN.format(n)
        Dataset.from_dict(table, features=features).to_parquet(str(path))
        paths.append(path)
    return paths


def stream_shards(folder: str | Path, rank: int = 0, world_size: int = 1):
    """The shards of ``folder`` as a streaming ``datasets.IterableDataset`` (rows in shard order, images decoded to
    PIL when read); with ``world_size`` > 1, only rank ``rank``'s part."""
    from datasets import load_dataset
    from datasets.distributed import split_dataset_by_node

    files = sorted(str(p) for p in Path(folder).glob("shard-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no shard-*.parquet files in {folder}")
    stream = load_dataset("parquet", data_files=files, split="train", streaming=True)
    return split_dataset_by_node(stream, rank=rank, world_size=world_size) if world_size > 1 else stream
