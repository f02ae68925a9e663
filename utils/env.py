"""Runtime set-up shared by every notebook: seeds, device, fast mode, offline guard, environment check.

Introduced in Phase 0 (the setup cell of each notebook calls :func:`setup`).
"""
from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import random
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

REPO_ROOT = Path(__file__).resolve().parent.parent

# Packages every notebook may use: (import name, distribution name).
REQUIRED_PACKAGES: tuple[tuple[str, str], ...] = (
    ("torch", "torch"),
    ("torchvision", "torchvision"),
    ("torchaudio", "torchaudio"),
    ("transformers", "transformers"),
    ("tokenizers", "tokenizers"),
    ("open_clip", "open_clip_torch"),
    ("jiwer", "jiwer"),
    ("vector_quantize_pytorch", "vector-quantize-pytorch"),
    ("diffusers", "diffusers"),
    ("imagehash", "imagehash"),
    ("datasets", "datasets"),
    ("numpy", "numpy"),
    ("PIL", "pillow"),
    ("sklearn", "scikit-learn"),
    ("soundfile", "soundfile"),
    ("matplotlib", "matplotlib"),
    ("tqdm", "tqdm"),
)

_TRUE = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def is_ci() -> bool:
    """True under continuous integration (the ``CI`` variable that CI services set)."""
    return _flag("CI")


def is_fast() -> bool:
    """Fast mode: notebooks shrink their training runs (set ``COURSE_FAST=1``; used to smoke-run exercises)."""
    return _flag("COURSE_FAST")


def is_offline() -> bool:
    """True when the course must not touch the network: ``COURSE_OFFLINE=1`` (set by ``make test``) or
    ``HF_HUB_OFFLINE=1``. :func:`setup` then blocks every non-loopback connection."""
    return _flag("COURSE_OFFLINE") or _flag("HF_HUB_OFFLINE")


def is_strict() -> bool:
    """Strict checks (``COURSE_STRICT_CHECKS=1``, set by ``make test`` for the solution notebooks): a check
    that does not pass raises instead of falling back to the reference."""
    return _flag("COURSE_STRICT_CHECKS")


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def steps(full: int, fast: int) -> int:
    """Number of training steps: ``full`` normally, ``fast`` in fast mode (keeps runs step-bounded)."""
    return fast if is_fast() else full


def course_seed() -> int:
    """The run's seed shift: ``COURSE_SEED`` (default 0). ``make sweep`` sets it to rerun a notebook with other
    training seeds, standing in for another machine whose arithmetic sends training down another path."""
    value = os.environ.get("COURSE_SEED", "").strip()
    try:
        return int(value) if value else 0
    except ValueError:
        raise ValueError(f"COURSE_SEED must be an integer, got {value!r}") from None


SEED_STRIDE = 1000  # COURSE_SEED=k moves seed n to n + 1000·k: the notebooks' seeds 0, 1, 2 ... never collide


def seed(n: int = 0) -> int:
    """The seed to use for seed ``n`` of a notebook or helper: ``n`` itself, unless ``COURSE_SEED`` shifts it.

    Every training seed in the course goes through here (model initialisation, batch order, sampled examples),
    so one variable moves them all; the shapes world's data does not (same seed, same bytes, on every machine).
    """
    return n + SEED_STRIDE * course_seed()


def generator(n: int = 0) -> "torch.Generator":
    """A ``torch.Generator`` seeded with :func:`seed` ``(n)`` (for batch order and sampling)."""
    import torch

    return torch.Generator().manual_seed(seed(n))


