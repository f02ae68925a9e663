"""The environment: pins agree between pip and conda, torchaudio works on CPU, the check reports it."""
import re
from pathlib import Path

import yaml

from utils import env
from utils.colab import read_requirements

ROOT = Path(__file__).resolve().parent.parent


def _pins(lines):
    out = {}
    for line in lines:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*==\s*([^\s;]+)", line.strip())
        assert m, f"every requirement must be pinned with ==: {line!r}"
        out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def conda_pip_requirements(path: Path = ROOT / "environment.yml") -> list[str]:
    spec = yaml.safe_load(path.read_text())
    pip_sections = [d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    return pip_sections[0]


def test_environment_yml_mirrors_requirements():
    pip_pins, conda_pins = _pins(read_requirements()), _pins(conda_pip_requirements())
    missing = sorted(set(pip_pins) - set(conda_pins))
    extra = sorted(set(conda_pins) - set(pip_pins))
    differ = sorted(k for k in set(pip_pins) & set(conda_pins) if pip_pins[k] != conda_pins[k])
    assert not (missing or extra or differ), f"missing in conda: {missing}; extra: {extra}; other pins: {differ}"


def test_sync_check_catches_a_disagreement(tmp_path):
    text = (ROOT / "environment.yml").read_text().replace("torch==2.11.0", "torch==2.13.0")
    (tmp_path / "environment.yml").write_text(text)
    assert _pins(conda_pip_requirements(tmp_path / "environment.yml"))["torch"] != _pins(read_requirements())["torch"]


def test_constraints_lock_agrees_with_requirements():
    lock = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            lock[name.strip().lower().replace("_", "-")] = version.strip()
    for name, version in _pins(read_requirements()).items():
        assert lock.get(name) == version, f"constraints.txt pins {name}=={lock.get(name)}, requirements {version}"


def test_torch_triple_imports_and_runs_on_cpu():
    import torch
    import torchaudio
    import torchvision

    assert torch.__version__.split("+")[0] == "2.11.0"
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_mels=16)(torch.randn(1, 16000))
    assert mel.shape[1] == 16
    assert torchvision.ops.box_iou(torch.tensor([[0., 0, 2, 2]]), torch.tensor([[1., 1, 3, 3]])).item() > 0


def test_environment_check_reports_every_package(capsys):
    assert env.check_environment()
    out = capsys.readouterr().out
    for _, dist in env.REQUIRED_PACKAGES:
        assert f"[OK] {dist}" in out
    assert "python" in out and "device" in out


def test_environment_check_says_how_to_fix(capsys):
    assert not env.check_environment(packages=(("no_such_package_xyz", "no-such-package-xyz"),))
    out = capsys.readouterr().out
    assert "[FAIL] no-such-package-xyz" in out and "make setup" in out


def test_setup_is_a_no_op_when_the_environment_is_current():
    """`make lab`/`make test` reinstall nothing once .venv is current (`make -q` answers 0 = up to date)."""
    import shutil
    import subprocess

    import pytest

    if not (ROOT / ".venv" / ".installed").exists() or shutil.which("make") is None:
        pytest.skip("runs inside the course's .venv, created by make")
    assert subprocess.run(["make", "-q", "setup"], cwd=ROOT).returncode == 0
