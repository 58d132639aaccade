"""`mpdesign schema`: the JSON Schema of a payload a command prints or writes."""

from __future__ import annotations

import json

import typer

from designer.cli.common import fail

app = typer.Typer()
# designer.schemas.PAYLOADS (checked in tests)
PAYLOAD_NAMES = ("mapping", "map", "curve", "curves", "design", "prune", "channels", "nm", "quantize", "profile", "allocation",
                 "inspect-model", "inspect", "sweep")


@app.command()
def schema(name: str = typer.Argument(..., help="mapping (map --out), map (map --json), curve (map --curve --out) "
                                                "curves (prune --save-curves, allocate's input), design "
                                                "(design --json), prune, channels, nm (prune --json), quantize (quantize --json), profile (profile --out, design --profile), "
                                                "allocation (allocate), inspect-model (inspect --model --json), "
                                                "inspect (inspect SPEC --json), sweep (sweep --out, --json).",
                                      metavar="<" + "|".join(PAYLOAD_NAMES) + ">")) -> None:
    """Print the JSON Schema of a payload (docs/outputs.md describes them all)."""
    from designer.schemas import schema as payload_schema
    try:
        print(json.dumps(payload_schema(name), indent=1))
    except ValueError as error:
        fail(str(error))
