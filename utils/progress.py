"""A learner's progress, per exercise: ``python -m utils.progress notebooks/05_vlms.ipynb`` (or ``make progress``).

Runs each notebook headless, in fast mode (``COURSE_FAST=1``: shortened training), on a copy held in memory —
the learner's file is never written — and reports what the course's own checks said of every exercise:

* ✓ passed, ✗ failed (with the check's hint), … not attempted (the starter is still there), or
  ? not reached (the check never ran: a cell before it raised, or the cell was deleted);
* the cells that raised, with the error.

It prints a table and writes a JSON file (default ``progress.json``) that a workshop's tooling can collect: what
nbgrader's autograder gives an instructor, computed by the same checks the learner sees. Introduced with the
Phase 0–5 checks; every later phase is covered by registering its checks (``utils.checks.phaseN``).

How it knows: with ``COURSE_PROGRESS_LOG=path`` in the kernel's environment, every ``check(...)`` appends its
verdict to that JSON-lines file (see :func:`utils.checks.check`).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .checks import REGISTRY, phase_modules

STATUS_MARK = {"passed": "✓", "failed": "✗", "unsolved": "…", "not reached": "?"}
STATUS_WORDS = {"passed": "passed", "failed": "failed", "unsolved": "not attempted", "not reached": "not reached"}


@dataclass
class ExerciseReport:
    """One exercise: ``status`` is "passed", "failed", "unsolved" (starter in place) or "not reached"."""

    id: str
    title: str
    status: str
    message: str = ""
    attempts: int = 0  # how many times its check ran in this execution (a cell can call it again)


@dataclass
class NotebookReport:
    """What one notebook's execution showed: every exercise of its phase, and the cells that raised."""

    path: str
    phase: str | None
    seconds: float
    exercises: list[ExerciseReport] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)  # {"cell": index, "error": "NameError: ..."}

    def counts(self) -> dict[str, int]:
        """Exercises per status, e.g. {"passed": 3, "failed": 1, "unsolved": 2, "not reached": 0}."""
        return {s: sum(e.status == s for e in self.exercises) for s in STATUS_MARK}


def phase_of(path: str | Path) -> str | None:
    """The phase a course notebook belongs to, from its name: ``05_vlms.ipynb`` -> "5"; None otherwise."""
    m = re.match(r"(\d+)_", Path(path).name)
    return str(int(m.group(1))) if m else None


def exercises_of(phase: str | None) -> list[tuple[str, str]]:
    """(id, title) of every exercise registered for ``phase``, in the order of their ids."""
    if phase is None or phase not in phase_modules():
        return []
    __import__(phase_modules()[phase])
    ids = [i for i in REGISTRY if i.split(".", 1)[0] == phase]
    return [(i, REGISTRY[i].title) for i in sorted(ids, key=lambda i: [int(p) for p in i.split(".")])]


