import json

from typer.testing import CliRunner

from designer.cli import app
from tests.test_spec import R50_TINYNAS

runner = CliRunner()


def test_inspect_json_on_released_r50_tinynas_file(tmp_path):
    path = tmp_path / "deepmad_r50.txt"
    path.write_text(R50_TINYNAS)
    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["layers"] == 157
    assert round(report["effectiveness"], 3) == 0.300
    assert abs(report["deepmad_score"] - 48919) < 1
    assert round(report["macs"] / 1e9, 2) == 4.04
    assert report["params"] == report["conv_weights"] + report["batchnorm_params"] + report["classifier_params"]


def test_inspect_table_on_builtin_spec():
    result = runner.invoke(app, ["inspect", "deepmad-r50"])
    assert result.exit_code == 0, result.output
    assert "48919.28" in result.output and "157" in result.output


def test_inspect_spec_json_file(tmp_path):
    from designer import zoo
    path = tmp_path / "spec.json"
    zoo.load("tiny-cifar").save(path)
    result = runner.invoke(app, ["inspect", str(path), "--alpha", "1,1,4", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["name"] == "tiny-cifar"


def test_inspect_errors_are_one_clear_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"resolution": 32, "stem": {"out": 8}, "stages": [{"family": "basic", "out": 8, '
                   '"btn": 8, "k": 3, "L": 0}]}')
    result = runner.invoke(app, ["inspect", str(bad)])
    assert result.exit_code == 2
    assert "stages[0].L: must be a positive integer, got 0" in result.output
    assert "Traceback" not in result.output
    missing = runner.invoke(app, ["inspect", "no-such-net"])
    assert missing.exit_code == 2 and "built-in spec" in missing.output
    alpha = runner.invoke(app, ["inspect", "tiny-cifar", "--alpha", "1,1"])
    assert alpha.exit_code == 2 and "3 scoring stages" in alpha.output


def test_inspect_a_users_model_counts_params_and_macs_per_module(capsys):
    """Issue 23: `inspect --model` as fvcore/ptflops users expect, counted by FlopCounterMode."""
    import pytest

    from designer.cli import main
    from tests.models.cifar import tv_resnet18
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect", "--model", "tests/models/cifar.py:tv_resnet18", "--input-shape", "3,224,224", "--depth", "1",
              "--json"])
    assert exit_info.value.code in (0, None)
    report = json.loads(capsys.readouterr().out)
    from designer.schemas import ModelInspection
    ModelInspection.model_validate(report)
    assert report["params"] == sum(p.numel() for p in tv_resnet18().parameters()) == 11_689_512
    assert report["macs"] == 1_814_073_344  # torchvision's 1.82 GFLOPs (MACs) for resnet18 at 224
    rows = {row["module"]: row for row in report["modules"]}
    assert rows["conv1"]["macs"] == 64 * 3 * 7 * 7 * 112 * 112 and rows["fc"]["macs"] == 512 * 1000
    assert sum(row["macs"] for row in report["modules"]) == report["macs"]  # depth 1: the children cover it
