"""Exercise notebooks run top to bottom unsolved; `make lab` serves JupyterLab."""
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from utils import progress
from utils.distributed import free_port

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", EXERCISES, ids=[p.stem for p in EXERCISES])
def test_unsolved_exercise_notebook_runs(path):
    """Every check falls back to the reference, so an untouched notebook runs end to end (fast mode): no cell
    raises, and the progress report (utils.progress, as `make progress` runs it) reads every exercise of the
    phase as not attempted."""
    report = progress.run_notebook(path, timeout=300)
    assert report.errors == [], report.errors
    assert report.exercises and {e.status for e in report.exercises} == {"unsolved"}, progress.format_report(report)


@pytest.mark.slow
def test_make_lab_serves_jupyterlab():
    port = free_port()
    flags = f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token=smoke"
    proc = subprocess.Popen(["make", "-s", "lab", f"LAB_FLAGS={flags}"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, body = time.time() + 90, ""
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token=smoke", timeout=5) as r:
                    body = r.read().decode()
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(1)
        assert "JupyterLab" in body, f"JupyterLab did not answer on port {port}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token=smoke", timeout=5) as r:
            assert b"00_prerequisites.ipynb" in r.read(), "the lab should open on notebooks/"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
        log = proc.communicate(timeout=30)[0].decode(errors="replace")
        print(log[-3000:])
