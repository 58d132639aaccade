"""`mpdesign sweep`: many design or mapping problems on a Dask cluster (see designer.sweep)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from designer import checks
from designer.cli.common import console, fail, percent

app = typer.Typer()


def _grid_option(values: list[str]) -> dict[str, list]:
    grid = {}
    for item in values:
        name, _, text = item.partition("=")
        if not name or not text:
            raise ValueError(f"--grid: expected FIELD=v1,v2,..., got {item!r}")
        grid[name] = [_value(v) for v in text.split(",")]
    return grid


def _looks_like_address(text: str) -> bool:
    host, _, port = text.split("://", 1)[-1].rpartition(":")
    return bool(host) and port.isdigit()


def _value(text: str):
    """A number (or other JSON value) when the text is one, else the text (e.g. M_R)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"--grid: {text!r} is not a finite number")
    return value


@app.command()
def sweep(
    sweep_file: Path = typer.Argument(..., help="Sweep JSON: kind (design or mapping), base, grid, time_limit."),
    grid: list[str] = typer.Option([], "--grid", help="FIELD=v1,v2 (repeatable); replaces that field's values."),
    scheduler: Optional[str] = typer.Option(None, help="Dask scheduler address (default: a local cluster); "
                                                       "'serial' runs without Dask."),
    workers: int = typer.Option(2, help="Local cluster: worker processes, one solver thread each."),
    time_limit: Optional[float] = typer.Option(None, help="Seconds per problem (default: the file's)."),
    out: Optional[Path] = typer.Option(None, help="Write the results (one JSON list) here."),
    plot: Optional[Path] = typer.Option(None, help="Design sweeps: score and bound against the first grid field."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Solve every combination of a grid of design or mapping problems, in parallel on Dask."""
    from designer.sweep import Sweep, SweepError, run_sweep
    err = Console(stderr=True)
    try:
        checks.writable_file(out, "--out")
        checks.writable_file(plot, "--plot")
        checks.integer(workers, "--workers", minimum=1)
        if time_limit is not None:
            checks.time_limit(time_limit, "--time-limit")
        if scheduler not in (None, "serial") and not _looks_like_address(scheduler):
            raise ValueError(f"--scheduler: expected 'serial' or an address such as tcp://host:8786, got {scheduler!r}")
        data = Sweep.load(sweep_file).to_dict()
        data["grid"] = {**data["grid"], **_grid_option(grid)}
        if time_limit is not None:
            data["time_limit"] = time_limit
        problems = Sweep.from_dict(data)
        where = scheduler or f"a local Dask cluster of {workers} workers"
        err.print(f"[dim]{len(problems.points())} {problems.kind} problems on {where}, "
                  f"{problems.time_limit:g} s each[/]")
        results = run_sweep(problems, scheduler=scheduler, workers=workers,
                            progress=lambda done, total, r: err.print(f"[dim]{done}/{total}: {r['point']} "
                                                                      f"{r['status']}[/]"))
    except (SweepError, ValueError) as error:
        fail(str(error))
    if out is not None:
        out.write_text(json.dumps(results, indent=1))
    if as_json:
        print(json.dumps(results, indent=1))
        return
    table = Table(title=f"{problems.kind} sweep")
    for column in [*problems.grid, "status", "objective", "bound", "gap", "s"]:
        table.add_column(column, justify="right")
    for r in results:
        objective = r.get("score") if problems.kind == "design" else r.get("offchip_bytes")
        table.add_row(*[str(r["point"][k]) for k in problems.grid], r["status"],
                      "n/a" if objective is None else f"{objective:,.2f}",
                      "n/a" if r["bound"] is None else f"{r['bound']:,.2f}", percent(r["gap"]), f"{r['seconds']:.1f}")
    console.print(table)
    if plot is not None and problems.kind == "design" and problems.grid:
        _plot_front(results, next(iter(problems.grid)), plot)
        console.print(f"plot written to {plot}")


def _plot_front(results: list[dict], field: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = sorted((r["point"][field], r["score"], r["bound"]) for r in results if r["score"] is not None)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([x for x, _, _ in rows], [s for _, s, _ in rows], "o-", label="design score")
    ax.plot([x for x, _, b in rows if b is not None], [b for _, _, b in rows if b is not None], "v--",
            label="proven bound")
    ax.set_xlabel(field)
    ax.set_ylabel("DeepMAD score")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
