"""Exercise self-checks: ``check("0.3", my_fn)`` prints ✓, or ✗ with a hint that names the mistake.

Introduced in Phase 0. How it works:

* each exercise is registered with a *reference* answer and a *test* that compares an answer with an
  oracle (a library implementation where one exists) and, when they differ, recognises typical
  mistakes by reproducing them (e.g. attention without the 1/sqrt(d) scaling) to name the one made;
* :func:`check` returns what the rest of the notebook should use: the learner's answer when it passes,
  otherwise the reference, with a visible notice — so a notebook with unsolved exercises still runs;
* with ``COURSE_STRICT_CHECKS=1`` (set by ``make test`` for the solution notebooks) a failing check
  raises, so a broken reference solution cannot slip through CI;
* every exercise has a **hint ladder** of at least two levels — a nudge, the concept with a pointer to the
  section or paper, a worked sub-step; never the answer. ``hint("5.2")`` shows the next level, and a check
  that fails a second time shows it by itself;
* when the answer returns the wrong type or shape, the message says what was expected and what came back,
  rather than "your code raised" for an error in the check's own use of it;
* with ``COURSE_PROGRESS_LOG=path`` every verdict is appended to that JSON-lines file (``utils.progress``
  runs a learner's notebooks this way and reports per exercise).

How a check diagnoses (known mistakes, then shape and type, then named properties) is in :mod:`.oracles`.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import pkgutil
import sysconfig
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

from ..env import is_fast, is_strict

__all__ = ["check", "expect", "evaluate", "hint", "phase_modules", "CheckFailed", "CheckResult", "Mismatch", "Unsolved",
           "register", "REGISTRY", "reference"]


class CheckFailed(AssertionError):
    """Raised by a test when an answer is wrong; its message is the hint shown to the learner."""


class Mismatch(CheckFailed):
    """The fallback verdict: the answer differs from the expected values, and no known mistake, shape or
    property explains how. Raised by a check's last resort only, so tests can tell a hint that names what is
    wrong from one that does not (``CheckResult.named``)."""


class Unsolved(Exception):
    """Raised by a test when the answer is still the starter (``...`` or ``NotImplementedError``)."""


@dataclass(frozen=True)
class Exercise:
    """A registered exercise: id ("0.3"), title, reference answer and the test that judges answers."""

    id: str
    title: str
    reference: Any
    test: Callable[[Any], str]  # returns a success detail, raises CheckFailed / Unsolved
    builds_on: tuple[str, ...] = ()  # earlier exercises whose answer a learner's answer to this one may call
    hints: tuple[str, ...] = ()  # the hint ladder: a nudge, the concept and where to read, a worked sub-step


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check: ``status`` is "passed", "failed" or "unsolved"; ``message`` is what is shown."""

    exercise: str
    status: str
    message: str
    named: bool = True  # for a failure: False when only the generic fallback (Mismatch) could be said

    @property
    def passed(self) -> bool:
        return self.status == "passed"


REGISTRY: dict[str, Exercise] = {}
# What check() said of each exercise in this session (kernel): "passed", "failed" or "unsolved".
STATUS: dict[str, str] = {}
FAILURES: dict[str, int] = {}  # failing check() calls per exercise in this session
HINTS_SHOWN: dict[str, int] = {}  # hint levels already shown per exercise (by hint() or a repeated failure)


def phase_modules() -> dict[str, str]:
    """Phase -> the module that registers its checks: every ``utils.checks.phaseN`` there is."""
    names = (m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("phase") and m.name[5:].isdigit())
    return {n[5:]: f"{__name__}.{n}" for n in sorted(names, key=lambda n: int(n[5:]))}


def register(exercise_id: str, title: str, reference: Any, builds_on: tuple[str, ...] = (),
             hints: Sequence[str] = ()) -> Callable[[Callable[[Any], str]], Callable[[Any], str]]:
    """Decorator: register ``test`` as the check of ``exercise_id``. ``builds_on`` names earlier exercises that
    a learner's answer is likely to call (5.3 reuses 5.2's splice): when this check fails while one of those has
    not passed, the learner is told to fix that one first. ``hints`` is the exercise's hint ladder, from the
    lightest nudge to a worked sub-step (at least two levels; none gives the answer away)."""

    def wrap(test: Callable[[Any], str]) -> Callable[[Any], str]:
        REGISTRY[exercise_id] = Exercise(exercise_id, title, reference, test, tuple(builds_on), tuple(hints))
        return test

    return wrap


