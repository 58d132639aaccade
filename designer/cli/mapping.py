"""`mpdesign map`: a DNN graph onto a scratchpad (COSMA), against the baselines."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from designer import checks, files
from designer.cli.common import NO_SOLUTION, console, fail, force_option, note, percent, quiet_option
from designer.mapping.strategies import ORDERS, STRATEGIES

app = typer.Typer()
# designer.mapping.core.objective.OBJECTIVES, listed here so that --help loads no networkx
# (tests/test_packaging.py checks them against the library's)
OBJECTIVES = ("offchip", "dram")

# the names users type, as enums: typer lists them in --help, checks them, and completes them
Strategy = Enum("Strategy", {name: name for name in STRATEGIES}, type=str)
ObjectiveName = Enum("ObjectiveName", {name: name for name in OBJECTIVES}, type=str)
Order = Enum("Order", {name: name for name in ORDERS}, type=str)
REPLACED = {"--mode": "--strategy divide or --order given", "--solver": "--strategy ilp or cpsat"}


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
    scratchpad: str = typer.Option("M_H", help="Bytes (262144, 256KiB, 1.5MB), or M_R, M_H, M_P."),
    strategy: Strategy = typer.Option("cpsat", help="cpsat (CP-SAT, whole graph), ilp (COSMA's ILP on HiGHS), "
                                                    "divide (windows along the min-peak order, large graphs), "
                                                    "windows, keep or baseline (those stages alone)."),
    objective: ObjectiveName = typer.Option("offchip", help="offchip (spilled + retrieved bytes, COSMA's) or dram "
                                                            "(also every re-read of an input or weight)."),
    order: Order = typer.Option("free", help="free (the strategy schedules) or given (the graph's order, "
                                             "the paper's fixed-schedule mode)."),
    time_limit: float = typer.Option(60.0, help="Seconds for the whole command, capture and budgets included."),
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
    tiling: str = typer.Option("none", help="none, auto (choose where the patched prefix ends and k x k, for "
                                            "--scratchpad; below M_R too) or CUT:K. Models only, forward."),
    max_extra_macs: Optional[float] = typer.Option(None, help="--tiling auto: recomputed MACs at most this "
                                                              "fraction of the model's, e.g. 0.1."),
    curve: Optional[str] = typer.Option(None, help="LO:HI: traffic against scratchpad size from LO to HI (bytes, "
                                                   "M_R, M_H, M_P, or min: the smallest tiled footprint); --plot "
                                                   "draws it, --out writes the table (JSON)."),
    points: int = typer.Option(8, help="--curve: scratchpad sizes, geometrically spaced."),
    mode: Optional[str] = typer.Option(None, hidden=True),
    solver: Optional[str] = typer.Option(None, hidden=True),
    force: bool = force_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Map a DNN graph onto a scratchpad: schedule, addresses and spills, against baselines.
    The whole command, capture and budgets included, keeps to --time-limit."""
    from designer.deadline import Deadline
    from designer.mapping import Source
    from designer.mapping.core.io import Mapping
    from designer.mapping.problem import check_scratchpad
    from designer.mapping.strategies import check_strategy
    source = Source(graph, model_ref, input_shape, training, weights, bytes_per_element, fuse, trust)
    try:  # every argument, before the graph is read or any budget computed
        for option, given in (("--mode", mode), ("--solver", solver)):
            if given is not None:
                raise ValueError(f"{option}: replaced by {REPLACED[option]} (see mpdesign map --help)")
        for path, option in ((out, "--out"), (save_graph, "--save-graph")):
            checks.writable_file(path, option)
        checks.writable_figure(plot, "--plot")
        checks.time_limit(time_limit, "--time-limit")
        deadline = Deadline.of_command(time_limit)
        checks.integer(max_reloads, "--max-reloads", minimum=0)
        check_strategy(strategy.value, order.value, objective.value, "--strategy")
        check_scratchpad(scratchpad, "--scratchpad")
        start_mapping = Mapping.load(checks.readable_file(start, "--start"), "--start") if start is not None else None
        tiled = _check_tiling(tiling, max_extra_macs, curve, points, time_limit)
        source.check()
        program, example = source.export() if tiled else (None, None)
    except ValueError as error:
        fail(str(error))
    options = dict(strategy=strategy.value, objective=objective.value, bytes_per_element=bytes_per_element,
                   include_weights=weights, max_extra_macs=max_extra_macs)
    if curve is not None:
        return _curve(program, curve, points, deadline, options, out, plot, as_json)
    if tiled:
        return _tiled(program, example, scratchpad, tiling, deadline, options, out, save_graph, plot, as_json)
    _untiled(source, scratchpad, order.value, max_reloads, start_mapping, save_graph, deadline, options, out, plot,
             as_json)


