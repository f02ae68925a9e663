"""Tests for utils/distributed.py: torchrun with 2 CPU processes (gloo) — DDP's averaged gradients equal one process's
on the global batch, the replicas stay identical, FSDP2 shards the weights and keeps the gradients, a rank's share is
DistributedSampler's, no process is left behind, a taken port is refused clearly."""
from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import torch

from utils import distributed


def launched_here() -> list[psutil.Process]:
    """This process's descendants that are torchrun or its workers."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if any("torch.distributed.run" in a or "utils.distributed" in a for a in p.cmdline()):
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def torchrun_logs() -> set[Path]:
    """torchrun's log folders in the temporary directory (a launch must keep its own inside its folder)."""
    return set(Path(tempfile.gettempdir()).glob("torchelastic_*"))


def test_ddp_on_two_processes_matches_one_process_on_the_global_batch():
    logs = torchrun_logs()
    result = distributed.launch(nproc=2, steps=10)
    assert torchrun_logs() <= logs, "torchrun left its log folders in the temporary directory"
    assert result["backend"] == "gloo" and result["world_size"] == 2, result
    assert result["grads_equal"] and result["max_abs_diff"] < 1e-6 < result["grad_scale"], result
    assert result["replicas_identical"] and result["samples_per_second"] > 0, result
    assert not launched_here(), "torchrun processes left behind"


def test_fsdp_shards_the_weights_and_keeps_the_gradients():
    """FSDP2's fully_shard on a CPU mesh: each of the 2 ranks holds half the weights (DTensor shards), and the full
    gradients gathered from the shards equal one process's on the global batch."""
    result = distributed.launch(nproc=2, mode="fsdp")
    assert result["parameter_type"] == "DTensor" and sum(result["held_per_rank"]) == result["parameters"], result
    assert max(result["held_per_rank"]) <= result["parameters"] // 2 + 64, result
    assert result["grads_equal"] and result["max_abs_diff"] < 1e-6, result
    assert not launched_here(), "torchrun processes left behind"


def test_shard_indices_deal_like_distributed_sampler():
    order = torch.randperm(11, generator=torch.Generator().manual_seed(0)).tolist()
    for world in (1, 2, 3, 4):
        shares = [distributed.shard_indices(order, r, world) for r in range(world)]
        for r, share in enumerate(shares):
            sampler = torch.utils.data.DistributedSampler(range(11), num_replicas=world, rank=r, shuffle=False)
            assert share == [order[i] for i in sampler]
        assert len({len(s) for s in shares}) == 1 and set().union(*map(set, shares)) == set(order)


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


def workers_started_since(start: float) -> list[psutil.Process]:
    """Worker processes of utils.distributed started after ``start``, wherever they now hang in the process tree
    (torchrun gives each worker its own session: killed torchrun, they would be orphans, not our children)."""
    out = []
    for p in psutil.process_iter(["cmdline", "create_time"]):
        if "utils.distributed" in " ".join(p.info["cmdline"] or []) and p.info["create_time"] >= start - 1:
            out.append(p)
    return out


@pytest.mark.parametrize("timeout", [1.0, 15.0])
def test_a_launch_that_runs_out_of_time_is_killed_whole(timeout):
    """Killed before torchrun spawned its workers (1 s), and while they train (15 s: 100,000 steps would take
    minutes): either way the call returns at once and no worker survives. Before the fix an orphaned worker held the
    output pipe until gloo's 30-minute timeout, and make test sat still for an hour."""
    start = time.time()
    with pytest.raises(RuntimeError, match="did not finish"):
        distributed.launch(nproc=2, steps=100_000, timeout=timeout)
    assert time.time() - start < timeout + 20, "the launch did not return promptly after its timeout"
    assert not launched_here(), "a timed-out torchrun left processes behind"
    assert not workers_started_since(start), "a timed-out torchrun left orphaned workers behind"
