"""The shape of `utils`: imports go one way (no cycles, also none hidden in function-level imports) and no
module imports another's `_private` name. Read statically from the source, so a cycle that only bites on a
certain import order is caught too."""
from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import utils

ROOT = Path(utils.__file__).parent


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    out = {"utils": ROOT / "__init__.py"}
    for info in pkgutil.walk_packages([str(ROOT)], prefix="utils."):
        path = ROOT.joinpath(*info.name.split(".")[1:])
        out[info.name] = path / "__init__.py" if info.ispkg else path.with_suffix(".py")
    return out


def internal_imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, imported names) for every import of a `utils` module anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("utils"):
                continue
            names = [a.name for a in node.names]
            for a in names:  # `from . import env` imports the module utils.env
                if f"{target}.{a}" in MODULES:
                    found.append((f"{target}.{a}", []))
            found.append((target, [a for a in names if f"{target}.{a}" not in MODULES]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("utils.")]
    return found


MODULES = modules()


def graph() -> dict[str, set[str]]:
    """Module -> the modules it imports, without the edges a package's __init__ has to its own submodules
    (re-exporting them is what a package does) and without `utils` itself."""
    edges = {}
    for name, path in MODULES.items():
        deps = {t for t, _ in internal_imports(name, path) if t in MODULES and t != name}
        if path.name == "__init__.py":
            deps = {d for d in deps if not d.startswith(name + ".")}
        edges[name] = deps - {"utils"}
    return edges


def test_every_module_imports():
    for name in MODULES:
        importlib.import_module(name)


def test_imports_go_one_way():
    edges, state, cycles = graph(), {}, []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == "open":
                loop = stack[stack.index(dep):] + [node, dep] if dep in stack else [node, dep]
                cycles.append(" -> ".join(loop))
            elif dep not in state:
                visit(dep, stack + [node])
        state[node] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    assert not cycles, "import cycles in utils: " + "; ".join(cycles)


def test_no_module_imports_a_private_name_of_another():
    offenders = [f"{name} imports {target}.{n}" for name, path in MODULES.items()
                 for target, names in internal_imports(name, path) for n in names
                 if n.startswith("_") and not n.startswith("__") and target != name]
    assert not offenders, offenders


def test_the_package_map_lists_every_module():
    """utils/__init__.py's docstring names every top-level module and subpackage (the map a newcomer reads)."""
    doc = utils.__doc__
    top = {n.split(".")[1] for n in MODULES if n.count(".") == 1}
    missing = sorted(m for m in top if f"``{m}``" not in doc)
    assert not missing, f"utils/__init__.py does not describe: {missing}"
