"""Every registered exercise check: its reference answer passes, and a starter (a function whose body is
``...``, or a dict of ``...``) reads as "not attempted" rather than as a wrong answer."""
from __future__ import annotations

import importlib

import pytest

from utils.checks import REGISTRY, evaluate, phase_modules, reference

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
