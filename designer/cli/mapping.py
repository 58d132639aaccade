"""`mpdesign map`: a DNN graph onto a scratchpad (COSMA), against the baselines."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from designer import checks, files
from designer.cli.common import console, fail, note, percent

app = typer.Typer()
BUDGET_SHARE = 0.2  # of --time-limit, at most, for M_P's CP-SAT search


@app.command("map")
def map_graph(
    graph: Optional[Path] = typer.Argument(None, help="A graph JSON (node-link, HMCOS, mpdesign), a spec JSON, a "
                                                      "checkpoint, or a saved ExportedProgram (.pt2); or use --model."),
    model_ref: Optional[str] = typer.Option(None, "--model", help="Your own model: PATH.py:FACTORY or "
                                                                  "package.module:factory."),
    input_shape: Optional[str] = typer.Option(None, help="--model: the input shape, e.g. 1,3,224,224."),
    fuse: bool = typer.Option(True, "--fuse/--no-fuse", help="Fuse conv/linear + BN + activation, add + "
                                                              "activation and elementwise chains (models only)."),
    save_graph: Optional[Path] = typer.Option(None, help="Also write the tensor graph (graph JSON) here."),
    training: bool = typer.Option(False, "--training", help="--model / checkpoint: map one training step (forward "
                                                            "and backward: saved activations, gradients)."),
    scratchpad: str = typer.Option("M_H", help="Bytes, or M_R, M_H, M_P."),
    mode: str = typer.Option("joint", help="joint (schedule, addresses, spills), fixed (the graph's order) or "
                                          "divide (windows, for large graphs)."),
    solver: str = typer.Option("cpsat", help="cpsat (default, faster) or ilp (COSMA's ILP on HiGHS)."),
    time_limit: float = typer.Option(60.0, help="Seconds for the solver."),
    max_reloads: int = typer.Option(2, help="Reloads allowed per tensor."),
    weights: bool = typer.Option(False, "--weights", help="Treat weights as tensors (spec/checkpoint/random graphs)."),
    bytes_per_element: int = typer.Option(1, help="Bytes per element when tracing a network (8-bit: 1)."),
    out: Optional[Path] = typer.Option(None, help="Write the mapping file here."),
    plot: Optional[Path] = typer.Option(None, help="Draw the scratchpad layout here (PNG)."),
    as_json: bool = typer.Option(False, "--json"),
    start: Optional[Path] = typer.Option(None, help="A mapping file of this graph (e.g. from a smaller scratchpad, "
                                                    "valid at every larger one): a start, so the traffic never rises "
                                                    "with the scratchpad."),
    trust: bool = typer.Option(False, "--trust", help="Load a .pt2 archive: it holds pickled objects, and "
                                                      "unpickling a file can run any code in it. Only for files "
                                                      "you trust."),
) -> None:
    """Map a DNN graph onto a scratchpad: schedule, addresses and spills, against baselines.
    The whole command, capture and budgets included, keeps to --time-limit."""
    started = time.perf_counter()
    from designer.mapping.baselines import required_bytes
    from designer.mapping.graph import GraphError
    from designer.mapping.io import Mapping
    from designer.mapping.plot import plot_layout
    from designer.mapping.problem import SOLVERS, MODES, MappingError, MappingProblem, budgets, check_scratchpad, \
        parse_scratchpad
    from designer.mapping.sources import Source
    source = Source(graph, model_ref, input_shape, training, weights, bytes_per_element, fuse, trust)
    try:  # every argument, before the graph is read or any budget computed
        checks.writable_file(out, "--out")
        checks.writable_figure(plot, "--plot")
        checks.writable_file(save_graph, "--save-graph")
        checks.choice(mode, "--mode", MODES)
        checks.choice(solver, "--solver", SOLVERS)
        checks.time_limit(time_limit, "--time-limit")
        checks.integer(max_reloads, "--max-reloads", minimum=0)
        check_scratchpad(scratchpad)
        start_mapping = Mapping.load(checks.readable_file(start, "--start"), "--start") if start is not None else None
        source.check()
    except ValueError as error:
        fail(str(error))
    try:
        tensor_graph = source.load()
        if save_graph is not None:
            files.write_text(save_graph, json.dumps(tensor_graph.to_dict(), indent=1))
        given = check_scratchpad(scratchpad)
        if isinstance(given, int) and given < required_bytes(tensor_graph):
            MappingProblem(tensor_graph, given)  # says which operator needs more (M_R), before any solve
        note(f"{tensor_graph}; computing budgets (M_P by CP-SAT)...")
        # the whole command keeps to --time-limit (the capture above included): M_P's search gets
        # at most a fifth of it, the solve the rest
        limits = budgets(tensor_graph, time_limit=BUDGET_SHARE * time_limit)
        remaining = max(time_limit - (time.perf_counter() - started), 0.1 * time_limit)
        problem = MappingProblem(tensor_graph, parse_scratchpad(scratchpad, limits), mode=mode,
                                 solver=solver, time_limit=remaining, max_reloads=max_reloads, start=start_mapping)
        note(f"solving at {problem.scratchpad_bytes:,} bytes ({solver}, up to {remaining:.0f} s)...")
        result = problem.solve(min_peak_order=limits.min_peak_order)
    except (GraphError, MappingError, ValueError) as error:
        fail(str(error))
    if result.mapping is None:
        fail(f"no mapping found: {result.solve.message}", code=1)
    if out is not None:
        result.mapping.save(out, tensor_graph, result.solve)
    if plot is not None:
        plot_layout(tensor_graph, result.mapping, plot)
    if as_json:
        print(json.dumps({**result.to_dict(), "budgets": limits.to_dict(), "valid": bool(result.replay)}, indent=1))
        return
    console.print(f"{tensor_graph}\nM_R {limits.required:,}   M_P {limits.peak:,}"
                  f"{'' if limits.peak_proven else ' (best found, not proven)'}   M_H {limits.halfway:,}   "
                  f"scratchpad {problem.scratchpad_bytes:,} bytes")
    table = Table(title="off-chip traffic (spilled + retrieved bytes)")
    table.add_column("mapping")
    table.add_column("bytes", justify="right")
    for name, value in sorted(result.baseline_bytes().items(), key=lambda kv: kv[1]):
        table.add_row(f"baseline {name}", f"{value:,}")
    table.add_row(result.method, f"{result.offchip_bytes:,}", style="bold")
    console.print(table)
    gap = percent(result.solve.gap)
    bound = "n/a" if result.solve.bound is None else f"{result.solve.bound:,.0f}"
    console.print(f"{result.method}: {result.solve.message}")
    console.print(f"status {result.solve.status}   bound {bound}   gap {gap}   {result.solve.seconds:.1f} s   "
                  f"simulator: {'valid' if result.replay else 'INVALID ' + '; '.join(result.replay.errors[:3])}")
