"""pytest plugin (``-p tests.budgets``): time and peak memory of every solution notebook under nbval.

A background thread samples the memory of pytest's child processes (the notebook kernel and whatever it starts,
such as Phase 8's torchrun workers) while each notebook's cells run. At the end it prints a table, writes
``build/budgets.json``, and fails the run when a notebook went over its budget: 180 s of wall time or 3 GB of peak
memory on the course's 2-core CPU.

Memory is the sum of the processes' *proportional set size* (PSS: each shared page divided among the processes
that map it), where the system reports it (Linux), else their resident set size (RSS). Summed RSS counts the pages
of shared libraries once per process: every process that imports this torch maps about 0.7 GB of RSS, most of it
the same library pages, so a notebook that starts torchrun with 2 workers measured 4.45 GB of summed RSS while its
processes together occupied about 3 GB (measured for the launch alone: 3.28 GB summed RSS, 1.81 GB PSS). For a
single kernel the two agree to within the pages it shares with other processes.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import psutil
import pytest

MAX_SECONDS = float(os.environ.get("COURSE_MAX_NOTEBOOK_SECONDS", 180))
MAX_MEMORY_BYTES = float(os.environ.get("COURSE_MAX_NOTEBOOK_GB", 3)) * 1024**3
_stats: dict[str, dict[str, float]] = {}
_current: list[str] = []


def process_memory(process: psutil.Process) -> int:
    """Bytes of memory ``process`` occupies: its PSS where the system reports it (Linux), else its RSS."""
    try:
        return process.memory_full_info().pss
    except (AttributeError, psutil.AccessDenied):
        return process.memory_info().rss


def _sample(stop: threading.Event) -> None:
    me = psutil.Process()
    while not stop.wait(0.2):
        current = list(_current)  # a snapshot: the main thread clears _current when a notebook ends
        if not current:
            continue
        used = 0
        for child in me.children(recursive=True):
            try:
                used += process_memory(child)
            except psutil.Error:
                pass
        entry = _stats[current[0]]
        entry["peak_memory"] = max(entry["peak_memory"], used)


_stop = threading.Event()


_guard: dict[str, str] = {}


def pytest_configure(config) -> None:
    """The guard against results that hold in one arithmetic only: unless the caller chose a kernel level
    (``ATEN_CPU_CAPABILITY``), the notebook kernels started from here compute one level below this machine's
    best (AVX2 on an AVX-512 CPU), i.e. as another processor would: no extra run, only slower kernels (Phases 2-4
    took 10-45 s longer each than at the best kernels here, inside the 180 s budget). ``make sweep`` covers
    seeds and thread counts as well; this keeps a single-arithmetic recipe from passing CI unnoticed."""
    if "ATEN_CPU_CAPABILITY" in os.environ or os.environ.get("COURSE_KERNEL_GUARD", "1") == "0":
        return
    from utils.env import KERNEL_LEVELS, level_below_best

    level = level_below_best()
    if level is not None:
        os.environ.update(KERNEL_LEVELS[level])
        _guard["level"] = level


def pytest_sessionstart(session) -> None:
    threading.Thread(target=_sample, args=(_stop,), daemon=True).start()


def _notebook(item) -> str | None:
    path = str(item.path)
    return path if path.endswith(".ipynb") else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    nb = _notebook(item)
    if nb:
        _stats.setdefault(nb, {"seconds": 0.0, "peak_memory": 0})
        _current[:] = [nb]
        start = time.perf_counter()
    yield
    if nb:
        _stats[nb]["seconds"] += time.perf_counter() - start
        _current.clear()


def over_budget(stats: dict[str, dict[str, float]]) -> list[str]:
    """Notebooks over the time or memory budget, with the reason."""
    bad = []
    for nb, s in stats.items():
        if s["seconds"] > MAX_SECONDS:
            bad.append(f"{Path(nb).name}: {s['seconds']:.0f} s > {MAX_SECONDS:.0f} s")
        if s["peak_memory"] > MAX_MEMORY_BYTES:
            bad.append(f"{Path(nb).name}: peak memory {s['peak_memory'] / 1e9:.2f} GB > "
                       f"{MAX_MEMORY_BYTES / 1e9:.2f} GB")
    return bad


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    _stop.set()
    if not _stats:
        return
    tr = terminalreporter
    tr.section(f"notebook budgets (limit {MAX_SECONDS:.0f} s, {MAX_MEMORY_BYTES / 1e9:.2f} GB = "
               f"{MAX_MEMORY_BYTES / 1024**3:.1f} GiB peak memory, PSS)")
    if _guard:
        tr.write_line(f"notebook kernels computed at CPU kernel level {_guard['level']} "
                      "(one below this machine's best)")
    for nb, s in sorted(_stats.items()):
        tr.write_line(f"{Path(nb).name:<32} {s['seconds']:6.1f} s   peak memory {s['peak_memory'] / 1e9:5.2f} GB")
    out = Path(config.rootpath) / "build" / "budgets.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({Path(k).name: v for k, v in sorted(_stats.items())}, indent=1) + "\n")
    bad = over_budget(_stats)
    for line in bad:
        tr.write_line(f"OVER BUDGET: {line}", red=True)


def pytest_sessionfinish(session, exitstatus) -> None:
    # terminal_summary runs after sessionfinish; check here as well so the exit status reflects budgets.
    if over_budget(_stats):
        session.exitstatus = 1
