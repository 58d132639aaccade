"""What every command shares: the console, failing with a clear message, reading specs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from designer import zoo
from designer.spec import NetworkSpec, SpecError

console = Console()


def fail(message: str, code: int = 2) -> None:
    """One line on stderr, ``error: ...``, and exit ``code`` (2: bad input)."""
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code=code)


def load_spec(source: str, resolution: Optional[int] = None, num_classes: Optional[int] = None) -> NetworkSpec:
    """A spec from a file (spec JSON or TinyNAS structure) or a built-in name."""
    if Path(source).exists():
        return NetworkSpec.load(source, resolution=resolution, num_classes=num_classes)
    if source in zoo.names():
        return zoo.load(source).replace(resolution=resolution, num_classes=num_classes)
    raise SpecError(f"{source}: no such file, nor a built-in spec ({', '.join(zoo.names())})")


def parse_list(text: Optional[str], option: str, kind: type = float) -> Optional[list]:
    if text is None:
        return None
    try:
        values = [kind(x) for x in text.split(",")]
    except ValueError:
        raise SpecError(f"{option}: expected comma-separated {kind.__name__}s, got {text!r}") from None
    if kind is float and not all(math.isfinite(v) for v in values):
        raise SpecError(f"{option}: expected finite numbers, got {text!r}")
    return values


def percent(fraction: Optional[float]) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.2f}%"


def si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{value:g}"


def check_dataset_fits(spec: NetworkSpec, splits, option: str) -> None:
    """A trained network and a dataset that must agree on input channels, classes and size."""
    wanted = (spec.in_channels, spec.resolution, spec.num_classes)
    given = (splits.in_channels, splits.resolution, splits.num_classes)
    if wanted != given:
        raise ValueError(f"{option}: {splits.name} has {given[0]}x{given[1]}x{given[1]} images in {given[2]} classes, "
                         f"the network takes {wanted[0]}x{wanted[1]}x{wanted[1]} in {wanted[2]} classes")
