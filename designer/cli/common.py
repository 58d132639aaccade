"""What every command shares: the console, failing with a clear message, reading specs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from designer import zoo
from designer.spec import NetworkSpec, SpecError

# markup off: every string printed is shown literally (a path or a name such as "[/]d.json"
# is no style tag); our own emphasis goes through style= arguments
# soft_wrap: a sentence is never broken mid-phrase at 80 columns when the output is piped (the
# terminal wraps it where it must); tables keep their own layout
console = Console(markup=False, highlight=False, soft_wrap=True)
errors = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)


def choice_option(default: str, values: tuple[str, ...] | list[str], help: str, *declarations: str) -> typer.Option:
    """An option whose value is one of ``values``: ``--help`` lists them, the shell completes
    them (``mpdesign --install-completion``), and the command checks the value itself, naming the
    option (a value such as ``cuda:1`` may be finer than the list)."""
    listed = tuple(values)

    def complete(incomplete: str) -> list[str]:
        return [v for v in listed if v.startswith(incomplete)]

    return typer.Option(default, *declarations, help=help, metavar="<" + "|".join(listed) + ">",
                        autocompletion=complete)


def force_option() -> typer.Option:
    """``--force``: replace outputs that exist. Without it a command refuses them before any work:
    :mod:`designer.cli.contracts` reads it from every command that writes files."""
    return typer.Option(False, "--force", help="Replace output files that exist (refused otherwise).")


DEVICES = ("auto", "cpu", "cuda")  # cuda:N too, checked by designer.checkpoint.resolve_device


# what a command that works on a trained network takes (prune, quantize): a checkpoint, or a
# user's module by reference with its weights and input shape
def checkpoint_argument() -> typer.Argument:
    return typer.Argument(None, help="A checkpoint written by `mpdesign train` (or use --model).")


def model_option() -> typer.Option:
    return typer.Option(None, "--model", help="Your own model: PATH.py:FACTORY or package.module:factory (a "
                                              "callable returning it).")


def weights_option() -> typer.Option:
    return typer.Option(None, help="--model: a state dict, or a checkpoint holding one.")


def input_shape_option() -> typer.Option:
    return typer.Option(None, help="--model: the input shape, e.g. 1,3,32,32.")


class _Quiet:
    """``--quiet`` of the command running (set by :mod:`designer.cli.contracts` before it runs)."""

    on = False


def quiet_option() -> typer.Option:
    """``--quiet``: no progress and no notes on stderr; the result, warnings and errors stay."""
    return typer.Option(False, "--quiet", help="No progress or notes; the result, warnings and errors stay.")


def set_quiet(value: bool) -> None:
    _Quiet.on = bool(value)


def quiet() -> bool:
    return _Quiet.on


def note(text: str) -> None:
    """Progress and notes on stderr, dimmed, never on stdout (which may carry --json); none
    under ``--quiet``."""
    if not _Quiet.on:
        errors.print(text, style="dim")


def warning(text: str) -> None:
    """A warning on stderr, ``--quiet`` or not."""
    errors.print(f"warning: {text}")


def shown(text: str) -> str:
    """``text`` safe to print: terminal escapes, control and bidi characters from a file or a
    layer name are shown escaped (``\\x1b``, ``\\u202e``), never obeyed by the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


BAD_INPUT = 2  # an option, a field or a file the command cannot take
NO_SOLUTION = 3  # the solver found no design or mapping (in the time limit, or none exists)


def fail(message: str, code: int = BAD_INPUT) -> None:
    """One line on stderr, ``error: ...``, and exit ``code`` (2: bad input)."""
    text = shown(" ".join(str(message).split()))
    typer.echo(f"error: {text}", err=True)
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