# the least a solve gets after a slow capture: the baselines answer within it, and the command
# ends within 1.05 x --time-limit however long the capture took
SOLVE_FLOOR = 0.05


def _untiled(source, scratchpad: str, order: str, max_reloads: int, start_mapping, save_graph, deadline, options: dict,
             out, plot, as_json: bool) -> None:
    from designer.mapping import GraphError, MappingError, MappingProblem, solve
    try:
        tensor_graph = source.load()
        if save_graph is not None:
            files.write_text(save_graph, json.dumps(tensor_graph.to_dict(), indent=1))
        problem = MappingProblem(tensor_graph, scratchpad, options["strategy"], options["objective"], order,
                                 time_limit=deadline.left(SOLVE_FLOOR * deadline.seconds), max_reloads=max_reloads,
                                 start=start_mapping, labels={"scratchpad": "--scratchpad", "start": "--start"})
        note(f"{tensor_graph}: M_R {problem.budgets.required:,}, M_H {problem.budgets.halfway:,}, M_P "
             f"{problem.budgets.peak:,}; solving at {problem.scratchpad_bytes:,} bytes ({problem.strategy}, "
             f"{problem.objective.name}, up to {problem.time_limit - problem.budget_seconds:.0f} s; "
             f"{deadline.elapsed():.1f} s of --time-limit {deadline.seconds:g} s used)...")
        result = solve(problem, progress=_progress)
    except (GraphError, MappingError, ValueError) as error:
        fail(str(error))
    if result.mapping is None:
        fail(f"no mapping found: {result.solve.message}", code=NO_SOLUTION)
    _write(result, out, plot)
    if as_json:
        print(json.dumps({**result.to_dict(), "valid": bool(result.replay)}, indent=1))
        return
    _print(result)


def _progress(event: dict) -> None:
    """Each stage of the solve as it ends, on stderr: the best traffic and bound so far."""
    best = "none" if event["best"] is None else f"{event['best']:,}"
    bound = "none" if event["bound"] is None else f"{event['bound']:,.0f}"
    note(f"  {event['seconds']:5.1f} s  {event['stage']}: best {best}, bound {bound}")


def _write(result, out: Optional[Path], plot: Optional[Path]) -> None:
    if out is not None:
        result.mapping.save(out, result.problem.graph, result.solve)
    if plot is not None:
        from designer.mapping.core.plot import plot_layout
        plot_layout(result.problem.graph, result.mapping, plot)


def _print(result) -> None:
    problem, limits, solved = result.problem, result.problem.budgets, result.solve
    console.print(f"{problem.graph}\nM_R {limits.required:,}   M_P {limits.peak:,}"
                  f"{'' if limits.peak_proven else ' (best found, not proven)'}   M_H {limits.halfway:,}   "
                  f"scratchpad {problem.scratchpad_bytes:,} bytes")
    table = Table(title=f"objective {problem.objective.name} ({problem.objective.unit})")
    for column in ("mapping", problem.objective.name, "off-chip", "DRAM total"):
        table.add_column(column, justify="left" if column == "mapping" else "right")
    rows = [(f"baseline {name}", mapping) for name, mapping in result.baselines.items()]
    rows.sort(key=lambda row: problem.objective.of_steps(problem.graph, row[1].steps))
    for name, mapping in rows + [(result.method, result.mapping)]:
        dram = mapping.dram_bytes(problem.graph)
        table.add_row(name, f"{problem.objective.of_steps(problem.graph, mapping.steps):,}",
                      f"{mapping.offchip_bytes(problem.graph):,}", f"{dram['compulsory'] + dram['traffic']:,}",
                      style="bold" if mapping is result.mapping else None)
    console.print(table)
    dram = result.dram_bytes
    console.print(f"DRAM: {dram['compulsory']:,} compulsory (first reads, final writes) + {dram['traffic']:,} traffic")
    bound = "n/a" if solved.bound is None else f"{solved.bound:,.0f}"
    console.print(f"{result.method}: {solved.message}")
    replay = result.replay
    console.print(f"status {solved.status}   bound {bound}   gap {percent(solved.gap)}   {solved.seconds:.1f} s   "
                  f"simulator: {'valid' if replay else 'INVALID ' + '; '.join(replay.errors[:3])}")