def _exercise(exercise_id: str) -> Exercise:
    phase = exercise_id.split(".", 1)[0]
    if exercise_id not in REGISTRY and phase.isdigit():  # exercise "5.3" is registered by utils.checks.phase5
        try:
            importlib.import_module(f"{__name__}.phase{phase}")
        except ModuleNotFoundError:
            pass
    if exercise_id not in REGISTRY:
        raise KeyError(f"No check is registered for exercise {exercise_id!r}.")
    return REGISTRY[exercise_id]


def reference(exercise_id: str) -> Any:
    """The reference answer of an exercise (what the notebook falls back to)."""
    return _exercise(exercise_id).reference


def hint(exercise_id: str) -> None:
    """Print the next level of an exercise's hint ladder (``hint("5.2")``; call again for the next one)."""
    ex = _exercise(exercise_id)
    if not ex.hints:
        print(f"Exercise {ex.id} has no hints yet.")
        return
    level = min(HINTS_SHOWN.get(ex.id, 0), len(ex.hints) - 1)
    HINTS_SHOWN[ex.id] = level + 1
    print(f"💡 Exercise {ex.id}, hint {level + 1} of {len(ex.hints)}: {ex.hints[level]}")
    if level + 1 == len(ex.hints):
        print("   That is the last hint. Compare your code with it line by line, then run the check again.")
    else:
        print(f'   More: hint("{ex.id}") again.')


def is_placeholder(answer: Any) -> bool:
    """True for the starter placeholders ``...`` / ``None``, also inside a dict, list or tuple."""
    if answer is Ellipsis or answer is None:
        return True
    if isinstance(answer, dict):
        return any(is_placeholder(v) for v in answer.values())
    if isinstance(answer, (list, tuple)):
        return any(v is Ellipsis for v in answer)
    return False


_NOTHING = object()
_COURSE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # utils/
_LIBRARY_DIRS = tuple({os.path.abspath(p) for key in ("stdlib", "platstdlib", "purelib", "platlib")
                       if (p := sysconfig.get_paths().get(key))})


class _Recorder:
    """Wraps a function answer to remember what it last returned, so that an error the check's own code hits
    on that value can be explained in terms of the answer ("it returned a tuple of 2: ...")."""

    def __init__(self) -> None:
        self.returned: Any = _NOTHING

    def wrap(self, answer: Any) -> Any:
        if not inspect.isfunction(answer):  # modules, classes, dicts and numbers are passed as they are
            return answer

        @functools.wraps(answer)
        def recorded(*args, **kwargs):
            out = answer(*args, **kwargs)
            self.returned = out
            return out

        return recorded


def _learner_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost traceback frame in code that is neither the course's package nor an installed library:
    the learner's own code (a notebook cell, a file of theirs). None when the error arose in the check itself
    (or in a library it called) while it used the answer's result."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not os.path.abspath(f.filename).startswith((_COURSE_DIR + os.sep, *_LIBRARY_DIRS))]
    return frames[-1] if frames else None


def _crash_feedback(exc: Exception, recorder: _Recorder) -> str:
    """Feedback for an exception: "your code raised" when it came from the learner's code; otherwise the check
    could not use what the answer returned, and the message says what that was."""
    frame = _learner_frame(exc)
    if frame is not None:
        where = f" (in {frame.name}, line {frame.lineno}: `{frame.line}`)" if frame.line else ""
        return f"your code raised {type(exc).__name__}: {exc}{where}"
    if recorder.returned is not _NOTHING:
        from .oracles import describe

        return (f"your answer returned {describe(recorder.returned)}, which is not what this exercise asks for "
                f"(using it failed with {type(exc).__name__}: {exc}). Compare its type and shape with the "
                "exercise's statement.")
    return (f"your answer could not be used as this exercise expects ({type(exc).__name__}: {exc}). Compare "
            "what it gives back with the exercise's statement.")


