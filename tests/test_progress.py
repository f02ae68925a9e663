"""The progress report (utils/progress.py): per exercise ✓ / ✗ with the hint / not attempted, and a JSON file,
from running a learner's notebook headless — never writing it. Tested on an unsolved, a partly solved and a
fully solved Phase 0 notebook."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import exercises  # tools/ is on sys.path (tests/conftest.py)
import nbformat
import psutil
import pytest

from utils import progress

ROOT = Path(__file__).resolve().parent.parent
PHASE0 = ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8"]


def test_phase_and_exercises_come_from_the_registry():
    assert progress.phase_of("notebooks/05_vlms.ipynb") == "5" and progress.phase_of("scratch.ipynb") is None
    assert [i for i, _ in progress.exercises_of("0")] == PHASE0
    assert progress.exercises_of(None) == [] and progress.exercises_of("99") == []


def test_summary_keeps_the_last_verdict_and_marks_exercises_never_checked():
    verdicts = [{"exercise": "0.2", "status": "failed", "message": "✗ Exercise 0.2 (…): divide by the norm"},
                {"exercise": "0.2", "status": "passed", "message": "✓ …"},
                {"exercise": "0.3", "status": "failed", "message": "✗ Exercise 0.3 (…): normalise the rows first"},
                {"exercise": "0.1", "status": "unsolved", "message": "… not attempted yet"}]
    report = progress.NotebookReport("n.ipynb", "0", 1.0, progress.summarise("0", verdicts))
    by_id = {e.id: e for e in report.exercises}
    assert by_id["0.2"].status == "passed" and by_id["0.2"].attempts == 2
    assert by_id["0.4"].status == "not reached"
    assert report.counts() == {"passed": 1, "failed": 1, "unsolved": 1, "not reached": 5}
    text = progress.format_report(report)
    assert "1/8 passed, 1 failed, 1 not attempted, 5 not reached" in text
    assert "✗ 0.3" in text and "normalise the rows first" in text and "(not attempted)" in text


def _partly_solved(tmp_path: Path) -> Path:
    """The Phase 0 exercise notebook with 0.2 solved (the solution's code), 0.3 answered wrongly, the rest as
    generated; a learner's notebook, in short."""
    nb = nbformat.read(ROOT / "notebooks" / "00_prerequisites.ipynb", as_version=4)
    solution = nbformat.read(ROOT / "solutions" / "00_prerequisites.ipynb", as_version=4)
    solved = [c.source for c in solution.cells if c.cell_type == "code" and "def l2_normalize" in c.source]
    for cell in nb.cells:
        if cell.cell_type == "code" and "def l2_normalize" in cell.source:
            cell.source = solved[0].replace(exercises.BEGIN, "").replace(exercises.END, "")
        if cell.cell_type == "code" and "def cosine_similarity_matrix" in cell.source:
            cell.source = "def cosine_similarity_matrix(a, b):\n    return a @ b.T  # forgot to normalise\n"
    path = tmp_path / "00_prerequisites.ipynb"
    nbformat.write(nb, path)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_unsolved_partly_and_fully_solved_notebooks(tmp_path, capsys):
    unsolved = ROOT / "notebooks" / "00_prerequisites.ipynb"
    partly = _partly_solved(tmp_path)
    solved = ROOT / "solutions" / "00_prerequisites.ipynb"
    before = {p: _digest(p) for p in (unsolved, partly, solved)}
    out = tmp_path / "progress.json"
    assert progress.main([str(unsolved), str(partly), str(solved), "--json", str(out)]) == 0
    assert {p: _digest(p) for p in before} == before  # never modifies a notebook
    doc = json.loads(out.read_text())
    reports = {Path(n["path"]).parent.name + "/" + Path(n["path"]).name: n for n in doc["notebooks"]}
    statuses = {k: {e["id"]: e["status"] for e in n["exercises"]} for k, n in reports.items()}
    assert statuses["notebooks/00_prerequisites.ipynb"] == dict.fromkeys(PHASE0, "unsolved")
    part = statuses[f"{tmp_path.name}/00_prerequisites.ipynb"]
    assert part["0.2"] == "passed" and part["0.3"] == "failed"
    assert {part[i] for i in PHASE0 if i not in ("0.2", "0.3")} == {"unsolved"}
    assert statuses["solutions/00_prerequisites.ipynb"] == dict.fromkeys(PHASE0, "passed")
    assert all(n["errors"] == [] for n in doc["notebooks"])
    failed = next(e for e in reports[f"{tmp_path.name}/00_prerequisites.ipynb"]["exercises"] if e["id"] == "0.3")
    assert "normalise" in failed["message"] or "norm" in failed["message"]  # the check's hint, as the learner saw it
    printed = capsys.readouterr().out
    assert "1/8 passed, 1 failed, 6 not attempted" in printed and "8/8 passed" in printed
    kernels = [p for p in psutil.Process().children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]
    assert kernels == [], "the report must shut down the kernels it started"