def read_log(path: str | Path) -> list[dict]:
    """The verdicts ``check`` appended to a ``COURSE_PROGRESS_LOG`` file, in order (missing file: none)."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def summarise(phase: str | None, verdicts: Sequence[dict]) -> list[ExerciseReport]:
    """One report per exercise of the phase (and per other exercise a verdict names): the last verdict wins."""
    reports = {i: ExerciseReport(i, t, "not reached") for i, t in exercises_of(phase)}
    for v in verdicts:
        r = reports.setdefault(v["exercise"], ExerciseReport(v["exercise"], v.get("title", ""), "not reached"))
        r.status, r.message, r.attempts = v["status"], v["message"], r.attempts + 1
    return list(reports.values())


def cell_errors(nb) -> list[dict]:
    """The code cells of an executed notebook that raised: their index and "Name: message"."""
    out = []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if o.get("output_type") == "error":
                out.append({"cell": i, "error": f"{o.get('ename')}: {o.get('evalue')}"})
    return out


def _kernel_manager():
    """A kernel manager with CurveZMQ keys where the installed jupyter_client supports them (the setting the
    course's lab uses, tools/lab/): the kernel then does not warn that it runs over TCP without encryption."""
    from jupyter_client.manager import KernelManager

    try:
        return KernelManager(kernel_name="python3", transport_encryption="auto")
    except Exception:  # noqa: BLE001 - an older jupyter_client: the plain manager still works
        return KernelManager(kernel_name="python3")


def run_notebook(path: str | Path, timeout: int = 600, fast: bool = True) -> NotebookReport:
    """Execute ``path`` headless (a copy in memory; errors do not stop it) and report its exercises."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "checks.jsonl"
        saved = {k: os.environ.get(k) for k in ("COURSE_PROGRESS_LOG", "COURSE_FAST", "COURSE_STRICT_CHECKS",
                                                "MPLBACKEND")}
        os.environ.update(COURSE_PROGRESS_LOG=str(log), MPLBACKEND="Agg")
        os.environ.pop("COURSE_STRICT_CHECKS", None)  # a learner's run: a failing check explains, never raises
        if fast:
            os.environ["COURSE_FAST"] = "1"
        else:
            os.environ.pop("COURSE_FAST", None)
        start = time.perf_counter()
        km = _kernel_manager()
        try:  # cleanup_kc: a client given its kernel manager would otherwise leave the kernel running
            NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3", allow_errors=True,
                           resources={"metadata": {"path": str(path.parent.resolve())}}).execute(cleanup_kc=True)
        finally:
            if km.has_kernel:
                km.shutdown_kernel(now=True)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        seconds = time.perf_counter() - start
        verdicts = read_log(log)
    phase = phase_of(path)
    return NotebookReport(str(path), phase, round(seconds, 1), summarise(phase, verdicts), cell_errors(nb))


def format_report(report: NotebookReport) -> str:
    """The printed table of one notebook: a summary line, one line per exercise, then the cells that raised."""
    c = report.counts()
    n = len(report.exercises)
    head = (f"{report.path}: {c['passed']}/{n} passed, {c['failed']} failed, {c['unsolved']} not attempted"
            + (f", {c['not reached']} not reached" if c["not reached"] else "") + f"  ({report.seconds:.0f} s)")
    lines = [head]
    for e in report.exercises:
        line = f"  {STATUS_MARK[e.status]} {e.id:<5} {e.title}"
        if e.status == "failed":
            hint = e.message.split(": ", 1)[1] if ": " in e.message else e.message
            line += "\n        " + hint.replace("\n", "\n        ")
        elif e.status != "passed":
            line += f"  ({STATUS_WORDS[e.status]})"
        lines.append(line)
    for err in report.errors:
        lines.append(f"  cell {err['cell']} raised {err['error'][:200]}")
    return "\n".join(lines)


def to_json(reports: Sequence[NotebookReport]) -> dict:
    """The JSON document written for instructors: one entry per notebook, with per-status counts."""
    return {"generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "fast_mode": True,
            "notebooks": [{**asdict(r), "counts": r.counts()} for r in reports]}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: report on the given notebooks (default: every course notebook in notebooks/)."""
    from .env import REPO_ROOT

    parser = argparse.ArgumentParser(prog="python -m utils.progress", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: notebooks/NN_*.ipynb)")
    parser.add_argument("--json", default="progress.json", help="where to write the JSON report (default: %(default)s)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds a cell may run (default: %(default)s)")
    parser.add_argument("--full", action="store_true", help="full training instead of fast mode (much slower)")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.notebooks] or sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    reports = []
    for p in paths:
        print(f"running {p} ...", flush=True)
        reports.append(run_notebook(p, timeout=args.timeout, fast=not args.full))
        print(format_report(reports[-1]), flush=True)
    doc = to_json(reports)
    doc["fast_mode"] = not args.full
    Path(args.json).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
