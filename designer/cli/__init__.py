"""The ``mpdesign`` command line: parse, call the API, print. No logic lives here.

One module per command group; each defines its commands on its own ``typer.Typer`` and
this one gathers them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import typer

from designer.cli import design, mapping, pruning, quantization, schema, sweep, train
from designer.cli.common import load_spec
from designer import deadline
from designer.cli.contracts import PlainGroup, guard
from designer.files import OutputError
from solvers.extras import MissingExtra

app = typer.Typer(help="Design neural networks and their deployment with mathematical programming.",
                  no_args_is_help=True, cls=PlainGroup,  # completion on: mpdesign --install-completion
                  context_settings={"help_option_names": ["-h", "--help"]})  # every command inherits -h


def _print_version(value: bool) -> None:
    if value:
        from designer import __version__
        typer.echo(f"mpdesign {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")) -> None:
    """Design neural networks and their deployment with mathematical programming."""
for group in (design, train, pruning, quantization, mapping, sweep, schema):
    for command in group.app.registered_commands:
        app.registered_commands.append(command)
guard(app.registered_commands)  # designer.cli.contracts: the rules every command keeps

__all__ = ["app", "load_spec", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    """The ``mpdesign`` entry point. Every failure is one ``error:`` line on stderr: exit 2 for
    bad input (also typer's own usage errors), 130 for Ctrl-C, 1 for anything unexpected
    (``MPDESIGN_TRACEBACK=1`` shows the traceback of those)."""
    # --time-limit counts from the program's start (imports included) when run as `mpdesign`
    deadline.mark_command_start(deadline.process_age() if argv is None else 0.0, pin=True)
    try:
        code = app(args=list(argv) if argv is not None else None, prog_name="mpdesign", standalone_mode=False)
    except typer.TyperException as error:  # usage errors: unknown option, a value of the wrong type, ...
        ctx = getattr(error, "ctx", None)
        where = f" (see 'mpdesign {ctx.info_name} --help')" if ctx is not None and ctx.parent is not None else ""
        message = " ".join(error.format_message().split())
        if message:  # empty when the help was shown instead (no command given)
            typer.echo(f"error: {message}{where}", err=True)
        sys.exit(getattr(error, "exit_code", 2))
    except OutputError as error:  # a full disk, a file-size limit: the path and the errno
        typer.echo(f"error: {error}", err=True)
        sys.exit(1)
    except MissingExtra as error:  # a feature whose optional dependency is not installed: the message names it
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except Exception as error:  # noqa: BLE001 - the last line of defence, not a way of handling errors
        if os.environ.get("MPDESIGN_TRACEBACK"):
            raise
        typer.echo(f"error: unexpected {type(error).__name__}: {' '.join(str(error).split())} (a bug: please report "
                   f"it; MPDESIGN_TRACEBACK=1 shows where)", err=True)
        sys.exit(1)
    finally:
        deadline.unpin()
    if code == 130:
        typer.echo("error: interrupted (Ctrl-C); no partial file was left (outputs are written whole or not at "
                   "all)", err=True)
    sys.exit(code or 0)
