"""train -> prune (weights and channels) -> allocate through the command line."""

import json

import pytest
from typer.testing import CliRunner

from designer.checkpoint import load_checkpoint
from designer.costs import count
from designer.pruning.apply import total_sparsity
from tests.conftest import train_digits_checkpoint

runner = CliRunner()

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return train_digits_checkpoint(tmp_path_factory)


def test_prune_weights_one_shot(checkpoint, tmp_path):
    from designer.cli import app
    out = tmp_path / "pruned.pt"
    result = runner.invoke(app, ["prune", str(checkpoint), "--sparsity", "0.7", "--schedule", "one-shot",
                                 "--grid", "11", "--curve-points", "5", "--correction-rounds", "2",
                                 "--calibration", "64",
                                 "--finetune-epochs", "0", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    model, metadata = load_checkpoint(out)
    assert total_sparsity(model) == pytest.approx(summary["sparsity"]) == pytest.approx(0.7, abs=0.02)
    assert metadata["pruning"]["method"] == "rd"
    last = summary["rounds"][-1]  # the correction loop measured what it kept
    assert last["measured_distortion"] is not None and last["measured_distortion"] >= 0


def test_prune_channels_gives_a_smaller_network(checkpoint, tmp_path):
    from designer.cli import app
    out = tmp_path / "small.pt"
    result = runner.invoke(app, ["prune", str(checkpoint), "--mode", "channels", "--keep-macs", "0.6",
                                 "--calibration", "64", "--finetune-epochs", "0", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    model, _ = load_checkpoint(out)
    assert count(model.spec).macs == summary["macs"] <= 0.6 * summary["macs_dense"]
    assert sum(p.numel() for p in model.parameters()) == summary["params"]
    from designer.schemas import ChannelReport
    ChannelReport.model_validate(summary)


def test_prune_errors_are_clear(checkpoint):
    from designer.cli import app
    result = runner.invoke(app, ["prune", str(checkpoint), "--keep-macs", "0.5", "--method", "lamp"])
    assert result.exit_code == 2 and "only the rd methods allocate under a MACs budget" in result.output
    result = runner.invoke(app, ["prune", str(checkpoint), "--sparsity", "0.5", "--curve-points", "1"])
    assert result.exit_code == 2 and "--curve-points" in result.output and "at least 2" in result.output
    result = runner.invoke(app, ["prune", str(checkpoint), "--sparsity", "0.5", "--method", "lamp",
                                 "--curve-points", "5"])
    assert result.exit_code == 2 and "--curve-points: applies only with --mode weights with an rd method" in result.output
    result = runner.invoke(app, ["prune", str(checkpoint), "--mode", "channels", "--keep-macs", "0.5",
                                 "--criterion", "obs"])
    assert result.exit_code == 2 and "--criterion: applies only with --mode weights, or --mode channels with --model" \
        in " ".join(result.output.split())
    result = runner.invoke(app, ["prune", str(checkpoint), "--sparsity", "0.5", "--scheduler", "nowhere"])
    assert result.exit_code == 2 and "--scheduler: expected serial, local or an address" in result.output
    result = runner.invoke(app, ["prune", "missing.pt", "--sparsity", "0.5"])
    assert result.exit_code == 2 and "no such checkpoint" in result.output


def test_allocate_prints_the_documented_json(tmp_path):
    from designer.cli import app
    from designer.pruning.curves import Curves, LayerCurve
    curves = Curves([LayerCurve("a", 100, 1000, [0.0, 0.5, 0.9], [0.0, 0.1, 0.5]),
                     LayerCurve("b", 300, 300, [0.0, 0.5, 0.9], [0.0, 0.01, 0.2])])
    path = tmp_path / "curves.json"
    curves.save(path)
    result = runner.invoke(app, ["allocate", str(path), "--sparsity", "0.5"])  # 200 of the 400 weights kept
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"format_version", "sparsity", "distortion", "kept_weights", "kept_macs"}
    assert payload["sparsity"] == {"a": 0.5, "b": 0.5} and payload["kept_weights"] <= 200
    bad = runner.invoke(app, ["allocate", str(path), "--sparsity", "0.99"])  # 4 weights: below the 10% floor
    assert bad.exit_code == 2 and "below" in bad.output


def test_prune_saves_the_curves_allocate_reads(checkpoint, tmp_path):
    """Issue 23: `prune --save-curves` writes what `allocate` reads, a documented payload."""
    from designer.cli import app
    from designer.schemas import CurvesFile
    curves = tmp_path / "curves.json"
    result = runner.invoke(app, ["prune", str(checkpoint), "--sparsity", "0.5", "--schedule", "one-shot",
                                 "--grid", "6", "--calibration", "32", "--finetune-epochs", "0",
                                 "--out", str(tmp_path / "p.pt"), "--save-curves", str(curves), "--json"])
    assert result.exit_code == 0, result.output
    from designer.schemas import AllocationReport, PruneReport
    PruneReport.model_validate(json.loads(result.stdout))  # documented; no printed sentence ("line") in it
    CurvesFile.model_validate(json.loads(curves.read_text()))
    allocated = runner.invoke(app, ["allocate", str(curves), "--sparsity", "0.5"])
    assert allocated.exit_code == 0, allocated.output
    AllocationReport.model_validate(json.loads(allocated.stdout))
    refused = runner.invoke(app, ["prune", str(checkpoint), "--sparsity", "0.5", "--method", "lamp",
                                  "--save-curves", str(tmp_path / "c.json")])
    assert refused.exit_code == 2 and "--save-curves: applies only with --mode weights with an rd method" in refused.output
