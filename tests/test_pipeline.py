"""The whole job end to end on tiny settings: every step's output exists and checks out."""

import json

from designer.checkpoint import load_checkpoint
from designer.costs import count
from designer.mapping.graph import TensorGraph
from designer.mapping.simulate import simulate
from designer.pipeline import PipelineConfig, run_pipeline
from designer.pruning.apply import total_sparsity


def test_pipeline_end_to_end(tmp_path):
    config = PipelineConfig(design_seconds=5, epochs=1, sparsity=0.3, prune_grid=6, calibration=32, map_seconds=5)
    figures = run_pipeline(config, tmp_path, log=lambda _: None)
    for name in ("report.md", "design.json", "checkpoint.pt", "pruned.pt", "mapping.json", "training.png",
                 "entropy.png", "rd_curves.png", "layout.png", "curve.png"):
        assert (tmp_path / name).is_file(), name
    model, metadata = load_checkpoint(tmp_path / "pruned.pt")
    assert count(model.spec).macs <= config.macs and count(model.spec).params <= config.params
    assert abs(total_sparsity(model) - 0.3) < 0.02
    mapping = json.loads((tmp_path / "mapping.json").read_text())
    graph = TensorGraph.from_dict(mapping)
    assert simulate(graph, mapping).valid
    assert figures["map"]["valid"] and "## 4. Mapping" in (tmp_path / "report.md").read_text()
    m = figures["map"]  # mapped below the untiled M_R, tiled, the tiled output checked against the untiled
    assert m["scratchpad_bytes"] < m["untiled_M_R"] and m["tiling"] != "untiled"
    assert m["max_abs_difference"] <= 1e-5 and m["extra_macs"] <= config.max_extra_macs * m["model_macs"]
    values = [row["objective"] for row in m["curve"]]
    assert all(a >= b for a, b in zip(values, values[1:])) and all(row["valid"] for row in m["curve"])