def evaluate(exercise_id: str, answer: Any) -> CheckResult:
    """Judge an answer without printing; unit tests use this directly."""
    ex = _exercise(exercise_id)
    head = f"Exercise {ex.id} ({ex.title})"
    recorder = _Recorder()
    try:
        if is_placeholder(answer):
            raise Unsolved
        detail = ex.test(recorder.wrap(answer))
        return CheckResult(ex.id, "passed", f"✓ {head}: passed. {detail}".rstrip())
    except (Unsolved, NotImplementedError):
        return CheckResult(ex.id, "unsolved", f"… {head}: not attempted yet (the starter is still in place).")
    except CheckFailed as exc:
        return CheckResult(ex.id, "failed", f"✗ {head}: {exc}", named=not isinstance(exc, Mismatch))
    except Exception as exc:  # noqa: BLE001 - a crash in learner code is feedback, not a course error
        if isinstance(exc, TypeError) and "ellipsis" in str(exc):  # the starter's `...` reached an operation
            return CheckResult(ex.id, "unsolved", f"… {head}: not attempted yet (a `...` placeholder is left).")
        return CheckResult(ex.id, "failed", f"✗ {head}: {_crash_feedback(exc, recorder)}")


def _log_verdict(result: CheckResult, title: str) -> None:
    log = os.environ.get("COURSE_PROGRESS_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"exercise": result.exercise, "title": title, "status": result.status,
                                "message": result.message}, ensure_ascii=False) + "\n")


def check(exercise_id: str, answer: Any) -> Any:
    """Check an answer, print the verdict, and return what the rest of the notebook should use.

    Returns ``answer`` when it passes, else the reference answer (and says so).
    """
    ex = _exercise(exercise_id)
    result = evaluate(exercise_id, answer)
    STATUS[result.exercise] = result.status
    _log_verdict(result, ex.title)
    print(result.message)
    if result.passed:
        return answer
    if result.status == "failed":
        FAILURES[ex.id] = FAILURES.get(ex.id, 0) + 1
        if FAILURES[ex.id] >= 2 and HINTS_SHOWN.get(ex.id, 0) < len(ex.hints):
            hint(ex.id)  # a second failing run: the next level of the ladder, unasked
        elif ex.hints:
            print(f'   More help: hint("{ex.id}") ({len(ex.hints)} levels, from a nudge to a worked step).')
    upstream = [e for e in ex.builds_on if STATUS.get(e) != "passed"]
    if result.status == "failed" and upstream:
        names = " and ".join(f"Exercise {e}" for e in upstream)
        print(f"   Note: this exercise builds on {names}, which has not passed yet. If your answer calls your own "
              f"{'versions' if len(upstream) > 1 else 'version'} of {'them' if len(upstream) > 1 else 'it'}, "
              "the mistake may be there: fix that check first.")
    if is_strict():
        raise AssertionError(f"strict mode: {result.message}")
    print("   → The rest of this notebook uses the course's reference answer until this check passes.")
    return reference(exercise_id)


def expect(name: str, value: float, at_least: float | None = None, at_most: float | None = None,
           why: str | None = None) -> None:
    """Check a headline result against its margin, e.g. ``expect("test accuracy", acc, at_least=0.9)``.

    Prints ✓/✗ with the measured value; returns nothing (a cell ending with it shows no value). A miss
    **raises** only in strict mode
    (``COURSE_STRICT_CHECKS=1``: ``make test`` on the solution notebooks). Anywhere else — a learner's run,
    fast mode (``COURSE_FAST=1``, shortened training) — it explains instead, so a lesson never stops on a
    result that is a little under its usual value; ``why`` adds the recipe's own usual cause.
    With ``COURSE_EXPECT_LOG=path`` (set by ``make sweep``) every result is appended to that JSON-lines file
    and a miss never raises, so the sweep sees every value of a run.
    """
    ok = (at_least is None or value >= at_least) and (at_most is None or value <= at_most)
    bounds = " and ".join(b for b in (f"≥ {at_least}" if at_least is not None else "",
                                       f"≤ {at_most}" if at_most is not None else "") if b)
    print(f"{'✓' if ok else '✗'} {name} = {value:.4g} (expected {bounds})")
    log = os.environ.get("COURSE_EXPECT_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"name": name, "value": float(value), "at_least": at_least, "at_most": at_most,
                                "ok": bool(ok)}) + "\n")
    if ok:
        return
    if is_fast():
        print("   (fast mode: shortened training, so this is not enforced)")
    elif is_strict() and not log:
        raise AssertionError(f"{name} = {value:.4g}, expected {bounds}")
    else:
        print(f"   This is outside what the recipe usually gives ({bounds}). {why + ' ' if why else ''}Usual causes: "
              "an exercise above that has not passed yet, or an edit to a training cell; otherwise run-to-run "
              "variation (another processor, thread count or seed sends a short training another way): restart "
              "and rerun, or set COURSE_SEED=1. The lesson still holds; read on.")
