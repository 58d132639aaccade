"""Every `mpdesign` command the README shows parses as written: its options exist, their values
have the right types and are among the listed choices (issue 23). Parsing only (click's
`make_context`), not running: the commands name the user's own files and take minutes; the
other tests run each command itself."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import typer

from designer.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    text = README.read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)  # continuation lines
        for line in joined.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("mpdesign ") or "-m designer.cli " in line:
                commands.append(line.split("-m designer.cli ", 1)[-1].removeprefix("mpdesign "))
    return commands


def test_the_readme_shows_commands():
    assert len(readme_commands()) >= 25


@pytest.mark.parametrize("command", readme_commands())
def test_every_readme_command_parses_as_written(command):
    group = typer.main.get_command(app)
    args = shlex.split(command)
    name, rest = args[0], args[1:]
    sub = group.get_command(click.Context(group), name)
    assert sub is not None, f"no command {name!r}"
    sub.make_context(name, rest)  # raises click.UsageError on an unknown option, a bad value or choice
