"""Data-parallel training with ``torch.distributed``: DistributedDataParallel on CPU processes (Phase 8).

The script the course runs is the one people run at scale; only the launch arguments change. ``torchrun`` starts
one process per worker (here 2 CPU processes; on a GPU node one per GPU; across nodes the same with
``--nnodes``). Each process:

1. joins the process group (``gloo`` on CPUs, ``nccl`` on GPUs);
2. builds the same seeded model and wraps it in ``DistributedDataParallel``;
3. reads its own share of every epoch through a ``DistributedSampler`` (rank r takes every world_size-th index of
   one shared permutation);
4. after ``backward()``, DDP has averaged the gradients of all processes (an all-reduce), so every process holds
   the gradient of the *global* batch and takes the same optimizer step.

Rank 0 then checks point 4 directly — one process computing the global batch of world_size × B examples gives the
same gradients, to float tolerance — and times a few training steps. :func:`launch` starts the whole thing from
Python (a notebook cell, a test) on a free port, with a timeout, and leaves no process behind::

    from utils import distributed
    result = distributed.launch(nproc=2)      # {"grads_equal": True, "max_abs_diff": ..., "samples_per_second": ...}

or from a shell: ``torchrun --nproc_per_node 2 -m utils.distributed --out build/ddp.json``.

``launch(mode="fsdp")`` runs :func:`fsdp_worker` instead: the same model sharded with FSDP2's ``fully_shard``
(ZeRO stage 3: every rank holds only its slice of each weight, gathered for the forward and backward passes), with
the same gradient check against one process on the global batch.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from .env import REPO_ROOT
from .vision import small_cnn
from .world import World

N_EXAMPLES = 2048  # single-object world images (32 px), colour × shape labels


def dataset(n: int = N_EXAMPLES) -> torch.utils.data.TensorDataset:
    """Single-object world images (float, [0, 1], 32 px) with their colour × shape class ids."""
    images, labels, _ = World(seed=0, image_size=32).single_object_split("train", n)
    return torch.utils.data.TensorDataset(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255,
                                          torch.from_numpy(labels))


def shard_indices(order: Sequence[int], rank: int, world_size: int) -> list[int]:
    """``rank``'s share of a dataset visited in ``order`` (already shuffled, or not), as ``DistributedSampler``
    deals it: the order padded to a multiple of ``world_size`` by repeating its first indices, then every
    ``world_size``-th index from position ``rank``. Every rank gets the same number — so that no rank waits for a
    gradient the others never send — and together they cover every index."""
    order = list(order)
    total = -(-len(order) // world_size) * world_size
    padded = order + (order * (total // max(len(order), 1) + 1))[:total - len(order)]
    return padded[rank:total:world_size]


def first_batch_indices(n: int, world_size: int, rank: int, batch_size: int, seed: int) -> list[int]:
    """The indices of ``rank``'s first batch of epoch 0, exactly as its ``DistributedSampler`` gives them."""
    sampler = torch.utils.data.DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True,
                                                  seed=seed, drop_last=True)
    sampler.set_epoch(0)
    return list(sampler)[:batch_size]


def gradients(model: torch.nn.Module) -> torch.Tensor:
    """All parameter gradients of ``model`` as one flat vector."""
    return torch.cat([p.grad.flatten() for p in model.parameters()])


# How long a worker waits on the others (rendezvous, collectives) before it gives up: gloo's default is 30 minutes.
WORKER_TIMEOUT = datetime.timedelta(seconds=120)


