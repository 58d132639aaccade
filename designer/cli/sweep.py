"""`mpdesign sweep`: many design or mapping problems on a Dask cluster (see designer.sweep)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from designer import checks, files
from designer.cli.common import console, errors, fail, force_option, note, percent, quiet_option

app = typer.Typer()


def _grid_option(values: list[str]) -> dict[str, list]:
    grid = {}
    for item in values:
        name, _, text = item.partition("=")
        if not name or not text:
            raise ValueError(f"--grid: expected FIELD=v1,v2,..., got {item!r}")
        if name in grid:
            raise ValueError(f"--grid: {name} given twice; give all its values once, {name}=v1,v2,...")
        grid[name] = [_value(v) for v in text.split(",")]
    return grid


def _value(text: str):
    """A number (or other JSON value) when the text is one, else the text (e.g. M_R)."""
    try:
        value = checks.parse_json(text)
    except json.JSONDecodeError:
        return text
    except ValueError:  # NaN, Infinity
        raise ValueError(f"--grid: {text!r} is not a finite number") from None
    if isinstance(value, float) and not math.isfinite(value):  # 1e999
        raise ValueError(f"--grid: {text!r} is not a finite number")
    return value


@app.command()
def sweep(
    sweep_file: Path = typer.Argument(..., help="Sweep JSON: kind (design or mapping), base, grid, time_limit."),
    grid: list[str] = typer.Option([], "--grid", help="FIELD=v1,v2 (repeatable); replaces that field's values."),
    scheduler: Optional[str] = typer.Option(None, help="Dask scheduler address (default: local, a local "
                                                       "cluster); 'serial' runs without Dask. The cluster must be one you "
                                                       "trust: its workers run code in this process's sweep, "
                                                       "and results come back unpickled."),
    workers: int = typer.Option(2, help="Local cluster: worker processes, one solver thread each."),
    time_limit: Optional[float] = typer.Option(None, help="Seconds per problem (default: the file's)."),
    out: Optional[Path] = typer.Option(None, help="Write the results here (schema: mpdesign schema sweep)."),
    plot: Optional[Path] = typer.Option(None, help="Design sweeps: score and bound against the first grid field."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    force: bool = force_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Solve every combination of a grid of design or mapping problems, in parallel on Dask."""
    from designer.sweep import Sweep, SweepError, run_sweep, sweep_payload
    try:
        checks.writable_file(out, "--out")
        checks.writable_figure(plot, "--plot")
        checks.integer(workers, "--workers", minimum=1)
        if time_limit is not None:
            checks.time_limit(time_limit, "--time-limit")
        if scheduler is not None:
            scheduler = None if checks.scheduler(scheduler) == "local" else scheduler
        data = Sweep.load(sweep_file).to_dict()
        data["grid"] = {**data["grid"], **_grid_option(grid)}
        if time_limit is not None:
            data["time_limit"] = time_limit
        problems = Sweep.from_dict(data)
        where = scheduler or f"a local Dask cluster of {workers} workers"
        note(f"{len(problems.points())} {problems.kind} problems on {where}, "
                  f"{problems.time_limit:g} s each")
        arrived: list[dict] = []

        def progress(done: int, total: int, result: dict) -> None:
            errors.print(f"{done}/{total}: {result['point']} {result['status']}")
            arrived.append(result)
            if out is not None:  # written as results arrive: an interrupted sweep keeps what it solved
                files.write_text(out, json.dumps(sweep_payload(problems, arrived), indent=1))

        results = run_sweep(problems, scheduler=scheduler, workers=workers, progress=progress)
    except (SweepError, ValueError) as error:
        fail(str(error))
    if out is not None:
        files.write_text(out, json.dumps(sweep_payload(problems, results), indent=1))  # in grid order
    if as_json:
        print(json.dumps(sweep_payload(problems, results), indent=1))
        return
    table = Table(title=f"{problems.kind} sweep")
    for column in [*problems.grid, "status", "objective", "bound", "gap", "s"]:
        table.add_column(column, justify="right")
    for r in results:
        objective = r.get("score") if problems.kind == "design" else r.get("objective")
        table.add_row(*[str(r["point"][k]) for k in problems.grid], r["status"],
                      "n/a" if objective is None else f"{objective:,.2f}",
                      "n/a" if r.get("bound") is None else f"{r['bound']:,.2f}", percent(r.get("gap")),
                      f"{r.get('seconds', 0.0):.1f}")
    console.print(table)
    for r in results:
        if r.get("status") in ("infeasible", "error"):
            errors.print(f"{r['point']}: {r['status']}: {r['message']}")
    if plot is not None and problems.grid:
        _plot_front(results, problems.kind, next(iter(problems.grid)), plot)
        console.print(f"plot written to {plot}", markup=False)
    if not any(r.get("score" if problems.kind == "design" else "objective") is not None for r in results):
        fail("no point of the sweep has a solution (see the table)", code=1)


def _plot_front(results: list[dict], kind: str, field: str, path: Path) -> None:
    """The objective and the proven bound against the grid's first field; points without a
    solution are marked on the axis."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    value = "score" if kind == "design" else "objective"

    def x_of(r: dict):  # a mapping budget by name (M_R) is drawn at its bytes
        return r.get("scratchpad_bytes") if kind == "mapping" and field == "scratchpad" else r["point"][field]

    rows = sorted((x_of(r), r[value], r.get("bound")) for r in results if r.get(value) is not None)
    failed = [x_of(r) for r in results if r.get(value) is None and x_of(r) is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([x for x, _, _ in rows], [s for _, s, _ in rows], "o-",
            label="design score" if kind == "design" else "mapping objective (bytes)")
    ax.plot([x for x, _, b in rows if b is not None], [b for _, _, b in rows if b is not None], "v--",
            label="proven bound")
    if failed:
        ax.plot(failed, [0] * len(failed), "rx", markersize=9,
                label="no solution (infeasible, error or out of time)")
    ax.set_xlabel("scratchpad bytes" if kind == "mapping" and field == "scratchpad" else field)
    ax.set_ylabel("DeepMAD score" if kind == "design" else "off-chip bytes")
    ax.legend()
    fig.tight_layout()
    files.save_figure(fig, path, dpi=120)
