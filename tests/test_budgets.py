"""The budget plugin fails a run when a notebook is too slow or too big (shown on a small notebook)."""
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests import budgets

ROOT = Path(__file__).resolve().parent.parent


def test_over_budget_names_the_notebook_and_the_reason():
    stats = {"/x/01_a.ipynb": {"seconds": 200.0, "peak_memory": 1e9},
             "/x/02_b.ipynb": {"seconds": 5.0, "peak_memory": 4e9}}
    bad = budgets.over_budget(stats)
    assert any("01_a" in b and "200 s" in b for b in bad) and any("02_b" in b and "GB" in b for b in bad)
    assert budgets.over_budget({"/x/ok.ipynb": {"seconds": 10.0, "peak_memory": 1e9}}) == []


def test_a_slow_host_stretches_the_time_budget_by_its_measured_slowdown_within_a_cap(monkeypatch):
    monkeypatch.delenv("COURSE_BUDGET_CALIBRATE", raising=False)
    ref, cap = budgets.REFERENCE_PROBE_SECONDS, budgets.MAX_HOST_SLOWDOWN
    assert budgets.host_factor([]) == 1.0
    assert budgets.host_factor([ref * 0.5, ref * 0.7]) == 1.0            # a fast host never tightens the budget
    assert budgets.host_factor([ref * 1.2, ref * 1.4]) == pytest.approx(1.3)  # the median of the probes
    assert budgets.host_factor([ref * 5]) == cap                          # however slow, at most the cap
    limit = budgets.MAX_SECONDS
    slow = {"seconds": limit * 1.2, "peak_memory": 1e9}
    assert budgets.over_budget({"/x/a.ipynb": {**slow, "probes": [ref * 1.3] * 2}}) == []
    bad = budgets.over_budget({"/x/a.ipynb": {**slow, "probes": [ref] * 2}})
    assert bad and "a.ipynb" in bad[0]
    too_slow = {"seconds": limit * cap * 1.05, "peak_memory": 1e9, "probes": [ref * 3] * 2}
    assert any("judged" in b for b in budgets.over_budget({"/x/b.ipynb": too_slow}))
    monkeypatch.setenv("COURSE_BUDGET_CALIBRATE", "0")
    assert budgets.host_factor([ref * 1.3]) == 1.0
    assert budgets.over_budget({"/x/a.ipynb": {**slow, "probes": [ref * 1.3] * 2}})


def test_the_speed_probe_times_real_work():
    seconds = budgets.probe_seconds(repeats=3)
    assert 0.01 < seconds < 10 * budgets.REFERENCE_PROBE_SECONDS


def test_memory_counts_shared_pages_once_where_the_system_can():
    import psutil

    me = psutil.Process()
    used = budgets.process_memory(me)
    assert 0 < used <= me.memory_info().rss + 4096       # PSS ≤ RSS (equal when nothing is shared)


@pytest.mark.slow
@pytest.mark.parametrize("env, fails", [({"COURSE_MAX_NOTEBOOK_SECONDS": "1"}, True),
                                        ({"COURSE_MAX_NOTEBOOK_GB": "0.01"}, True),
                                        ({}, False)])
def test_slow_or_big_notebook_fails_the_run(tmp_path, env, fails):
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import time\nx = bytearray(50_000_000)\ntime.sleep(2)")])
    nbformat.write(nb, tmp_path / "slow.ipynb")
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "tests.budgets", "-q",
                             "-p", "no:cacheprovider", str(tmp_path / "slow.ipynb")],
                            cwd=ROOT, env={**__import__("os").environ, **env}, capture_output=True, text=True)
    assert (result.returncode != 0) == fails, result.stdout[-2000:]
    assert ("OVER BUDGET" in result.stdout) == fails
