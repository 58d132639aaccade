"""Command-line conventions a newcomer expects (issue 38): -h, python -m designer, flags without a
type in the help, and a documented exit code of its own for "no solution found"."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

from typer.testing import CliRunner

from designer.cli import app

runner = CliRunner()


def test_dash_h_is_help_for_the_program_and_every_command():
    for args in (["-h"], ["prune", "-h"], ["map", "-h"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage: " in result.output and "[OPTIONS]" in result.output


def test_python_dash_m_designer_runs_the_command():
    result = subprocess.run([sys.executable, "-m", "designer", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("mpdesign ")


def test_flags_show_no_type_in_the_help():
    for args in (["-h"], ["map", "-h"], ["prune", "-h"]):
        assert "<bool>" not in runner.invoke(app, args, terminal_width=200).output


def test_no_design_found_has_its_own_exit_code(monkeypatch):
    from designer.cli import design
    found_nothing = SimpleNamespace(spec=None, status="time_limit",
                                    solve=SimpleNamespace(message="no solution in the time limit", seconds=1.0))
    monkeypatch.setattr(design, "solve_design", lambda problem, **options: found_nothing)
    result = runner.invoke(app, ["design", "--macs", "1e8", "--time-limit", "1"])
    assert result.exit_code == 3 and "no design found" in result.output


def test_the_payload_table_of_the_outputs_doc_is_one_table():
    """A blank line inside a markdown table ends it: the rows after it render as plain text."""
    from pathlib import Path
    lines = (Path(__file__).resolve().parents[1] / "docs" / "outputs.md").read_text().splitlines()
    split = [i + 1 for i in range(1, len(lines) - 1)
             if lines[i] == "" and lines[i - 1].startswith("|") and lines[i + 1].startswith("|")]
    assert not split, f"blank lines inside a table at lines {split}"


def _graph_file(path):
    import json
    path.write_text(json.dumps({"name": "two", "tensors": {"x": {"bytes": 100, "producer": None},
                                                           "y": {"bytes": 100, "producer": "a"}},
                                "operators": {"a": {"inputs": ["x"], "outputs": ["y"]}}}))
    return path


def test_an_output_that_exists_is_refused_unless_forced(tmp_path):
    graph = _graph_file(tmp_path / "g.json")
    out = tmp_path / "mapping.json"
    out.write_text("keep me")
    result = runner.invoke(app, ["map", str(graph), "--scratchpad", "M_R", "--out", str(out)])
    assert result.exit_code == 2 and "exists; give --force" in " ".join(result.output.split())
    assert out.read_text() == "keep me"
    result = runner.invoke(app, ["map", str(graph), "--scratchpad", "M_R", "--out", str(out), "--force"])
    assert result.exit_code == 0 and out.read_text() != "keep me"
    run = tmp_path / "run"  # a run folder that holds a run already: train refuses to write over it
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"an earlier run")
    result = runner.invoke(app, ["train", "tiny-cifar", "--dataset", "digits", "--out", str(run)])
    assert result.exit_code == 2 and "checkpoint.pt exists; give --force" in " ".join(result.output.split())


def test_prune_defaults_go_next_to_the_input_with_the_modes_name():
    from pathlib import Path

    from designer.pruning.run import PruneRequest
    assert PruneRequest(checkpoint=Path("run/checkpoint.pt")).default_out() == Path("run/checkpoint-pruned.pt")
    assert PruneRequest(checkpoint=Path("run/checkpoint.pt"), mode="channels").default_out() == \
        Path("run/checkpoint-channels.pt")
    assert PruneRequest(model="my_models.py:resnet18", weights=Path("w/r18.pt")).default_out() == \
        Path("w/r18-pruned.pt")
    assert PruneRequest(model="my_models.py:resnet18").default_out() == Path("resnet18-pruned.pt")


def test_the_readme_gives_the_cpu_route_for_pip_and_every_extra():
    import tomllib
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    section = readme.split("### Installing with pip", 1)[1].split("\n## ", 1)[0]
    assert "--index-url https://download.pytorch.org/whl/cpu" in section
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    missing = [name for name in extras if f"`{name}`" not in section]
    assert not missing, f"extras not described in the README's pip section: {missing}"


def test_every_error_the_library_raises_on_purpose_is_a_designer_error():
    import designer
    from designer.design.problem import DesignError
    from designer.files import OutputError
    from designer.mapping.core.graph import GraphError
    from designer.mapping.problem import MappingError
    from designer.pipeline import PipelineError
    from designer.spec import SpecError
    from designer.sweep import SweepError
    from designer.train.loop import TrainingDiverged
    for error in (DesignError, SpecError, MappingError, GraphError, TrainingDiverged, SweepError):
        assert issubclass(error, designer.Error) and issubclass(error, ValueError)
    assert issubclass(OutputError, designer.Error) and issubclass(PipelineError, (designer.Error, RuntimeError))


def test_a_sentence_is_not_wrapped_at_80_columns_when_piped():
    from designer.cli.common import console, errors
    for target in (console, errors):
        with target.capture() as captured:
            target.print("a long sentence of many words " * 10)
        assert captured.get().rstrip("\n").count("\n") == 0


def test_quiet_leaves_the_result_only(tmp_path):
    graph = _graph_file(tmp_path / "g.json")
    for quiet, expect_notes in (([], True), (["--quiet"], False)):
        result = subprocess.run([sys.executable, "-m", "designer", "map", str(graph), "--scratchpad", "M_R", *quiet],
                                capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout.strip()
        assert bool(result.stderr.strip()) == expect_notes, result.stderr


def test_a_stage_counts_its_share_through_one_deadline_object():
    """Issue 38: stages ask a Deadline what is left instead of subtracting clock readings."""
    from designer.deadline import Deadline
    spent, ample = Deadline.starting_now(0.0), Deadline.starting_now(1e9)
    assert spent.expired() and spent.left() == 0.0 and spent.left(floor=0.5) == 0.5
    assert not ample.expired() and 0 < ample.left() <= 1e9 and ample.elapsed() >= 0
    import designer.mapping.strategies.keep as keep
    import designer.mapping.tiling.search as search
    for module in (keep, search):  # the wing's stages that shared a limit by hand now hold a Deadline
        source = open(module.__file__).read()
        assert "perf_counter" not in source and "Deadline.starting_now" in source
