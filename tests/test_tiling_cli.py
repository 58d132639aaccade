"""`mpdesign map --tiling` and `--curve` as a user runs them (issue 25)."""

from __future__ import annotations

import json

import pytest

from designer.cli import main

MODEL = "tests/models/torchvision_like.py:tiny_residual_stem"


def run(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_map_below_m_r_with_tiling_auto(capsys, tmp_path):
    code, out, err = run(["map", "--model", MODEL, "--input-shape", "3,32,32", "--json", "--time-limit", "10",
                          "--scratchpad", "M_R"], capsys)
    untiled = json.loads(out)["budgets"]["M_R"]
    code, out, err = run(["map", "--model", MODEL, "--input-shape", "3,32,32", "--tiling", "auto", "--json",
                          "--scratchpad", str(untiled // 2), "--time-limit", "20", "--out", str(tmp_path / "m.json")],
                         capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["valid"] and data["scratchpad_bytes"] == untiled // 2 and data["tiling"]["k"] >= 2
    assert data["tiling"]["max_abs_difference"] <= 1e-5 and data["tiling"]["extra_macs"] >= 0
    assert (tmp_path / "m.json").is_file()


def test_map_curve_writes_its_table_and_plot(capsys, tmp_path):
    code, out, err = run(["map", "--model", MODEL, "--input-shape", "3,32,32", "--curve", "min:M_P", "--points", "3",
                          "--time-limit", "20", "--out", str(tmp_path / "curve.json"),
                          "--plot", str(tmp_path / "curve.png")], capsys)
    assert code == 0, err
    rows = json.loads((tmp_path / "curve.json").read_text())["points"]
    values = [r["objective"] for r in rows]
    assert len(rows) == 3 and all(a >= b for a, b in zip(values, values[1:])) and all(r["valid"] for r in rows)
    assert (tmp_path / "curve.png").stat().st_size > 0


@pytest.mark.parametrize("extra, words", [
    (["--tiling", "sideways"], "--tiling: none, auto or CUT:K"),
    (["--tiling", "auto", "--training"], "--training: applies only with an untiled map"),
    (["--tiling", "auto", "--order", "given"], "--order: applies only with an untiled map"),
    (["--curve", "min"], "--curve: LO:HI"),
    (["--tiling", "auto", "--max-extra-macs", "-1"], "--max-extra-macs"),
    (["--tiling", "nowhere:2", "--scratchpad", "100000"], "nowhere cannot end a tiled prefix; these can:"),
    (["--tiling", "auto", "--scratchpad", "10"], "is below the smallest footprint any tiling reaches"),
])
def test_bad_tiling_input_is_one_clear_error(extra, words, capsys):
    code, out, err = run(["map", "--model", MODEL, "--input-shape", "3,32,32", "--time-limit", "10", *extra], capsys)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(" ")]
    assert code == 2 and lines[-1].startswith("error: ") and words in " ".join(err.split()), err


def test_a_graph_file_cannot_be_tiled(capsys, tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"tensors": {"x": {"bytes": 4, "producer": None}, "y": {"bytes": 4, "producer": "a"}},
                                "operators": {"a": {"inputs": ["x"], "outputs": ["y"]}}}))
    code, out, err = run(["map", str(path), "--tiling", "auto"], capsys)
    assert code == 2 and "a graph file has no layers to tile" in err
