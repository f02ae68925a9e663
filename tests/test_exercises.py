"""The exercise generator: solutions/ is the single source of notebooks/."""
import json

import exercises
import nbformat
import pytest

SOLUTION_CELL = '''def double(x):
    """Twice x."""
    ### BEGIN SOLUTION
    #> # TODO: return x times two
    #> ...
    return 2 * x
    ### END SOLUTION

check_me = double'''


def _solution_notebook():
    nb = nbformat.v4.new_notebook()
    badge = nbformat.v4.new_markdown_cell("badge goes here")
    badge.metadata["tags"] = ["colab-badge"]
    boot = nbformat.v4.new_code_cell("bootstrap goes here")
    boot.metadata["tags"] = ["colab-bootstrap"]
    code = nbformat.v4.new_code_cell(SOLUTION_CELL)
    code.outputs = [nbformat.v4.new_output("stream", text="hello")]
    code.execution_count = 3
    plain = nbformat.v4.new_code_cell("x = 1\n### BEGIN SOLUTION\nx = 2\n### END SOLUTION")
    key = nbformat.v4.new_markdown_cell("**Answer key.** 42")
    key.metadata["tags"] = ["answer-key"]
    nb.cells = [badge, boot, code, plain, key]
    return nb


@pytest.fixture
def course(tmp_path):
    sol, notebooks = tmp_path / "solutions", tmp_path / "notebooks"
    sol.mkdir()
    nbformat.write(_solution_notebook(), sol / "07_demo.ipynb")
    return sol, notebooks


def test_strip_solutions_uses_starter_lines_and_keeps_indentation():
    out = exercises.strip_solutions(SOLUTION_CELL)
    assert "return 2 * x" not in out and "BEGIN SOLUTION" not in out
    assert "    # TODO: return x times two\n    ...\n" in out
    assert out.endswith("check_me = double")


def test_strip_solutions_default_starter_raises_not_implemented():
    assert exercises.strip_solutions("### BEGIN SOLUTION\ny = 1\n### END SOLUTION") == exercises.DEFAULT_STARTER


@pytest.mark.parametrize("bad", ["### BEGIN SOLUTION\nx", "x\n### END SOLUTION",
                                 "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION"])
def test_unbalanced_markers_are_errors(bad):
    with pytest.raises(ValueError):
        exercises.strip_solutions(bad)


def test_generated_notebook_has_starters_no_outputs_no_answer_key(course):
    sol, notebooks = course
    exercises.generate(solutions_dir=sol, notebooks_dir=notebooks)
    nb = nbformat.read(notebooks / "07_demo.ipynb", as_version=4)
    text = json.dumps(nb)
    assert "return 2 * x" not in text and "Answer key" not in text
    assert all(c.get("outputs", []) == [] and c.get("execution_count") is None
               for c in nb.cells if c.cell_type == "code")
    assert "colab.research.google.com/github/" in nb.cells[0].source and "notebooks/07_demo.ipynb" in nb.cells[0].source
    assert exercises.repo_url() in nb.cells[1].source
    # the solution itself is stamped too, and keeps its outputs
    stamped = nbformat.read(sol / "07_demo.ipynb", as_version=4)
    assert exercises.repo_url() in stamped.cells[1].source and stamped.cells[2].outputs


def test_drift_is_detected(course):
    sol, notebooks = course
    exercises.generate(solutions_dir=sol, notebooks_dir=notebooks)
    assert exercises.drift(sol, notebooks) == []
    nb = nbformat.read(sol / "07_demo.ipynb", as_version=4)
    nb.cells[2].source = nb.cells[2].source.replace("check_me", "check_it")
    nbformat.write(nb, sol / "07_demo.ipynb")
    assert exercises.drift(sol, notebooks) == ["notebooks/07_demo.ipynb"]


def test_orphan_exercise_notebook_is_drift(course):
    sol, notebooks = course
    exercises.generate(solutions_dir=sol, notebooks_dir=notebooks)
    (notebooks / "99_orphan.ipynb").write_text((notebooks / "07_demo.ipynb").read_text())
    assert any("99_orphan" in d for d in exercises.drift(sol, notebooks))


def test_regenerating_never_overwrites_a_learners_edit(course):
    sol, notebooks = course
    exercises.generate(solutions_dir=sol, notebooks_dir=notebooks)
    target = notebooks / "07_demo.ipynb"
    nb = nbformat.read(target, as_version=4)
    nb.cells[2].source = nb.cells[2].source.replace("...", "return x + x  # my answer")
    nbformat.write(nb, target)
    sol_nb = nbformat.read(sol / "07_demo.ipynb", as_version=4)
    sol_nb.cells[3].source += "\nz = 3"
    nbformat.write(sol_nb, sol / "07_demo.ipynb")

    report = exercises.generate(solutions_dir=sol, notebooks_dir=notebooks)
    assert any("skipped" in line and "07_demo" in line for line in report)
    assert "my answer" in target.read_text()

    exercises.generate(force=True, solutions_dir=sol, notebooks_dir=notebooks)
    assert "my answer" not in target.read_text() and "z = 3" in target.read_text()


def test_a_notebook_that_was_only_run_is_not_an_edit(course):
    sol, notebooks = course
    exercises.generate(solutions_dir=sol, notebooks_dir=notebooks)
    target = notebooks / "07_demo.ipynb"
    nb = nbformat.read(target, as_version=4)
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", text="ran")]
    nb.cells[3].execution_count = 1
    nbformat.write(nb, target)
    assert not exercises.is_edited(target)


def test_committed_notebooks_match_their_solutions():
    """`make test` fails when notebooks/ drifts from solutions/ (or solutions are not stamped)."""
    assert exercises.drift() == [], "run `make exercises` and commit the result"


def test_every_solution_marks_its_exercises_and_checks_them():
    paths = sorted(exercises.SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
    assert paths, "no solution notebooks found"
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert code.count(exercises.BEGIN) >= 5, f"{path.name}: fewer than 5 exercises"
        assert "check(" in code, path.name
        assert any("colab-badge" in c.metadata.get("tags", []) for c in nb.cells[:2]), path.name
