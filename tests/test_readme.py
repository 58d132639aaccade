"""Every `mpdesign` command the README shows parses as written: its options exist, their values
have the right types and are among the listed choices (issue 23). Parsing only (click's
`make_context`), not running: the commands name the user's own files and take minutes; the
other tests run each command itself."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import typer

from designer.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    text = README.read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)  # continuation lines
        for line in joined.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("mpdesign ") or "-m designer.cli " in line:
                commands.append(line.split("-m designer.cli ", 1)[-1].removeprefix("mpdesign "))
    return commands


def test_the_readme_shows_commands():
    assert len(readme_commands()) >= 25


@pytest.mark.parametrize("command", readme_commands())
def test_every_readme_command_parses_as_written(command):
    group = typer.main.get_command(app)
    args = shlex.split(command)
    name, rest = args[0], args[1:]
    sub = group.get_command(click.Context(group), name)
    assert sub is not None, f"no command {name!r}"
    sub.make_context(name, rest)  # raises click.UsageError on an unknown option, a bad value or choice


# The README commands this file runs as written, in a folder holding the files they name (made
# here: a spec, a TinyNAS structure, distortion curves, a tensor graph, an ExportedProgram and a
# sweep). The others are run with the user's own files and time limits by the tests named beside
# them: as written they train, profile or solve for minutes on models the user brings.
RUN_HERE = ("specs", "inspect ", "allocate ", "map graph.json", "map model.pt2", "sweep ")
RUN_ELSEWHERE = {
    "design ": "test_design.py, test_design_families.py, test_schemas.py (60-s, mixed-family and latency-budget "
               "designs of DeepMAD-R50 size)",
    "profile ": "test_cli.py (times every block on this machine)",
    "train ": "test_train.py, test_cli.py (trains the designed network)",
    "prune ": "test_cli_pruning.py, test_prune_any.py (measures curves and fine-tunes)",
    "map --model": "test_importer.py, test_tiling_cli.py, test_schemas.py (a 224-px ResNet-18 and MobileNetV2)",
    "pipeline ": "test_pipeline.py and make demo",
    "quantize ": "test_quantization.py (measures curves, writes and runs the ONNX file)",
    "map run/checkpoint-quantized.onnx": "test_quantization.py (a quantized file, mapped as stored)",
}


def test_every_readme_command_is_run_here_or_named_elsewhere():
    for command in readme_commands():
        assert command.startswith(RUN_HERE) or command.startswith(tuple(RUN_ELSEWHERE)), command
    assert sum(c.startswith(RUN_HERE) for c in readme_commands()) >= 10


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The files the README's commands name, made the way a user would have them."""
    import json

    import torch

    from designer import zoo
    from designer.pruning.curves import Curves, LayerCurve
    from designer.spec import to_tinynas
    from tests.test_mapping import random_dag
    from tests.test_sweep import design_sweep
    folder = tmp_path_factory.mktemp("readme")
    zoo.load("deepmad-r18").save(folder / "my_net.json")
    spec = zoo.load("deepmad-29m-224")
    (folder / "best_structure.txt").write_text(repr({"best_structures": [to_tinynas(spec)], "space_arch": "CnnNet"}))
    layers = [LayerCurve(f"layer{i}", 60_000, 1_000_000, [0.0, 0.5, 0.9], [0.0, 0.1 * (i + 1), 1.0 * (i + 1)])
              for i in range(4)]
    Curves(layers).save(folder / "curves.json")
    (folder / "graph.json").write_text(json.dumps(random_dag(3, n=10, unit=False).to_dict()))
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1)).eval()
    torch.export.save(torch.export.export(module, (torch.randn(1, 3, 16, 16),)), folder / "model.pt2")
    sweep = design_sweep().to_dict()
    (folder / "sweep.json").write_text(json.dumps({**sweep, "time_limit": 10}))
    return folder


@pytest.mark.parametrize("command", [c for c in readme_commands() if c.startswith(RUN_HERE)])
def test_readme_command_runs_as_written(command, workspace, monkeypatch, capsys):
    from designer.cli import main
    monkeypatch.chdir(workspace)
    with pytest.raises(SystemExit) as exit_info:
        main(shlex.split(command))
    assert exit_info.value.code in (0, None), capsys.readouterr().err
