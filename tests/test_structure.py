"""The shape the code keeps: no import cycles (function-local imports included) and short
functions in the mapping wing (issue 24: ``map_graph`` was 122 lines, ``solve_order`` 134)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("designer", "solvers")
MAX_FUNCTION_LINES = 80


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every project module ``path`` imports, anywhere in the file: function-local imports and
    ``TYPE_CHECKING`` blocks included (a cycle hidden under TYPE_CHECKING is still a cycle of
    the design: issue 36 found problem -> solve -> result -> problem there)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in known}
    return found


def test_no_import_cycles():
    found = modules()
    graph = nx.DiGraph()
    for name, path in found.items():
        for target in imports_of(path, set(found)):
            if target != name and not name.startswith(target + "."):  # a package's own __init__ is no cycle
                graph.add_edge(name, target)
    cycles = [cycle for cycle in nx.simple_cycles(graph) if len(cycle) > 1]
    assert not cycles, cycles[:5]


def test_the_mapping_wing_hides_nothing_under_type_checking():
    """Annotations import what they name for real: no TYPE_CHECKING block in the mapping wing."""
    hidden = [str(path.relative_to(ROOT)) for path in (ROOT / "designer" / "mapping").rglob("*.py")
              if "TYPE_CHECKING" in path.read_text()]
    assert not hidden, hidden


@pytest.mark.parametrize("folder", ["designer/mapping", "designer/cli/mapping.py"])
def test_no_long_functions_in_the_mapping_wing(folder):
    paths = [ROOT / folder] if folder.endswith(".py") else sorted((ROOT / folder).rglob("*.py"))
    long = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert not long, long
