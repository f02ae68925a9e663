"""Generate the exercise notebooks (notebooks/) from the solution notebooks (solutions/), the single source.

    python tools/exercises.py            # regenerate; skips exercise notebooks you have edited
    python tools/exercises.py --force    # overwrite them anyway
    python tools/exercises.py --check    # exit 1 if anything committed differs from what would be generated

What the generator does to each ``solutions/NN_slug.ipynb``:

* stamps the Colab badge (cell tagged ``colab-badge``) and the Colab bootstrap (cell tagged
  ``colab-bootstrap``) from the one repository URL in pyproject.toml — in the solution too;
* in ``notebooks/NN_slug.ipynb``: replaces every ``### BEGIN SOLUTION`` … ``### END SOLUTION`` block by its
  starter — the block's ``#>`` lines with the marker removed, or ``raise NotImplementedError`` — drops
  cells tagged ``answer-key``, strips outputs and execution counts, and records a hash of the cell sources
  so that a later run can tell a learner's edits from a pristine copy.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import sys
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS, NOTEBOOKS = ROOT / "solutions", ROOT / "notebooks"
BEGIN, END, STARTER = "### BEGIN SOLUTION", "### END SOLUTION", "#>"
DEFAULT_STARTER = 'raise NotImplementedError("Exercise: replace this line with your code")'
COLAB_DIR = "/content/multimodal-course"


def repo_url() -> str:
    """The repository URL: it lives in pyproject.toml ([project.urls] Repository) and nowhere else."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["urls"]["Repository"].rstrip("/")


def badge_source(name: str, url: str) -> str:
    """Markdown of the 'Open in Colab' badge for ``notebooks/<name>``."""
    path = url.split("github.com/", 1)[1]
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{path}/blob/main/notebooks/{name})")


def bootstrap_source(url: str) -> str:
    """The Colab bootstrap cell: clone the course, install what Colab lacks (never torch), import utils."""
    return (
        "# Colab bootstrap (stamped by tools/exercises.py). Outside Google Colab this cell does nothing.\n"
        "import sys\n"
        "\n"
        "if \"google.colab\" in sys.modules:\n"
        "    import subprocess\n"
        f"    repo, here = \"{url}\", \"{COLAB_DIR}\"\n"
        "    subprocess.run(f\"git clone --quiet --depth 1 {repo} {here} || git -C {here} pull --quiet\", "
        "shell=True, check=True)\n"
        f"    subprocess.run([sys.executable, \"-m\", \"utils.colab\"], cwd=\"{COLAB_DIR}\", check=True)\n"
        f"    sys.path.insert(0, \"{COLAB_DIR}\")"
    )


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def stamp(nb, name: str, url: str) -> None:
    """Write the badge and bootstrap cells of ``nb`` (in place) from the repository URL."""
    for cell in nb.cells:
        if "colab-badge" in _tags(cell):
            cell.source = badge_source(name, url)
        if "colab-bootstrap" in _tags(cell):
            cell.source = bootstrap_source(url)


def strip_solutions(source: str) -> str:
    """Replace each solution block by its starter (``#>`` lines, or ``raise NotImplementedError``)."""
    out: list[str] = []
    block: list[str] | None = None
    indent = ""
    for line in source.split("\n"):
        marker = line.strip()
        if marker == BEGIN:
            if block is not None:
                raise ValueError(f"nested {BEGIN}")
            block, indent = [], line[: len(line) - len(line.lstrip())]
        elif marker == END:
            if block is None:
                raise ValueError(f"{END} without {BEGIN}")
            starters = [b.lstrip()[len(STARTER):] for b in block if b.lstrip().startswith(STARTER)]
            starters = [s[1:] if s.startswith(" ") else s for s in starters]
            out.extend(indent + s for s in (starters or [DEFAULT_STARTER]))
            block = None
        elif block is not None:
            block.append(line)
        else:
            out.append(line)
    if block is not None:
        raise ValueError(f"{BEGIN} without {END}")
    return "\n".join(out)


