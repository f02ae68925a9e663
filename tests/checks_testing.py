"""Shared helpers for the unit tests of the exercise checks (tests/test_checks_phase*.py)."""
from __future__ import annotations

from utils.checks import evaluate


def failed_with(exercise: str, answer, phrase: str) -> None:
    """Assert that ``answer`` fails exercise ``exercise`` with a hint containing ``phrase``."""
    result = evaluate(exercise, answer)
    assert result.status == "failed", result.message
    assert phrase in result.message, f"expected hint containing {phrase!r}, got: {result.message}"
