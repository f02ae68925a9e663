"""Tests for utils/distributed.py: torchrun with 2 CPU processes (gloo) — DDP's averaged gradients equal one process's
on the global batch, the replicas stay identical, no process is left behind, a taken port is refused clearly."""
from __future__ import annotations

import socket

import psutil
import pytest
import torch

from utils import distributed


def test_ddp_on_two_processes_matches_one_process_on_the_global_batch():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = distributed.launch(nproc=2, steps=10)
    assert result["backend"] == "gloo" and result["world_size"] == 2
    assert result["grads_equal"] and result["max_abs_diff"] < 1e-6 < result["grad_scale"]
    assert result["replicas_identical"] and result["samples_per_second"] > 0
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert not left, f"processes left behind: {left}"


def test_the_samplers_split_one_permutation_without_overlap():
    shards = [distributed.first_batch_indices(100, 2, r, 50, seed=3) for r in range(2)]
    assert not set(shards[0]) & set(shards[1]) and sorted(shards[0] + shards[1]) == list(range(100))
    g = torch.Generator().manual_seed(3)
    assert shards[0] == torch.randperm(100, generator=g).tolist()[0::2]   # DistributedSampler's own rule


def test_a_taken_port_is_refused_before_anything_starts():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(RuntimeError, match="port .* is taken"):
            distributed.launch(nproc=2, port=s.getsockname()[1])
    assert distributed.port_is_free(distributed.free_port())
