"""Sizes in the units people use (issue 38): one parser behind --scratchpad, --max-activation-bytes
and the files' fields."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from designer.cli import app
from designer.mapping.problem import MappingError, check_scratchpad
from designer.units import parse_bytes

runner = CliRunner()


@pytest.mark.parametrize("text, expected", [
    ("262144", 262144), (262144, 262144), ("2.5e5", 250000), ("256kB", 256000), ("256KB", 256000),
    ("256 KiB", 262144), ("1MB", 10 ** 6), ("1.5MiB", 1572864), ("2GiB", 2 * 1024 ** 3), ("12B", 12),
])
def test_sizes_are_read_with_their_units(text, expected):
    assert parse_bytes(text, "--scratchpad") == expected


@pytest.mark.parametrize("text", ["256 kilobytes", "-1kB", "0", "0.3B", "1.0001B", "", "nan", True])
def test_a_size_that_is_not_one_names_the_option(text):
    with pytest.raises(ValueError, match="--scratchpad"):
        parse_bytes(text, "--scratchpad")


def test_the_scratchpad_takes_units_and_budget_names():
    assert check_scratchpad("256KiB") == 262144 and check_scratchpad("m_r") == "M_R"
    with pytest.raises(MappingError, match="or M_R, M_H, M_P"):
        check_scratchpad("256 parsecs")


def test_the_command_line_reads_units(tmp_path):
    from designer.mapping.core.graph import TensorGraph
    graph = TensorGraph.from_dict({"name": "two", "tensors": {"x": {"bytes": 1000, "producer": None},
                                                              "y": {"bytes": 1000, "producer": "a"},
                                                              "z": {"bytes": 1000, "producer": "b"}},
                                   "operators": {"a": {"inputs": ["x"], "outputs": ["y"]},
                                                 "b": {"inputs": ["y"], "outputs": ["z"]}}})
    path = tmp_path / "g.json"
    path.write_text(__import__("json").dumps(graph.to_dict()))
    result = runner.invoke(app, ["map", str(path), "--scratchpad", "2.5kB", "--json"])
    assert result.exit_code == 0, result.output
    assert __import__("json").loads(result.stdout)["scratchpad_bytes"] == 2500
    result = runner.invoke(app, ["map", str(path), "--scratchpad", "1.5kB"])
    assert result.exit_code != 0 and "below M_R" in result.output and "--tiling auto" in " ".join(result.output.split())


def test_the_design_budget_on_activations_takes_units():
    from designer.design.problem import DesignError, DesignProblem
    assert DesignProblem(max_macs=1e8, max_activation_bytes="256KiB").max_activation_bytes == 262144
    with pytest.raises(DesignError, match="max_activation_bytes"):
        DesignProblem(max_macs=1e8, max_activation_bytes="a lot")
    result = runner.invoke(app, ["design", "--macs", "1e8", "--max-activation-bytes", "12 parsecs"])
    assert result.exit_code == 2 and "--max-activation-bytes: a size such as" in " ".join(result.output.split())
