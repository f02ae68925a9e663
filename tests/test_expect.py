"""utils.checks.expect: headline results raise only in strict mode, explain otherwise, and log for the sweep."""
import json

import pytest

from utils import expect


@pytest.fixture
def plain(monkeypatch):
    for var in ("COURSE_STRICT_CHECKS", "COURSE_FAST", "COURSE_EXPECT_LOG"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_a_result_within_its_margin_passes(plain, capsys):
    assert expect("accuracy", 0.93, at_least=0.9) is None   # nothing shown as a cell's value
    assert "✓ accuracy = 0.93" in capsys.readouterr().out


def test_strict_mode_raises_on_a_miss(plain):
    plain.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(AssertionError, match="accuracy = 0.8"):
        expect("accuracy", 0.8, at_least=0.9)
    with pytest.raises(AssertionError, match="≤ 0.5"):
        expect("loss", 0.7, at_most=0.5)


def test_a_learner_run_explains_a_miss_instead_of_raising(plain, capsys):
    expect("accuracy", 0.8, at_least=0.9, why="Short training is noisy.")
    out = capsys.readouterr().out
    assert "✗ accuracy = 0.8" in out and "usually gives" in out and "Short training is noisy." in out
    assert "COURSE_SEED" in out


def test_fast_mode_reports_without_enforcing(plain, capsys):
    plain.setenv("COURSE_STRICT_CHECKS", "1")
    plain.setenv("COURSE_FAST", "1")
    expect("accuracy", 0.1, at_least=0.9)
    assert "fast mode" in capsys.readouterr().out


def test_the_sweep_log_records_every_result_and_never_raises(plain, tmp_path):
    log = tmp_path / "expect.jsonl"
    plain.setenv("COURSE_STRICT_CHECKS", "1")
    plain.setenv("COURSE_EXPECT_LOG", str(log))
    expect("a", 0.95, at_least=0.9)
    expect("b", 0.5, at_least=0.9)                      # a miss: logged, not raised
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["name"], r["value"], r["at_least"], r["ok"]) for r in rows] == [("a", 0.95, 0.9, True),
                                                                                ("b", 0.5, 0.9, False)]
