"""What a user installing mpdesign gets (issue 23, packaging): a licence, type information, a
version, and every third-party import declared."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_licence_file_is_the_declared_licence():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text() and "Version 2.0" in (ROOT / "LICENSE").read_text()


@pytest.mark.parametrize("package", ["designer", "solvers"])
def test_both_packages_ship_their_type_information(package):
    import importlib
    assert (Path(importlib.import_module(package).__file__).parent / "py.typed").is_file()


def test_version_is_the_installed_one(capsys):
    from importlib.metadata import version

    import designer
    from designer.cli import main
    assert designer.__version__ == version("mpdesign")
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"mpdesign {designer.__version__}"


def test_every_third_party_import_is_a_declared_dependency():
    """Imports of designer/ and solvers/ (top-level or inside functions) against pyproject's
    dependencies and extras; scipy was imported but not declared."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=\[ ;]", d)[0].lower().replace("-", "_") for d in project["dependencies"]}
    names = {"torch_pruning": "torch_pruning", "sklearn": "scikit_learn", "PIL": "pillow", "yaml": "pyyaml",
             "dask": "dask", "distributed": "dask"}
    local = {"designer", "solvers"} | set(sys.stdlib_module_names)
    imported = set()
    for path in [*ROOT.glob("designer/**/*.py"), *ROOT.glob("solvers/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {names.get(name, name).lower() for name in imported - local}
    assert third_party <= declared, sorted(third_party - declared)
