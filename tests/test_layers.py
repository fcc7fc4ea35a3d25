"""The house's floors: `prunelens.core` imports nothing above it, and no package imports one that imports it back."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "prunelens"


def prunelens_imports(path: Path) -> set[str]:
    """The prunelens modules a file imports, at its top or inside functions (imports under ``if TYPE_CHECKING``,
    which never run, are left out)."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and getattr(node.test, "id", "") ==
               "TYPE_CHECKING" for n in ast.walk(node)}  # fmt: skip
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("prunelens"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("prunelens"))
    return found


def package_of(module: str) -> str:
    """'prunelens.core.ranking' → 'core'; a top-level module is its own package."""
    return module.split(".")[1] if "." in module else module


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def test_core_imports_nothing_outside_core():
    outside = {f"{path.name} imports {module}" for path in (PACKAGE / "core").glob("*.py")
               for module in prunelens_imports(path) if not module.startswith("prunelens.core")}  # fmt: skip
    assert outside == set()


def test_the_checker_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import prunelens.cli\n"
                      "def f():\n    from prunelens.viewer.page import show_rankings\n")  # fmt: skip
    assert prunelens_imports(source) == {"prunelens.viewer.page"}


def reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for after in edges.get(todo.pop(), ()):
            if after not in seen:
                seen.add(after)
                todo.append(after)
    return seen


def test_no_package_reaches_itself_through_its_imports():
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        here = package_of(module_name(path))
        edges.setdefault(here, set()).update(package_of(m) for m in prunelens_imports(path) if package_of(m) != here)
    assert sorted(package for package in edges if package in reachable(edges, package)) == []