def _check_tiling(tiling: str, max_extra_macs, curve, points: int, time_limit: float) -> bool:
    """The tiling options (before anything is read); whether the model is to be exported for them.
    Which options a tiled map ignores is refused before this (designer.cli.contracts)."""
    from designer.mapping.tiling.search import check_curve, parse_tiling
    parse_tiling(tiling)
    if max_extra_macs is not None:
        checks.number(max_extra_macs, "--max-extra-macs", minimum=0)
    if curve is not None:
        if len(curve.split(":")) != 2:
            raise ValueError(f"--curve: LO:HI, e.g. min:M_P or 100000:2e6, got {curve!r}")
        check_curve(*curve.split(":"), points, time_limit)
    return tiling != "none" or curve is not None


def _tiled(program, example, scratchpad: str, tiling: str, deadline, options: dict, out, save_graph, plot,
           as_json: bool) -> None:
    from designer.mapping import GraphError, MappingError
    from designer.mapping.tiling.search import map_tiled, parse_tiling
    try:
        found = map_tiled(program, example, scratchpad, parse_tiling(tiling),
                          time_limit=deadline.left(SOLVE_FLOOR * deadline.seconds), option="--scratchpad", **options)
    except (GraphError, MappingError, ValueError) as error:
        fail(str(error))
    if save_graph is not None:  # the graph that was mapped: the tiled one
        files.write_text(save_graph, json.dumps(found.result.problem.graph.to_dict(), indent=1))
    _write(found.result, out, plot)
    if as_json:
        print(json.dumps({**found.to_dict(), "valid": bool(found.result.replay)}, indent=1))
        return
    candidate = found.choice.candidate
    console.print(f"tiling: {candidate.describe()} (M_R {candidate.required:,}; {found.candidates} candidates "
                  f"weighed, {found.choice.solved} solved)")
    if candidate.tiling is not None:
        console.print(f"recomputed MACs {candidate.extra_macs:,} = {candidate.extra_macs / found.total_macs:.1%} of "
                      f"the model's {found.total_macs:,}; tiled against untiled output: max |difference| "
                      f"{found.max_abs_difference:.2e}")
    _print(found.result)


def _curve(program, curve: str, points: int, deadline, options: dict, out, plot, as_json: bool) -> None:
    from designer.mapping import GraphError, MappingError
    from designer.mapping.tiling.search import map_curve, plot_curve

    def row(r: dict) -> None:
        untiled = r.get("untiled", {}).get("objective")
        note(f"{r['scratchpad_bytes']:>12,} bytes: {r['objective']:>12,} ({r['status']}, gap {percent(r['gap'])}) "
             f"{r['tiling']}; untiled {'n/a' if untiled is None else f'{untiled:,}'}")

    low, high = curve.split(":")
    try:
        rows = map_curve(program, low, high, points, progress=row,
                         time_limit=deadline.left(SOLVE_FLOOR * deadline.seconds), **options)
    except (GraphError, MappingError, ValueError) as error:
        fail(str(error))
    from designer.schemas import FORMAT_VERSION
    table = {"format_version": FORMAT_VERSION, "points": rows}
    if out is not None:
        files.write_text(out, json.dumps(table, indent=1))
    if plot is not None:
        plot_curve(rows, plot, title="traffic against scratchpad size")
    if as_json:
        print(json.dumps(table, indent=1))
