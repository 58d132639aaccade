"""The ``mpdesign`` command line: parse, call the API, print. No logic lives here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from designer import zoo
from designer.report import inspect_spec
from designer.spec import NetworkSpec, SpecError

app = typer.Typer(help="Design neural networks and their deployment with mathematical programming.",
                  no_args_is_help=True, add_completion=False)
console = Console()


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


def load_spec(source: str, resolution: Optional[int] = None, num_classes: Optional[int] = None) -> NetworkSpec:
    """A spec from a file (spec JSON or TinyNAS structure) or a built-in name."""
    if Path(source).exists():
        return NetworkSpec.load(source, resolution=resolution, num_classes=num_classes)
    if source in zoo.names():
        spec = zoo.load(source)
        if resolution is not None:
            spec.resolution = resolution
        if num_classes is not None:
            spec.num_classes = num_classes
        spec.validate()
        return spec
    raise SpecError(f"{source}: no such file, nor a built-in spec ({', '.join(zoo.names())})")


def _parse_alpha(alpha: Optional[str]) -> Optional[list[float]]:
    if alpha is None:
        return None
    try:
        return [float(a) for a in alpha.split(",")]
    except ValueError:
        raise SpecError(f"--alpha: expected comma-separated numbers, got {alpha!r}") from None


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{value:g}"


@app.command()
def inspect(
    spec: str = typer.Argument(..., help="Spec JSON, TinyNAS structure file, or built-in name (see `mpdesign specs`)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    resolution: Optional[int] = typer.Option(None, help="Input resolution (TinyNAS files carry none; default 224)."),
    classes: Optional[int] = typer.Option(None, help="Number of classes (TinyNAS files: default 1000)."),
    alpha: Optional[str] = typer.Option(None, help="DeepMAD stage weights, comma-separated (default 1,1,1,1,8)."),
    bytes_per_element: int = typer.Option(1, help="Bytes per activation element for memory figures."),
) -> None:
    """Costs (params, MACs, activation memory) and DeepMAD scores of a network spec."""
    try:
        network = load_spec(spec, resolution, classes)
        report = inspect_spec(network, _parse_alpha(alpha), bytes_per_element)
    except (SpecError, ValueError) as err:
        _fail(str(err))
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"{report['name'] or spec} at {report['resolution']}x{report['resolution']}")
    for column in ("stage", "family", "out", "btn", "k", "L", "stride", "params", "MACs", "max act. bytes"):
        table.add_column(column, justify="right")
    for i, row in enumerate(report["stages"]):
        table.add_row(str(i), row["family"], str(row["out"]), str(row["btn"]), str(row["k"]), str(row["L"]),
                      str(row["stride"]), _si(row["params"]), _si(row["macs"]), _si(row["max_activation_bytes"]))
    console.print(table)
    scoring = Table(title="DeepMAD scoring stages")
    for column in ("stage", "channels c_i", "resolution r_i", "entropy H_i", "alpha_i", "rho_i"):
        scoring.add_column(column, justify="right")
    for i, row in enumerate(report["scoring_stages"]):
        scoring.add_row(str(i), str(row["channels"]), str(row["resolution"]), f"{row['entropy']:.2f}",
                        f"{row['alpha']:g}", f"{row['rho']:.4f}")
    console.print(scoring)
    console.print(
        f"params {report['params']:,} (conv weights {report['conv_weights']:,}, BN {report['batchnorm_params']:,}, "
        f"classifier {report['classifier_params']:,})\n"
        f"MACs {report['macs']:,} (convs and linears; + {report['elementwise_ops']:,} elementwise ops)\n"
        f"layers {report['layers']}   effectiveness {report['effectiveness']:.4f}   "
        f"DeepMAD score {report['deepmad_score']:.2f}   depth penalty {report['depth_penalty']:.2f}\n"
        f"largest single-layer activation footprint {report['max_activation_bytes']:,} bytes "
        f"at {report['bytes_per_element']} byte(s)/element")


@app.command()
def specs() -> None:
    """List the built-in specs."""
    for name in zoo.names():
        console.print(name)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
