"""The ``mpdesign`` command line: parse, call the API, print. No logic lives here.

One module per command group; each defines its commands on its own ``typer.Typer`` and
this one gathers them.
"""

from __future__ import annotations

import typer

from designer.cli import design, mapping, pruning, sweep, train
from designer.cli.common import load_spec

app = typer.Typer(help="Design neural networks and their deployment with mathematical programming.",
                  no_args_is_help=True, add_completion=False)
for group in (design, train, pruning, mapping, sweep):
    for command in group.app.registered_commands:
        app.registered_commands.append(command)

__all__ = ["app", "load_spec", "main"]


def main() -> None:
    app()
