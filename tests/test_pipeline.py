"""The whole job end to end on tiny settings: every step's output exists and checks out."""

import json

from designer.checkpoint import load_checkpoint
from designer.costs import count
from designer.mapping.core.graph import TensorGraph
from designer.mapping.core.simulate import simulate
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
    q = figures["quantize"]  # the int8 file: run by ONNX Runtime, as accurate as the pruned network, mapped
    assert (tmp_path / "model-int8.onnx").stat().st_size == q["onnx_bytes"] < q["float_onnx_bytes"]
    assert abs(q["accuracy_onnx"] - figures["prune"]["test_accuracy"]) <= 0.05
    assert q["valid"] and "## 5. Deployment" in (tmp_path / "report.md").read_text()


def test_the_rd_plot_marks_the_chosen_allocation_and_draws_zero(tmp_path):
    """Issue 23: the allocation the DP chose is on the curves; zero distortion is zero, not 1e-12."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from designer.pipeline import _rd_plot
    from designer.pruning.curves import Curves, LayerCurve

    shown = {}
    original = plt.subplots

    def spy(*args, **kwargs):
        fig, ax = original(*args, **kwargs)
        shown["ax"] = ax
        return fig, ax

    curves = Curves([LayerCurve("conv", 100, 1000, [0.0, 0.5, 1.0], [0.0, 0.01, 1.0]),
                     LayerCurve("fc", 50, 50, [0.0, 0.5, 1.0], [0.0, 0.2, 2.0])])
    plt.subplots = spy
    try:
        _rd_plot(plt, curves, {"conv": 0.5, "fc": 0.25}, tmp_path / "rd.png")
    finally:
        plt.subplots = original
    ax = shown["ax"]
    markers = [(float(line.get_xdata()[0]), float(line.get_ydata()[0])) for line in ax.lines if line.get_marker() == "o"]
    assert markers == [(0.5, 0.01), (0.25, 0.1)]  # on each curve, at the chosen sparsity
    assert ax.get_yscale() == "symlog" and (tmp_path / "rd.png").stat().st_size > 0
