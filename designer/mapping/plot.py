"""Draw a mapping: the scratchpad over time, one box per resident tensor per step."""

from __future__ import annotations

from pathlib import Path

from designer import files
from designer.mapping.graph import TensorGraph
from designer.mapping.io import Mapping


def plot_layout(graph: TensorGraph, mapping: Mapping, path: str | Path, title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(min(18, 4 + 0.08 * len(mapping.steps)), 5))
    colours = plt.get_cmap("tab20")
    index = {name: i for i, name in enumerate(graph.tensors)}
    scale = mapping.scratchpad_bytes
    for t, step in enumerate(mapping.steps):
        for name, address in step.resident.items():
            size = graph.tensors[name].bytes
            ax.add_patch(Rectangle((t, address / scale), 1, size / scale, facecolor=colours(index[name] % 20),
                                   edgecolor="black", linewidth=0.2))
        for name in step.spilled:
            ax.plot(t, 1.02, "v", color="tab:red", markersize=4)
        for name in step.retrieved:
            ax.plot(t + 0.5, step.resident[name] / scale, "^", color="tab:blue", markersize=4)
    ax.set_xlim(0, len(mapping.steps))
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("step (operator in execution order)")
    ax.set_ylabel(f"address / {mapping.scratchpad_bytes:,} bytes")
    ax.set_title(title or f"{mapping.method}: {mapping.offchip_bytes(graph):,} bytes off-chip "
                          f"(red: spill, blue: reload)")
    fig.tight_layout()
    files.save_figure(fig, path, dpi=120)
