"""Readable training helpers: one step, a step-bounded loop, accuracy. Introduced in Phase 0.

``train_step`` is the reference for Exercise 0.1. Loops are bounded by a number of steps, never by time,
so a notebook gives the same numbers on every machine; progress bars stay silent under CI.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .env import is_ci


def adamw_one_cycle(params, lr: float, steps: int, weight_decay: float = 0.01
                    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW over the parameters that require gradients, with a one-cycle schedule peaking at ``lr``: 10 %
    warm-up (at least 2 steps, so very short smoke-test runs keep a valid schedule), then annealing."""
    optimizer = torch.optim.AdamW([p for p in params if p.requires_grad], lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps,
                                                   pct_start=max(0.1, 2 / steps))
    return optimizer, schedule


def update(loss: torch.Tensor, optimizer: torch.optim.Optimizer, schedule, max_grad_norm: float | None = None,
           params=None) -> float:
    """One optimisation step on ``loss`` (zero grads, backward, step, advance the schedule); returns its value.
    With ``max_grad_norm``, the gradients of ``params`` (default: the optimizer's) are first clipped to that total
    norm (``torch.nn.utils.clip_grad_norm_``)."""
    optimizer.zero_grad()
    loss.backward()
    if max_grad_norm is not None:
        if params is None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    schedule.step()
    return loss.item()


def train_step(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
               optimizer: torch.optim.Optimizer) -> float:
    """One step of supervised classification: forward, cross-entropy, backward, update. Returns the loss.

    ``inputs`` and ``targets`` must already be on the model's device.
    """
    model.train()
    optimizer.zero_grad()
    loss = F.cross_entropy(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss.item()


@dataclass
class History:
    """Losses recorded during training, with the step of each."""

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    def add(self, step: int, loss: float) -> None:
        self.steps.append(step)
        self.losses.append(loss)

    def smoothed(self, window: int = 20) -> list[float]:
        """Running mean of the losses over ``window`` steps (for readable curves)."""
        out, acc = [], 0.0
        for i, loss in enumerate(self.losses):
            acc += loss
            if i >= window:
                acc -= self.losses[i - window]
            out.append(acc / min(i + 1, window))
        return out


def median_seconds(fn: Callable[[], object], repeats: int = 3, warmup: int = 0) -> float:
    """Median wall time in seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed calls (the first
    call of a model often pays for memory allocation). The one timer of the course's speed tables."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(statistics.median(times))


def progress(iterable, total: int | None = None, desc: str = "", **kwargs):
    """tqdm progress bar (a widget in Jupyter), switched off under CI for clean logs."""
    disable = kwargs.pop("disable", False)
    return tqdm(iterable, total=total, desc=desc, disable=is_ci() or disable, leave=False, **kwargs)


def infinite_batches(tensors: tuple[torch.Tensor, ...], batch_size: int,
                     generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, ...]]:
    """Endless shuffled mini-batches from in-memory tensors that share their first dimension."""
    n = tensors[0].shape[0]
    if n < batch_size:
        raise ValueError(f"batch_size={batch_size} is larger than the {n} examples available")
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1, batch_size):
            idx = perm[i:i + batch_size]
            yield tuple(t[idx] for t in tensors)


def train(step_fn: Callable[[tuple[torch.Tensor, ...]], float], batches: Iterator[tuple[torch.Tensor, ...]],
          steps: int, desc: str = "training", on_step: Callable[[int], None] | None = None,
          report: bool = True) -> History:
    """Run ``step_fn`` on ``steps`` batches; returns the loss history. Step-bounded, never time-bounded.
    ``on_step(n)``, if given, runs after each step with n = the number of steps done (for evaluation curves).

    With ``report`` (the default) a last line says that it finished — steps, seconds, final loss — so a saved or
    headless-executed notebook shows a finished run, not the progress bar's frozen first frame."""
    history = History()
    start = time.perf_counter()
    bar = progress(range(steps), total=steps, desc=desc)
    for step in bar:
        loss = step_fn(next(batches))
        history.add(step, loss)
        if step % 25 == 0:
            bar.set_postfix(loss=f"{loss:.3f}")
        if on_step is not None:
            on_step(step + 1)
    if report and steps:
        window = min(20, steps)
        print(f"{desc}: {steps:,} steps done in {time.perf_counter() - start:.1f} s, "
              f"loss {history.smoothed(window)[-1]:.3f} (mean of the last {window})")
    return history


@torch.no_grad()
def accuracy(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy of a classifier over in-memory tensors (moved, batch by batch, to the model's device)."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(inputs), batch_size):
        logits = model(inputs[i:i + batch_size].to(device))
        correct += (logits.argmax(-1).cpu() == targets[i:i + batch_size].cpu()).sum().item()
    return correct / len(inputs)
