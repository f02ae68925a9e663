"""Every registered exercise check: its reference answer passes, a starter (a function whose body is ``...``,
or a dict of ``...``) reads as "not attempted" rather than as a wrong answer, and it has a hint ladder; the
check machinery: hints, feedback on what an answer returned, the progress log."""
from __future__ import annotations

import importlib
import inspect
import json

import pytest

from utils import checks
from utils.checks import REGISTRY, evaluate, hint, phase_modules, reference

for module in phase_modules().values():
    importlib.import_module(module)
ALL = sorted(REGISTRY, key=lambda e: tuple(int(part) for part in e.split(".")))


def test_every_phase_registers_its_exercises():
    phases = {e.split(".")[0] for e in ALL}
    assert phases == set(phase_modules()) == {str(p) for p in range(len(phases))}, phases
    per_phase = {p: sum(e.split(".")[0] == p for e in ALL) for p in phases}
    assert min(per_phase.values()) >= 6, per_phase  # each phase notebook has at least 6 checked exercises


@pytest.mark.parametrize("exercise", ALL)
def test_reference_passes(exercise):
    result = evaluate(exercise, reference(exercise))
    assert result.passed, result.message
    assert result.message.startswith("✓")


def _ellipsis_body(*args, **kwargs):
    ...


def _not_implemented(*args, **kwargs):
    raise NotImplementedError


# Phase 0's starters raise NotImplementedError; from Phase 1 on the starters are `...` bodies (return None).
STARTERS = [pytest.param(e, _not_implemented, id=f"{e}-NotImplementedError") for e in ALL] + [
    pytest.param(e, _ellipsis_body, id=f"{e}-ellipsis-body") for e in ALL if not e.startswith("0.")]


@pytest.mark.parametrize("exercise, starter", STARTERS)
def test_starter_reads_as_unsolved(exercise, starter):
    ref = reference(exercise)
    answer = {k: ... for k in ref} if isinstance(ref, dict) else starter
    assert evaluate(exercise, answer).status == "unsolved"


# --- the hint ladder --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("exercise", ALL)
def test_every_exercise_has_a_hint_ladder_that_does_not_give_the_answer(exercise):
    hints = REGISTRY[exercise].hints
    assert len(hints) >= 2, f"Exercise {exercise} needs at least two hint levels, has {len(hints)}"
    assert len(set(hints)) == len(hints) and all(len(h) >= 40 for h in hints)
    ref = reference(exercise)
    if inspect.isfunction(ref):  # no line of the reference's body is quoted in a hint
        body = [ln.strip() for ln in inspect.getsource(ref).splitlines()[1:] if len(ln.strip()) >= 30
                and not ln.strip().startswith(("#", '"""', "'''"))]
        quoted = [ln for ln in body if any(ln in h for h in hints)]
        assert not quoted, f"Exercise {exercise}'s hints quote its reference: {quoted}"


def test_hint_climbs_the_ladder_and_stays_on_the_last_level(capsys, monkeypatch):
    monkeypatch.setattr(checks, "HINTS_SHOWN", {})
    n = len(REGISTRY["0.2"].hints)
    for level in range(1, n + 2):
        hint("0.2")
        out = capsys.readouterr().out
        assert f"hint {min(level, n)} of {n}" in out
    assert "last hint" in out


def test_a_failing_check_points_to_the_hints_and_a_second_failure_shows_the_next_level(capsys, monkeypatch):
    monkeypatch.setattr(checks, "HINTS_SHOWN", {})
    monkeypatch.setattr(checks, "FAILURES", {})
    monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)
    wrong = lambda x, dim=-1: x / x.sum(dim, keepdim=True)  # noqa: E731 - not an L2 norm
    checks.check("0.2", wrong)
    first = capsys.readouterr().out
    assert "✗" in first and 'hint("0.2")' in first and "hint 1 of" not in first
    checks.check("0.2", wrong)
    assert "hint 1 of" in capsys.readouterr().out  # shown unasked
    checks.check("0.2", wrong)
    assert "hint 2 of" in capsys.readouterr().out


# --- type and shape errors are feedback on the answer -----------------------------------------------------------

def test_an_error_in_the_checks_use_of_the_answer_describes_what_came_back():
    def returns_a_tuple(queries, tokens, attn):  # forgot [0] after nn.MultiheadAttention
        return attn(queries.unsqueeze(0).expand(len(tokens), -1, -1), tokens, tokens)

    result = evaluate("4.2", returns_a_tuple)
    assert result.status == "failed" and "your code raised" not in result.message
    assert "a tuple of 2" in result.message and "[0]" in result.message


def test_an_error_inside_the_learners_code_is_reported_with_its_line():
    def crashes(x, dim=-1):
        return x / x.norm(dim=dim, keepdim=True).item()  # .item() of a vector

    result = evaluate("0.2", crashes)
    assert "your code raised RuntimeError" in result.message and "in crashes, line" in result.message


def test_a_wrong_return_type_is_described_rather_than_crashing():
    result = evaluate("0.3", lambda a, b: (a @ b.T).tolist())
    assert result.status == "failed" and "your code raised" not in result.message
    assert "list" in result.message


# --- the progress log --------------------------------------------------------------------------------------------

def test_check_appends_its_verdict_to_the_progress_log(tmp_path, monkeypatch, capsys):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("COURSE_PROGRESS_LOG", str(log))
    monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)
    checks.check("0.2", reference("0.2"))
    checks.check("0.3", lambda a, b: a @ b.T)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["exercise"], r["status"]) for r in rows] == [("0.2", "passed"), ("0.3", "failed")]
    assert rows[0]["title"] == REGISTRY["0.2"].title and rows[1]["message"].startswith("✗")