def seed_everything(n: int = 0) -> int:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) so a notebook gives the same numbers every run.

    The seed is :func:`seed` ``(n)``, i.e. shifted by ``COURSE_SEED`` when that is set; returns the seed used."""
    import torch

    used = seed(n)
    random.seed(used)
    np.random.seed(used)
    torch.manual_seed(used)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(used)
    return used


# CPU kernel levels: the environment that caps ATen's vectorised kernels and oneDNN's convolutions at a level.
# "best" leaves both to the machine. Used by `make sweep` and by `make test`'s guard (tests/budgets.py).
KERNEL_LEVELS: dict[str, dict[str, str]] = {
    "best": {},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}


def level_below_best() -> str | None:
    """The kernel level just below this machine's best ("avx2" on an AVX-512 CPU, "default" on an AVX2 one),
    or None when the machine already runs the plain kernels. Computing there is computing as another machine."""
    import torch

    best = torch.backends.cpu.get_cpu_capability().lower()
    return {"avx512": "avx2", "avx2": "default"}.get(best, None if best == "default" else "default")


def get_device(prefer: str | None = None) -> "torch.device":
    """The device to train on: CUDA or Apple MPS when present, else CPU; always CPU under CI.

    ``prefer`` ("cpu", "cuda", "mps") or the ``COURSE_DEVICE`` variable override the choice.
    """
    import torch

    choice = prefer or os.environ.get("COURSE_DEVICE")
    if choice:
        return torch.device(choice)
    if is_ci():
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class NetworkBlockedError(ConnectionError):
    """Raised when code tries to reach the network while the course runs offline."""


_real_connect = socket.socket.connect


def _is_local(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = str(address[0]) if isinstance(address, tuple) and address else ""
    return host in ("localhost", "::1", "0.0.0.0", "") or host.startswith("127.")


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_local(address):
        raise NetworkBlockedError(
            f"Network access to {address!r} is blocked: the course runs offline here "
            "(COURSE_OFFLINE=1). Use the local model zoo in data/models/, or unset COURSE_OFFLINE "
            "on a machine with internet to load hub checkpoints."
        )
    _real_connect(self, address)


def block_network() -> None:
    """Make every non-loopback socket connection fail at once with :class:`NetworkBlockedError`.

    Also puts the Hugging Face libraries in offline mode, so they fail fast with their own message
    instead of retrying. Called by :func:`setup` when ``COURSE_OFFLINE=1`` (``make test`` sets it).
    """
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[var] = "1"
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None:  # already imported: it read the variable at import time
        hub_constants.HF_HUB_OFFLINE = True
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]


def allow_network() -> None:
    """Undo :func:`block_network` (the offline variables stay as they are)."""
    socket.socket.connect = _real_connect  # type: ignore[method-assign]


@dataclass
class PackageStatus:
    """One line of the environment check."""

    name: str
    ok: bool
    detail: str


def package_status(import_name: str, dist_name: str) -> PackageStatus:
    """Try to import one package; report its version or the error."""
    try:
        importlib.import_module(import_name)
        version = importlib.metadata.version(dist_name)
        return PackageStatus(dist_name, True, version)
    except Exception as exc:  # noqa: BLE001 - any import failure is a [FAIL] line
        return PackageStatus(dist_name, False, f"{type(exc).__name__}: {exc}".splitlines()[0][:160])


def check_environment(strict: bool = False, packages=REQUIRED_PACKAGES, verbose: bool = True) -> bool:
    """Print one ``[OK]``/``[FAIL]`` line per required package, then Python and device.

    On a failure it says how to fix it. ``strict=True`` raises ``RuntimeError`` instead of returning False.
    """
    statuses = [package_status(i, d) for i, d in packages]
    ok = all(s.ok for s in statuses)
    if verbose:
        for s in statuses:
            print(f"[{'OK' if s.ok else 'FAIL'}] {s.name:<16} {s.detail}")
        print(f"[OK] python           {platform.python_version()}")
        if any(s.name == "torch" and s.ok for s in statuses):
            print(f"[OK] device           {get_device()}")
    if not ok:
        bad = ", ".join(s.name for s in statuses if not s.ok)
        fix = (
            "In Colab: re-run the setup cell. Locally: run `make setup` (or `make lab`) from the course "
            "folder, then restart the kernel and pick the .venv kernel. With conda: "
            "`conda env update -f environment.yml`."
        )
        message = f"Missing or broken packages: {bad}. {fix}"
        if strict:
            raise RuntimeError(message)
        if verbose:
            print(message)
    return ok


def quiet_libraries() -> None:
    """Silence library chatter that teaches nothing (Hugging Face save/load progress bars, advisories)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # transformers is optional for utils itself
        pass
    try:
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()  # e.g. "Guiders are currently an experimental feature"
    except ImportError:
        pass
    try:
        import datasets

        datasets.disable_progress_bars()  # "Creating parquet from Arrow format" for every shard
    except ImportError:
        pass


def setup(seed: int = 0, check: bool = True) -> "torch.device":
    """What every notebook's setup cell does: offline guard (when asked), seeds, env check, device.

    Returns the device to use.
    """
    if is_offline():
        block_network()
    quiet_libraries()
    used = seed_everything(seed)
    if check:
        check_environment()
    mode = "fast mode (COURSE_FAST=1)" if is_fast() else "full mode"
    shifted = f" (shifted by COURSE_SEED={course_seed()})" if course_seed() else ""
    print(f"seed={used}{shifted}, {mode}{', offline' if is_offline() else ''}")
    return get_device()
