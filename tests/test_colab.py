"""The Colab path: the stamped bootstrap cell clones the course and installs what Colab lacks, never torch."""
import subprocess
import sys
import types

import exercises

from utils import colab


def test_install_command_never_reinstalls_torch(tmp_path):
    have = {"torch", "torchvision", "torchaudio", "transformers", "numpy", "matplotlib"}
    cmd = colab.install_command(is_installed=lambda name: name in have, version=lambda name: "2.9.0+cu126")
    installs = {a.split("==")[0] for a in cmd if "==" in a}
    assert {"open_clip_torch", "soundfile", "tokenizers"} <= installs
    assert not installs & {"torch", "torchvision", "torchaudio", "transformers", "numpy", "jupyterlab", "nbval"}
    constraint = cmd[cmd.index("-c") + 1]
    assert "torch==2.9.0+cu126" in open(constraint).read()  # pip may not replace Colab's torch either


def test_nothing_to_install_when_everything_is_there():
    assert colab.install_command(is_installed=lambda name: True) == []


def test_lmms_eval_is_installed_without_its_dependencies():
    cmd = colab.no_deps_command(is_installed=lambda name: False)
    assert "--no-deps" in cmd and "lmms-eval==0.7.3" in cmd and not any(a.startswith("wandb") for a in cmd)
    assert colab.no_deps_command(is_installed=lambda name: True) == []


def test_bootstrap_cell_on_fake_colab(monkeypatch):
    """Run the stamped cell with a fake `google.colab` module and record the commands it would run."""
    calls = []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    monkeypatch.setattr(sys, "path", list(sys.path))
    exec(exercises.bootstrap_source(exercises.repo_url()), {})
    commands = [c if isinstance(c, str) else " ".join(c) for c, _ in calls]
    assert commands[0].startswith("git clone") and exercises.repo_url() in commands[0]
    assert commands[1].endswith("-m utils.colab")
    assert not any("torch" in c for c in commands)
    assert exercises.COLAB_DIR in sys.path


def test_bootstrap_cell_does_nothing_elsewhere(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    exec(exercises.bootstrap_source(exercises.repo_url()), {})
    assert calls == []