def worker(out: str, batch_size: int = 32, steps: int = 30, seed: int = 0) -> None:
    """One torchrun process: DDP gradient check (rank 0 against one process on the global batch) and a timed run."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)                         # one core per process: the processes *are* the parallelism
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, timeout=WORKER_TIMEOUT)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if backend == "nccl" else torch.device("cpu")
    data = dataset()

    def fresh_model() -> torch.nn.Module:
        torch.manual_seed(seed)                      # the same initial weights in every process
        return small_cnn(24).to(device)

    model = DistributedDataParallel(fresh_model())
    sampler = torch.utils.data.DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                                  drop_last=True)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, sampler=sampler, drop_last=True)

    # 1. one step's gradients: DDP's all-reduced gradient against one process on the global batch
    sampler.set_epoch(0)
    x, y = next(iter(loader))
    F.cross_entropy(model(x.to(device)), y.to(device)).backward()
    ddp_grad = gradients(model.module).cpu()
    result = {"backend": backend, "world_size": world_size, "batch_per_process": batch_size}
    if rank == 0:
        single = fresh_model()
        rows = [i for r in range(world_size) for i in first_batch_indices(len(data), world_size, r, batch_size, seed)]
        xs, ys = data[rows]
        F.cross_entropy(single(xs.to(device)), ys.to(device)).backward()
        diff = (gradients(single).cpu() - ddp_grad).abs().max().item()
        result.update(max_abs_diff=diff, grad_scale=ddp_grad.abs().max().item(),
                      grads_equal=bool(torch.allclose(gradients(single).cpu(), ddp_grad, atol=1e-6, rtol=1e-5)))

    # 2. a timed run: every process steps on its own shard; the gradients are averaged at every backward
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.zero_grad()
    losses, step, epoch = [], 0, 0
    dist.barrier()
    start = time.perf_counter()
    while step < steps:
        sampler.set_epoch(epoch)
        for x, y in loader:
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
            if step == steps:
                break
        epoch += 1
    dist.barrier()
    seconds = time.perf_counter() - start
    same = torch.tensor([p.detach().sum().item() for p in model.module.parameters()])
    gathered = [torch.zeros_like(same) for _ in range(world_size)]
    dist.all_gather(gathered, same)                  # the replicas never drift apart
    if rank == 0:
        result.update(steps=steps, seconds=round(seconds, 3),
                      samples_per_second=round(steps * batch_size * world_size / seconds, 1),
                      first_loss=round(losses[0], 4), last_loss=round(sum(losses[-5:]) / 5, 4),
                      replicas_identical=all(torch.equal(g, gathered[0]) for g in gathered))
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
    dist.barrier()                                   # nobody leaves while another still talks
    del model, optimizer, loader                     # DDP's reducer holds buffers the process group works on
    dist.destroy_process_group()


def fsdp_worker(out: str, batch_size: int = 32, seed: int = 0) -> None:
    """One torchrun process of the FSDP check: the small CNN sharded with ``fully_shard`` (each conv and linear layer,
    then the whole model) over a CPU device mesh; one step on this rank's share of the global batch; rank 0 compares
    the full gradients (gathered from the shards) with one process on the global batch and reports how many weights
    each rank holds."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=WORKER_TIMEOUT)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world_size,))
    data = dataset()

    def fresh_model() -> torch.nn.Module:
        torch.manual_seed(seed)
        return small_cnn(24)

    model = fresh_model()
    total = sum(p.numel() for p in model.parameters())
    for layer in model.modules():
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    rows = [i for r in range(world_size) for i in first_batch_indices(len(data), world_size, r, batch_size, seed)]
    x, y = data[rows[rank * batch_size:(rank + 1) * batch_size]]
    F.cross_entropy(model(x), y).backward()
    held = torch.tensor([sum(p.to_local().numel() for p in model.parameters())])
    counts = [torch.zeros_like(held) for _ in range(world_size)]
    dist.all_gather(counts, held)
    full = torch.cat([p.grad.full_tensor().flatten() for p in model.parameters()])   # gathered from every rank
    if rank == 0:
        single = fresh_model()
        xs, ys = data[rows]
        F.cross_entropy(single(xs), ys).backward()
        diff = (gradients(single) - full).abs().max().item()
        Path(out).write_text(json.dumps({
            "world_size": world_size, "parameters": total, "held_per_rank": [int(c) for c in counts],
            "parameter_type": type(next(model.parameters())).__name__, "max_abs_diff": diff,
            "grads_equal": bool(torch.allclose(gradients(single), full, atol=1e-6, rtol=1e-5))}, indent=1) + "\n")
    dist.barrier()
    del model
    dist.destroy_process_group()


def kill_launch(process: subprocess.Popen, marker: str) -> None:
    """Kill a torchrun launch and every worker it started. torchrun gives each worker a session of its own, so
    killing torchrun's process group misses them: orphaned, a worker would wait on its dead rendezvous and keep the
    launch's output pipe open (a reader blocks until the worker gives up, half an hour or more). So: stop torchrun
    (it spawns nothing more), kill its descendants, kill its group, then any process still carrying ``marker`` (the
    launch's unique output path) in its command line."""
    import psutil

    try:
        agent = psutil.Process(process.pid)
        agent.suspend()
        tree = agent.children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    for p in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for p in psutil.process_iter(["cmdline"]):
        if marker in " ".join(p.info["cmdline"] or []) and p.pid != os.getpid():
            tree.append(p)
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
    psutil.wait_procs(tree, timeout=10)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether ``port`` on 127.0.0.1 can be bound (torchrun's rendezvous store would listen there)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def launch(nproc: int = 2, batch_size: int = 32, steps: int = 30, port: int | None = None,
           timeout: float = 180.0, mode: str = "ddp") -> dict:
    """Run :func:`worker` (``mode="ddp"``) or :func:`fsdp_worker` (``mode="fsdp"``) under ``torchrun`` with
    ``nproc`` processes and return rank 0's result.

    ``port`` is the rendezvous port (default: a free one); a taken port is refused with a clear error before
    anything starts. On timeout torchrun and every worker it started are killed (:func:`kill_launch`), so no worker
    outlives the call."""
    if port is not None and not port_is_free(port):
        raise RuntimeError(f"port {port} on 127.0.0.1 is taken (another torchrun, a notebook server?): pass another "
                           "port, or none to pick a free one")
    port = port or free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={nproc}",
               "--master_addr=127.0.0.1", f"--master_port={port}", "-m", "utils.distributed", "--out", str(out),
               "--batch-size", str(batch_size), "--steps", str(steps), "--mode", mode]
        # TMPDIR: torchrun's own log folders (torchelastic_*) go inside this launch's folder and leave with it
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT), "TMPDIR": tmp}
        process = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, start_new_session=True)
        try:
            log, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_launch(process, str(out))
            process.communicate(timeout=30)
            raise RuntimeError(f"torchrun did not finish in {timeout:.0f} s; its processes were killed") from None
        if process.returncode != 0 or not out.exists():
            raise RuntimeError(f"torchrun failed (exit {process.returncode}):\n{log[-3000:]}")
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where rank 0 writes its JSON result")
    parser.add_argument("--batch-size", type=int, default=32, help="examples per process per step")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=("ddp", "fsdp"), default="ddp")
    args = parser.parse_args(argv)
    if args.mode == "fsdp":
        fsdp_worker(args.out, args.batch_size, args.seed)
    else:
        worker(args.out, args.batch_size, args.steps, args.seed)


if __name__ == "__main__":
    main()
    # Leave without the interpreter's teardown: gloo's worker threads can still hold tensors then, and a rank
    # aborting there ("terminate called without an active exception", SIGABRT) fails the whole launch after its
    # work is done — seen once in a full test run here; PyTorch discusses it in pytorch/pytorch#179291.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