def sources_hash(nb) -> str:
    """Hash of the cell types and sources: running a notebook does not change it, editing it does."""
    h = hashlib.sha256()
    for cell in nb.cells:
        h.update(cell.cell_type.encode() + b"\0" + cell.source.encode() + b"\0")
    return h.hexdigest()[:16]


def make_exercise(solution, name: str):
    """The exercise version of a (stamped) solution notebook."""
    nb = copy.deepcopy(solution)
    cells = []
    for cell in nb.cells:
        if "answer-key" in _tags(cell):
            continue
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source)
            cell.outputs = []
            cell.execution_count = None
            cell.metadata = {k: v for k, v in cell.metadata.items() if k == "tags"}
        cells.append(cell)
    nb.cells = cells
    # Only what Jupyter needs: the executing kernel's versions would make the file machine-dependent.
    nb.metadata = {"kernelspec": solution.metadata.get("kernelspec", {}), "language_info": {"name": "python"}}
    nb.metadata["course"] = {"generated_from": f"solutions/{name}", "source_hash": sources_hash(nb),
                             "note": "Generated by `make exercises`; edit solutions/ instead."}
    return nb


def dumps(nb) -> str:
    """Serialise a notebook the way the course stores it."""
    return nbformat.writes(nb) + "\n"


def is_edited(path: Path) -> bool:
    """True when an exercise notebook's sources differ from those it was generated with."""
    nb = nbformat.read(path, as_version=4)
    recorded = nb.metadata.get("course", {}).get("source_hash")
    return recorded is None or recorded != sources_hash(nb)


def build(solutions_dir: Path = SOLUTIONS, notebooks_dir: Path = NOTEBOOKS) -> dict[Path, str]:
    """Everything the generator would write: {path: text} for stamped solutions and exercise notebooks."""
    url = repo_url()
    files: dict[Path, str] = {}
    for sol_path in sorted(solutions_dir.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(sol_path, as_version=4)
        stamp(nb, sol_path.name, url)
        files[sol_path] = dumps(nb)
        files[notebooks_dir / sol_path.name] = dumps(make_exercise(nb, sol_path.name))
    return files


def generate(force: bool = False, solutions_dir: Path = SOLUTIONS, notebooks_dir: Path = NOTEBOOKS) -> list[str]:
    """Write what changed; never overwrite an edited exercise notebook unless ``force``. Returns a report."""
    report = []
    notebooks_dir.mkdir(exist_ok=True)
    for path, text in build(solutions_dir, notebooks_dir).items():
        if path.exists() and path.read_text() == text:
            continue
        if path.parent == notebooks_dir and path.exists() and not force and is_edited(path):
            report.append(f"skipped {path.relative_to(path.parent.parent)}: you edited it "
                          "(run with --force, or `make exercises FORCE=1`, to overwrite)")
            continue
        path.write_text(text)
        report.append(f"wrote {path.relative_to(path.parent.parent)}")
    return report


def drift(solutions_dir: Path = SOLUTIONS, notebooks_dir: Path = NOTEBOOKS) -> list[str]:
    """Files whose committed content differs from what the generator produces (empty when in sync)."""
    out = []
    expected = build(solutions_dir, notebooks_dir)
    for path, text in expected.items():
        if not path.exists() or path.read_text() != text:
            out.append(str(path.relative_to(path.parent.parent)))
    for path in sorted(notebooks_dir.glob("*.ipynb")):
        if path not in expected:
            out.append(f"{path.relative_to(path.parent.parent)} (no solution notebook)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="overwrite exercise notebooks you edited")
    parser.add_argument("--check", action="store_true", help="only report drift; exit 1 if any")
    args = parser.parse_args(argv)
    if args.check:
        bad = drift()
        for b in bad:
            print(f"out of date: {b} (run `make exercises`)")
        return 1 if bad else 0
    for line in generate(force=args.force) or ["everything is up to date"]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
