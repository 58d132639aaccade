"""Draw a mapping: the scratchpad over time, one box per resident tensor per step; the largest
tensors named and coloured, the rest grey; spills and reloads in a legend."""

from __future__ import annotations

from pathlib import Path

from designer import files
from designer.mapping.core.graph import TensorGraph
from designer.mapping.core.io import Mapping

NAMED = 8  # the largest tensors (by bytes x steps resident) named in the legend; the others are grey


def plot_layout(graph: TensorGraph, mapping: Mapping, path: str | Path, title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    fig, ax = plt.subplots(figsize=(min(18, 5 + 0.08 * len(mapping.steps)), 5))
    area: dict[str, int] = {}
    for step in mapping.steps:
        for name in step.resident:
            area[name] = area.get(name, 0) + graph.tensors[name].bytes
    named = sorted(area, key=area.get, reverse=True)[:NAMED]
    colours = plt.get_cmap("tab10")
    colour = {name: colours(i % 10) for i, name in enumerate(named)}
    scale = mapping.scratchpad_bytes
    for t, step in enumerate(mapping.steps):
        for name, address in step.resident.items():
            ax.add_patch(Rectangle((t, address / scale), 1, graph.tensors[name].bytes / scale,
                                   facecolor=colour.get(name, "lightgrey"), edgecolor="black", linewidth=0.2))
        for _ in step.spilled:
            ax.plot(t, 1.02, "v", color="tab:red", markersize=4)
        for name in step.retrieved:
            ax.plot(t + 0.5, step.resident[name] / scale, "^", color="tab:blue", markersize=4)
    handles = [Patch(facecolor=colour[n], edgecolor="black", label=f"{n} ({graph.tensors[n].bytes:,} B)")
               for n in named]
    handles += [Patch(facecolor="lightgrey", edgecolor="black", label="other tensors"),
                Line2D([], [], marker="v", color="tab:red", linestyle="", label="spill (written to host)"),
                Line2D([], [], marker="^", color="tab:blue", linestyle="", label="reload (read back)")]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    ax.set_xlim(0, len(mapping.steps))
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("step (operator in execution order)")
    ax.set_ylabel(f"address / {mapping.scratchpad_bytes:,} bytes")
    ax.set_title(title or f"{mapping.method}: {mapping.offchip_bytes(graph):,} bytes off-chip")
    fig.tight_layout()
    files.save_figure(fig, path, dpi=120)
