"""Every documented payload validates against its model with unknown keys forbidden (issue 23):
a key added to a payload without its model fails here."""

from __future__ import annotations

import json

import pytest

from designer.cli import main
from designer.mapping.core.io import Mapping
from designer.schemas import FORMAT_VERSION, PAYLOADS, MappingFile, MapReport, TrafficCurve, schema

MODEL = ["--model", "tests/models/torchvision_like.py:tiny_residual_stem", "--input-shape", "3,32,32"]


def run(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    assert exit_info.value.code in (0, None), captured.err
    return captured.out


@pytest.mark.parametrize("extra", [["--objective", "dram", "--weights"], ["--tiling", "auto"]])
def test_map_json_and_the_mapping_file_are_documented(extra, capsys, tmp_path):
    out = run(["map", *MODEL, "--scratchpad", "M_R", "--time-limit", "10", "--json", "--out",
               str(tmp_path / "m.json"), *extra], capsys)
    report = MapReport.model_validate(json.loads(out))
    assert report.format_version == FORMAT_VERSION and report.valid
    mapping = MappingFile.model_validate(json.loads((tmp_path / "m.json").read_text()))
    assert mapping.scratchpad_bytes == report.scratchpad_bytes


def test_the_curve_table_is_documented(capsys, tmp_path):
    run(["map", *MODEL, "--curve", "min:M_R", "--points", "2", "--time-limit", "10", "--out",
         str(tmp_path / "c.json")], capsys)
    assert len(TrafficCurve.model_validate(json.loads((tmp_path / "c.json").read_text())).points) == 2


def test_a_newer_format_is_refused_by_name(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"format_version": FORMAT_VERSION + 1, "scratchpad_bytes": 1, "steps": []}))
    with pytest.raises(ValueError, match=f"format_version {FORMAT_VERSION + 1}; this mpdesign reads"):
        Mapping.load(path)


def test_the_schema_command_prints_every_payload(capsys):
    from designer.cli.schema import PAYLOAD_NAMES
    assert set(PAYLOAD_NAMES) == set(PAYLOADS)
    for name in PAYLOAD_NAMES:
        printed = json.loads(run(["schema", name], capsys))
        assert printed == schema(name) and printed["additionalProperties"] is False


def test_design_json_is_documented(capsys):
    from designer.schemas import DesignReport
    out = run(["design", "--macs", "4.04e9", "--params", "25.4e6", "--effectiveness", "0.3", "--time-limit", "2",
               "--json"], capsys)
    report = DesignReport.model_validate(json.loads(out))
    assert report.spec is not None and report.format_version == FORMAT_VERSION


@pytest.mark.parametrize("spec", ["deepmad-r50", "resnet18"])
def test_inspect_json_is_documented(spec, capsys):
    from designer.schemas import SpecInspection
    report = SpecInspection.model_validate(json.loads(run(["inspect", spec, "--json"], capsys)))
    # every key typed and none unknown (the figures themselves are checked in test_costs)
    assert report.format_version == FORMAT_VERSION and report.layer_table and report.scoring_stages


def test_a_design_from_the_constructive_start_alone_is_documented_too():
    """On a busy machine a 2-s design can come from the constructive start, with no solver model
    (model_size {}): found by running `make test` beside two busy processes."""
    from designer.schemas import ModelSize
    assert ModelSize.model_validate({}).variables is None
