"""Issue 33: the contracts hold on every path, each enforced in one place.

Nothing the user gave is destroyed (designer.paths + designer.cli.contracts.FILES); a file runs
no code without trust (designer.trust); --time-limit counts from the command's start
(designer.deadline); every option is honoured or refused (designer.cli.contracts.APPLIES);
strict readers; channel pruning refuses what it cannot cut before any curve.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import typer.main
from typer.testing import CliRunner

from designer.cli import app
from designer.cli.contracts import APPLIES, FILES

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
MODEL = "def f():\n    import torch.nn as nn\n    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))\n"


def invoke(*words: str):
    return runner.invoke(app, [str(w) for w in words])


def one_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "m.py"
    path.write_text(MODEL)
    return path


# --- nothing the user gave is destroyed -------------------------------------------------------
@pytest.mark.parametrize("extra, option", [
    (["--out", "{m}"], "--out"), (["--save-graph", "{m}"], "--save-graph"),
    (["--curve", "min:M_P", "--out", "{m}"], "--out"), (["--plot", "{link}"], "--plot"),
    (["--out", "{hard}"], "--out"),
])
def test_an_output_never_replaces_the_model_it_reads(model_file, tmp_path, extra, option):
    (tmp_path / "link.png").symlink_to(model_file)
    os.link(model_file, tmp_path / "hard.json")
    words = [w.format(m=model_file, link=tmp_path / "link.png", hard=tmp_path / "hard.json") for w in extra]
    line = one_error(invoke("map", "--model", f"{model_file}:f", "--input-shape", "1,3,16,16", *words))
    assert line.startswith(f"error: {option}:") and "--model" in line and "never replaces an input" in line
    assert model_file.read_text() == MODEL


def test_two_outputs_naming_one_file_are_refused(model_file, tmp_path):
    line = one_error(invoke("map", "--model", f"{model_file}:f", "--input-shape", "1,3,16,16",
                            "--out", tmp_path / "a.json", "--save-graph", tmp_path / "a.json"))
    assert "--save-graph" in line and "--out" in line and "one would replace the other" in line


def test_prune_refuses_its_inputs_as_outputs(tmp_path, model_file):
    checkpoint = tmp_path / "ck.pt"
    checkpoint.write_bytes(b"not read")
    line = one_error(invoke("prune", checkpoint, "--sparsity", "0.5", "--save-curves", checkpoint))
    assert line.startswith("error: --save-curves:") and "CHECKPOINT" in line
    line = one_error(invoke("prune", "--model", f"{model_file}:f", "--input-shape", "1,3,16,16", "--dataset",
                            "shapes", "--sparsity", "0.5", "--out", model_file))
    assert line.startswith("error: --out:") and "--model" in line
    line = one_error(invoke("prune", checkpoint, "--sparsity", "0.5", "--save-curves", tmp_path / "x.pt",
                            "--out", tmp_path / "x.pt"))
    assert "--out" in line and "--save-curves" in line
    assert checkpoint.read_bytes() == b"not read" and model_file.read_text() == MODEL


def test_sweep_and_pt2_outputs_never_replace_inputs(tmp_path):
    sweep = tmp_path / "s.json"
    sweep.write_text('{"kind": "design", "base": {}}')
    assert one_error(invoke("sweep", sweep, "--out", sweep)).startswith("error: --out:")
    archive = tmp_path / "x.pt2"
    archive.write_bytes(b"never unpickled")
    assert one_error(invoke("map", archive, "--trust", "--out", archive)).startswith("error: --out:")
    assert sweep.read_text() == '{"kind": "design", "base": {}}' and archive.read_bytes() == b"never unpickled"


def test_a_mapping_may_replace_the_graph_it_reads_and_says_so(model_file, tmp_path):
    graph = tmp_path / "g.json"
    assert invoke("map", "--model", f"{model_file}:f", "--input-shape", "1,3,16,16", "--save-graph",
                  graph).exit_code == 0
    result = invoke("map", graph, "--out", graph, "--time-limit", "5")
    assert result.exit_code == 0, result.output
    assert "--out: replaces" in " ".join(result.output.split())
    assert "steps" in json.loads(graph.read_text())


def test_a_failed_write_names_the_path_and_the_errno_and_leaves_nothing(tmp_path):
    """A file-size limit makes the write fail as a full disk does: one line, no temporary file."""
    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))

    (tmp_path / "m.py").write_text(MODEL)
    out = tmp_path / "mapping.json"
    done = subprocess.run([sys.executable, "-m", "designer.cli", "map", "--model", f"{tmp_path / 'm.py'}:f",
                           "--input-shape", "1,3,16,16", "--time-limit", "5", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, preexec_fn=limited, timeout=300)
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert str(out) in lines[0] and "errno 27" in lines[0] and "a bug" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]


def test_torch_files_get_the_errno_too(tmp_path):
    code = ("import resource, signal, torch\n"
            "from designer import files\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (10000, 10000))\n"
            f"files.save_torch({{'w': torch.zeros(100000)}}, {str(tmp_path / 'c.pt')!r})\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "OutputError" in done.stderr and "errno 27" in done.stderr and "enforce fail" not in done.stderr
    assert list(tmp_path.iterdir()) == []


# --- a file runs no code unless the user said so, in the API too ---------------------------------
def test_a_pt2_never_loads_without_trust_in_the_api(tmp_path, monkeypatch):
    """torch.export.load (which unpickles) is never reached without trust=True: a stand-in
    records every call, so a path that skipped the check would show here."""
    from designer.mapping import Source, load
    archive = tmp_path / "evil.pt2"
    archive.write_bytes(b"PK")
    opened = []
    monkeypatch.setattr(torch.export, "load", lambda *args, **kwargs: opened.append(args))
    with pytest.raises(ValueError, match="--trust: .*evil.pt2"):
        Source(path=archive).load()  # load() without check(): the check is where the file opens
    with pytest.raises(ValueError, match="trust: must be True or False"):
        load(str(archive), trust="no")
    with pytest.raises(ValueError, match="trust: must be True or False"):
        Source(path=archive, trust=1).load()
    assert opened == []
    with pytest.raises(Exception):  # noqa: B017 - trusted: the stand-in is reached (and returns nothing usable)
        Source(path=archive, trust=True).load()
    assert len(opened) == 1


def test_every_torch_load_of_a_pickle_checks_trust_first():
    """Structure: the one ``torch.export.load`` sits right after :func:`require_trust`; every
    ``torch.load`` reads with ``weights_only=True``."""
    for path in (ROOT / "designer").rglob("*.py"):
        text = path.read_text()
        for index in [i for i in range(len(text)) if text.startswith("torch.export.load(", i)]:
            assert "require_trust(" in text[max(0, index - 300):index], path
        for index in [i for i in range(len(text)) if text.startswith("torch.load(", i)]:
            assert "weights_only=True" in text[index:index + 120], path
        assert "pickle.load" not in text and "weights_only=False" not in text, path


# --- --time-limit counts from the command's start -----------------------------------------------
def test_the_untiled_solve_gets_what_the_capture_left(model_file, monkeypatch):
    import time

    from designer.mapping import MappingProblem, Source
    loaded = Source.load
    seen = {}

    def slow_load(self):
        time.sleep(2.0)
        return loaded(self)

    original = MappingProblem.__init__

    def spy(self, *args, **kwargs):
        seen["time_limit"] = kwargs["time_limit"]
        original(self, *args, **kwargs)

    monkeypatch.setattr(Source, "load", slow_load)
    monkeypatch.setattr(MappingProblem, "__init__", spy)
    result = invoke("map", "--model", f"{model_file}:f", "--input-shape", "1,3,16,16", "--time-limit", "10")
    assert result.exit_code == 0, result.output
    assert seen["time_limit"] <= 8.0


def test_curve_points_beyond_the_time_limit_are_refused_by_name(model_file):
    line = one_error(invoke("map", "--model", f"{model_file}:f", "--input-shape", "1,3,16,16", "--curve", "min:M_P",
                            "--points", "1000", "--time-limit", "20"))
    assert line.startswith("error: --points:") and "at most 20" in line


# --- every option is honoured or refused --------------------------------------------------------
@pytest.mark.parametrize("extra, refused", [
    (["--tiling", "auto", "--no-fuse"], "--no-fuse"), (["--curve", "min:M_P", "--save-graph", "g.json"],
                                                        "--save-graph"),
    (["--max-extra-macs", "0.1"], "--max-extra-macs"), (["--tiling", "auto", "--max-reloads", "1"], "--max-reloads"),
    (["--points", "4"], "--points"), (["--curve", "min:M_P", "--tiling", "auto"], "--tiling"),
    (["--curve", "min:M_P", "--scratchpad", "M_R"], "--scratchpad"), (["--tiling", "auto", "--start", "s.json"],
                                                                      "--start"),
])
def test_an_option_the_path_ignores_is_refused_by_name(model_file, tmp_path, extra, refused):
    words = [str(tmp_path / w) if w.endswith(".json") else w for w in extra]
    line = one_error(invoke("map", "--model", f"{model_file}:f", "--input-shape", "1,3,16,16", *words))
    assert line.startswith(f"error: {refused}: applies only with")


def test_tiling_errors_name_the_options_the_user_typed(model_file):
    line = one_error(invoke("map", "--model", f"{model_file}:f", "--input-shape", "1,3,16,16", "--curve", "0:M_P"))
    assert line.startswith("error: --curve: an end") and "scratchpad" not in line.replace("--curve", "")
    result = invoke("map", "--model", f"{model_file}:f", "--input-shape", "1,3,16,16", "--tiling", "auto",
                    "--max-extra-macs", "0", "--scratchpad", "100")
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "--max-extra-macs" in text and "without that cap" in text


def test_the_tiled_path_honours_bytes_per_element_and_save_graph(model_file, tmp_path):
    result = invoke("map", "--model", f"{model_file}:f", "--input-shape", "1,3,16,16", "--tiling", "auto",
                    "--bytes-per-element", "4", "--save-graph", tmp_path / "g.json", "--time-limit", "10", "--json")
    assert result.exit_code == 0, result.output
    graph = json.loads((tmp_path / "g.json").read_text())
    one = invoke("map", "--model", f"{model_file}:f", "--input-shape", "1,3,16,16", "--tiling", "auto",
                 "--save-graph", tmp_path / "g1.json", "--time-limit", "10")
    assert one.exit_code == 0, one.output
    single = json.loads((tmp_path / "g1.json").read_text())
    assert sum(t["bytes"] for t in graph["tensors"].values()) == 4 * sum(t["bytes"] for t in
                                                                          single["tensors"].values())


def test_the_tables_cover_every_option_of_every_command():
    """APPLIES names each parameter of each command (so a new option must say where it
    applies), FILES only real ones; a file-naming option is declared in FILES."""
    import inspect
    group = typer.main.get_command(app)
    assert set(APPLIES) == set(group.commands) == set(FILES)
    annotations = {info.name or info.callback.__name__: inspect.signature(info.callback).parameters
                   for info in app.registered_commands}
    naming_files = {name: {p for p, spec in parameters.items() if "Path" in str(spec.annotation)}
                    for name, parameters in annotations.items()}
    assert naming_files["map"] >= {"graph", "out", "start"}  # the annotations are read: the check below bites
    for name, command in group.commands.items():
        params = {p.name for p in command.params if p.name != "help"}
        assert params == set(APPLIES[name]), name
        declared = set(FILES[name].inputs) | set(FILES[name].outputs) | set(FILES[name].folders)
        assert declared <= params, name
        help_text = runner.invoke(app, [name, "--help"], env={"COLUMNS": "400"}).output
        for param in command.params:
            if param.name != "help" and getattr(param, "opts", None) and param.opts[0].startswith("--") \
                    and not param.hidden:
                assert param.opts[0] in help_text, (name, param.opts[0])
            if param.name in naming_files[name] or param.name in ("model_ref", "dataset", "spec"):
                assert param.name in declared, (name, param.name)


def test_an_option_given_twice_is_refused():
    line = one_error(invoke("design", "--family", "basic", "--family", "bottleneck"))
    assert "--family: given 2 times" in line and "comma-separated" in line
    line = one_error(invoke("map", "x.json", "--fuse", "--no-fuse"))
    assert "given 2 times" in line


# --- strict readers ------------------------------------------------------------------------------
def test_a_boolean_format_version_and_a_duplicate_key_are_refused(tmp_path):
    from designer.mapping.core.io import Mapping
    path = tmp_path / "m.json"
    path.write_text('{"format_version": true, "scratchpad_bytes": 1, "steps": []}')
    with pytest.raises(ValueError, match="format_version True"):
        Mapping.load(path)
    path.write_text('{"format_version": 1, "scratchpad_bytes": 1, "scratchpad_bytes": 2, "steps": []}')
    with pytest.raises(ValueError, match="appears twice"):
        Mapping.load(path)


def test_every_json_reader_is_strict(tmp_path):
    """One parser (designer.checks.parse_json) behind every reader: a spec with a key twice too."""
    from designer.spec import NetworkSpec, SpecError
    path = tmp_path / "spec.json"
    path.write_text('{"resolution": 32, "resolution": 64, "stem": {"out": 8}, "stages": []}')
    with pytest.raises(SpecError, match="'resolution' appears twice"):
        NetworkSpec.load(path)
    for source in (ROOT / "designer").rglob("*.py"):
        if source.name != "checks.py":
            assert "json.loads(" not in source.read_text() and "json.load(" not in source.read_text(), source


def test_a_start_of_another_graph_is_one_clear_error(model_file, tmp_path):
    other = tmp_path / "o.py"
    other.write_text(MODEL.replace("nn.Conv2d(8, 4, 3))", "nn.Conv2d(8, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1))"))
    assert invoke("map", "--model", f"{other}:f", "--input-shape", "1,3,16,16", "--out", tmp_path / "o.json",
                  "--time-limit", "5").exit_code == 0
    line = one_error(invoke("map", "--model", f"{model_file}:f", "--input-shape", "1,3,16,16", "--start",
                            tmp_path / "o.json"))
    assert line.startswith("error: --start: not a mapping of") and "KeyError" not in line


def test_allocate_table_shows_layer_names_escaped(tmp_path):
    from designer.pruning.curves import Curves, LayerCurve
    curves = Curves([LayerCurve("evil\x1b[31m\u202e", 10, 10, [0.0, 0.5], [0.0, 1.0])])
    curves.save(tmp_path / "c.json")
    result = invoke("allocate", tmp_path / "c.json", "--sparsity", "0.5", "--table")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\u202e" not in result.output and "\\x1b[31m\\u202e" in result.output


# --- sweeps: every point checked before any runs; rows from workers are data ---------------------
@pytest.fixture
def graph_file(model_file, tmp_path) -> Path:
    path = tmp_path / "g.json"
    assert invoke("map", "--model", f"{model_file}:f", "--input-shape", "1,3,16,16", "--save-graph",
                  path).exit_code == 0
    return path


@pytest.mark.parametrize("base, grid, message", [
    ({}, {"objective": ["offchip", "DRAM"]}, "objective: must be one of offchip, dram, got 'DRAM'"),
    ({"weights": "no"}, {}, "base.weights: must be true or false"),
    ({"max_reloads": -4}, {}, "base.max_reloads: must be at least 0"),
])
def test_a_sweep_point_that_is_no_problem_is_refused_before_any_runs(graph_file, tmp_path, base, grid, message):
    sweep = tmp_path / "s.json"
    sweep.write_text(json.dumps({"kind": "mapping", "time_limit": 2, "base": {"graph": str(graph_file), **base},
                                 "grid": grid}))
    line = one_error(invoke("sweep", sweep, "--scheduler", "serial"))
    assert message in line


def test_a_workers_row_that_is_no_row_becomes_an_error_row(graph_file, monkeypatch):
    import designer.sweep as sweep_module
    from designer.sweep import Sweep, run_sweep
    sweep = Sweep("mapping", {"graph": str(graph_file)}, {"scratchpad": ["M_R", "M_P"]}, time_limit=2)

    def rigged(function, tasks, **options):
        return [{"point": tasks[0]["point"], "status": 7}, "not a row"]

    monkeypatch.setattr(sweep_module, "run_all", rigged)
    rows = run_sweep(sweep, scheduler="serial")
    assert [row["status"] for row in rows] == ["error", "error"]
    assert "not a mapping sweep row" in rows[0]["message"] and "another point" in rows[1]["message"]


# --- load_pruned: a wrong call is a ValueError naming what differs --------------------------------
def _pruned_file(tmp_path, **changes) -> Path:
    from designer.pruning.pruned_file import save_pruned
    from tests.models.contracts import tied
    path = tmp_path / "p.pt"
    save_pruned(tied(), path)
    data = torch.load(path, weights_only=True)
    for name, shape in changes.items():
        data["structure"][name] = shape
    torch.save(data, path)
    return path


@pytest.mark.parametrize("changes, factory, message", [
    ({}, "tests/models/cifar.py:small_residual", "does not fit this factory's model"),
    ({"encode": {"kind": "linear", "in_features": 8, "out_features": 10 ** 9}}, None, "not a pruned size"),
    ({"encode": {"kind": "conv2d", "in_channels": 8, "out_channels": 8, "groups": 1}}, None, "records a conv2d"),
    ({"nowhere": {"kind": "linear", "in_features": 1, "out_features": 1}}, None, "does not have"),
    ({"encode": {"kind": "linear", "in_features": 0, "out_features": 8}}, None, "not a pruned size"),
    ({"encode": "tampered"}, None, "not a layer shape"),
])
def test_load_pruned_names_what_differs(tmp_path, changes, factory, message):
    from designer.pruning import load_pruned
    with pytest.raises(ValueError, match=message):
        load_pruned(factory or "tests/models/contracts.py:tied", _pruned_file(tmp_path, **changes))


def test_tied_weights_are_counted_once_and_stay_tied(tmp_path):
    from designer.pruning import load_pruned
    from designer.pruning.apply import apply_sparsity, make_permanent, model_sparsity, total_sparsity
    from designer.pruning.curves import prunable_layers
    from designer.pruning.pruned_file import save_pruned
    from tests.models.contracts import tied
    model = tied()
    names = [name for name, _ in prunable_layers(model)]
    assert "decode" not in names and "encode" in names
    apply_sparsity(model, {"encode": 0.5})
    make_permanent(model)
    assert model.decode.weight is model.encode.weight and total_sparsity(model) > 0
    zeros, parameters = model_sparsity(model)
    assert parameters == sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    save_pruned(model, tmp_path / "t.pt")
    loaded = load_pruned("tests/models/contracts.py:tied", tmp_path / "t.pt")
    assert loaded.decode.weight is loaded.encode.weight


# --- channel pruning refuses what it cannot cut, before any curve --------------------------------
@pytest.mark.parametrize("factory, message", [
    ("tests/models/contracts.py:grouped_conv", "grouped is a grouped convolution"),
    ("tests/models/contracts.py:stored_width", "a copy with fewer channels fails to run"),
    ("tests/models/unusable.py:attention", "--mode channels: .*use --mode weights"),
])
def test_channel_pruning_refuses_before_the_curves(factory, message, monkeypatch):
    import designer.pruning.groups as groups
    from designer.user_model import build_user_model
    monkeypatch.setattr(groups, "group_curves", lambda *a, **k: pytest.fail("curves measured before the refusal"))
    model = build_user_model(factory).eval()
    with pytest.raises(ValueError, match=message):
        groups.prune_channels(model, torch.zeros(1, 3, 32, 32), torch.randn(4, 3, 32, 32), max_params=1e9)


def test_a_budget_below_the_smallest_reachable_names_it():
    from designer.pruning.groups import prune_channels
    from designer.user_model import build_user_model
    model = build_user_model("tests/models/cifar.py:small_residual").eval()
    with pytest.raises(ValueError, match=r"--keep-macs: .* at least 0\.\d{4}"):
        prune_channels(model, torch.zeros(1, 1, 8, 8), torch.randn(4, 1, 8, 8), max_macs=1.0)


def test_weights_mode_reports_the_whole_model_and_what_it_left_out():
    from designer.pruning.apply import left_out
    from tests.models.torchvision_like import tiny_vit
    reasons = left_out(tiny_vit())
    assert any("MultiheadAttention" in reason for reason in reasons.values())
    assert any("normalisation" in reason for reason in reasons.values())


# --- threads for the machine the command finds ---------------------------------------------------
def test_threads_follow_the_request_then_omp_then_the_free_cores(monkeypatch):
    from designer import threads
    assert threads.choose_threads(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.choose_threads(0) == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda seconds=0.1: 1.0)
    assert threads.choose_threads(0) == 1
    monkeypatch.setattr(threads, "busy_cores", lambda seconds=0.1: 0.0)
    assert threads.choose_threads(0) == 2


def test_weights_pruning_of_a_vit_says_how_sparse_the_whole_model_is(tmp_path):
    """The ViT's attention is left whole: the line gives both sparsities and what was left out,
    and an estimate of the job comes before it."""
    result = runner.invoke(app, ["prune", "--model", "tests/models/contracts.py:small_vit", "--input-shape",
                                 "1,3,32,32", "--dataset", "shapes", "--sparsity", "0.9", "--grid", "11",
                                 "--finetune-epochs", "0", "--out", str(tmp_path / "p.pt")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "estimate: about" in text
    assert "sparsity 0.9" in text and "of the prunable weights" in text and "of all" in text
    assert "nn.MultiheadAttention reads its projections directly" in text
    whole = float(text.split(" of all ")[0].rsplit(" ", 1)[-1])
    assert whole < 0.9


def test_a_stage_whose_model_would_outlast_the_limit_is_not_started(monkeypatch):
    """A stage builds its model before any time limit can stop it: with less time left than the
    baselines took, the bounds, plans and the strategy are skipped and the message says so."""
    import time

    import designer.mapping.stages as solve_module
    from designer.mapping import MappingProblem, solve
    from tests.test_mapping import random_dag
    found = solve_module.baselines

    def slow(problem):
        time.sleep(1.0)
        return found(problem)

    graph = random_dag(3, n=12, unit=False)
    problem = MappingProblem(graph, "M_R", time_limit=1.2)
    monkeypatch.setattr(solve_module, "baselines", slow)
    result = solve(problem)
    assert result.mapping is not None and result.replay.valid
    assert "cpsat: not run" in result.solve.message


@pytest.mark.parametrize("make, message", [
    (lambda path: path.write_bytes(b"not torch"), "not a file torch can read"),
    (lambda path: torch.save({"state_dict": {}}, path), "not a pruned-model file"),
    (lambda path: None, "no such file"),
])
def test_load_pruned_refuses_files_that_are_not_its_own(tmp_path, make, message):
    from designer.pruning import load_pruned
    make(tmp_path / "p.pt")
    with pytest.raises(ValueError, match=message):
        load_pruned("tests/models/contracts.py:tied", tmp_path / "p.pt")


def test_load_pruned_refuses_groups_that_would_divide_by_zero(tmp_path):
    from designer.pruning import load_pruned
    path = _pruned_file(tmp_path, stem={"kind": "conv2d", "in_channels": 3, "out_channels": 8, "groups": 0})
    with pytest.raises(ValueError, match=r"stem.groups: 0 is not a pruned size"):
        load_pruned("tests/models/contracts.py:tied", path)
    with pytest.raises(ValueError, match="returned a int"):
        load_pruned(lambda: 3, path)


def test_mp_of_mobilenet_v2s_training_graph_is_proven_by_work_not_by_the_clock():
    """Issue 33: the fixed work limit stopped this search unproven at 20,751,080; sized to the
    graph it ends by proof (work-limited: the same on every machine; the wall limit is slack)."""
    from designer.mapping import load
    from designer.mapping.problem import budget_work, budgets
    graph = load("tests/models/torchvision_like.py:mobilenet_v2", input_shape="1,3,224,224", training=True)
    assert budget_work(graph) > 2.0
    limits = budgets(graph, time_limit=120)
    assert limits.peak_proven and limits.peak == 19_827_240
