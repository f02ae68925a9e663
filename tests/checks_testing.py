"""Shared helpers for the unit tests of the exercise checks (tests/test_checks_phase*.py).

Every wrong implementation a test feeds a check goes through :func:`failed_with`, which also records it: with
``COURSE_COUNT_WRONG=path`` the test session writes, per phase, how many wrong implementations the tests hold
and how many got a hint that names what they break (``tests/conftest.py``)."""
from __future__ import annotations

from utils.checks import evaluate

RECORDED: list[dict] = []  # one entry per failed_with call: exercise, answer's name, named, message


def failed_with(exercise: str, answer, phrase: str, named: bool = True) -> None:
    """Assert that ``answer`` fails exercise ``exercise`` with a hint containing ``phrase`` — and, unless
    ``named=False``, a hint that names the mistake or the broken property rather than the generic fallback
    ("differs from the expected values")."""
    result = evaluate(exercise, answer)
    RECORDED.append({"exercise": exercise, "answer": getattr(answer, "__name__", type(answer).__name__),
                     "named": result.named, "message": result.message})
    assert result.status == "failed", result.message
    assert phrase in result.message, f"expected hint containing {phrase!r}, got: {result.message}"
    if named:
        assert result.named, f"only the generic fallback was said: {result.message}"
