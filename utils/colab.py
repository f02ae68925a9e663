"""Google Colab support: install only what Colab lacks, never torch.

Introduced in Phase 0. Every notebook's setup cell (stamped by ``tools/exercises.py``) clones the course
on Colab and runs ``python -m utils.colab``; elsewhere the setup cell does nothing of this.
"""
from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from .env import REPO_ROOT

# Colab ships its own CUDA build of these; reinstalling them would take minutes and break its GPU stack.
NEVER_REINSTALL = ("torch", "torchvision", "torchaudio")
# Colab brings its own Jupyter; the test tools are for CI only.
NOT_NEEDED_ON_COLAB = ("jupyterlab", "ipykernel", "nbformat", "nbclient", "nbval", "pytest", "psutil", "ruff")


def read_requirements(path: Path = REPO_ROOT / "requirements.txt") -> list[str]:
    """The pinned requirement lines of ``requirements.txt`` (comments and blanks dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _name(requirement: str) -> str:
    for sep in ("==", ">=", "<=", "~=", "<", ">"):
        requirement = requirement.split(sep, 1)[0]
    return requirement.strip().lower().replace("_", "-")


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def missing_requirements(requirements: list[str], is_installed: Callable[[str], bool] = _installed) -> list[str]:
    """Requirements Colab lacks, leaving out torch/torchvision/torchaudio and the Jupyter/test tools."""
    skip = {_name(n) for n in NEVER_REINSTALL + NOT_NEEDED_ON_COLAB}
    return [r for r in requirements if _name(r) not in skip and not is_installed(_name(r))]


def install_command(requirements: list[str] | None = None,
                    is_installed: Callable[[str], bool] = _installed,
                    version: Callable[[str], str] = importlib.metadata.version) -> list[str]:
    """The pip command that adds what is missing; torch & co. are pinned to what is already installed.

    Returns an empty list when nothing is missing.
    """
    missing = missing_requirements(read_requirements() if requirements is None else requirements, is_installed)
    if not missing:
        return []
    pins = [f"{name}=={version(name)}" for name in NEVER_REINSTALL if is_installed(name)]
    constraints = Path(tempfile.gettempdir()) / "course_keep_torch.txt"
    constraints.write_text("\n".join(pins) + "\n")
    return [sys.executable, "-m", "pip", "install", "--quiet", "-c", str(constraints), *missing]


def no_deps_command(requirements: list[str] | None = None,
                    is_installed: Callable[[str], bool] = _installed) -> list[str]:
    """The pip command for what ``requirements-nodeps.txt`` lists and Colab lacks, installed without its own
    dependencies (lmms-eval: the course's path needs only what requirements.txt already adds). Empty when nothing is
    missing."""
    wanted = read_requirements(REPO_ROOT / "requirements-nodeps.txt") if requirements is None else requirements
    missing = [r for r in wanted if not is_installed(_name(r))]
    return [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *missing] if missing else []


def main() -> None:
    """Install what Colab lacks (run by the setup cell as ``python -m utils.colab``)."""
    commands = [c for c in (install_command(), no_deps_command()) if c]
    for cmd in commands:
        print("Installing what Colab lacks:", " ".join(a for a in cmd if "==" in a))
        subprocess.run(cmd, check=True)
    if not commands:
        print("Colab already has every package the course needs.")


if __name__ == "__main__":
    main()
