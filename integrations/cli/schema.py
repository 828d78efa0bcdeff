"""`integrations schema event|mapping`: JSON Schemas for the public formats."""

from __future__ import annotations

import json

import click

from integrations.events import CanonicalEvent
from integrations.mapping import mapping_json_schema


@click.command(name="schema")
@click.argument("what", type=click.Choice(["event", "mapping"]))
def command(what: str) -> None:
    """Print the JSON Schema of canonical events or of mapping files."""
    if what == "event":
        schema = CanonicalEvent.model_json_schema(mode="serialization")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = "Canonical event"
    else:
        schema = mapping_json_schema()
    click.echo(json.dumps(schema, indent=2, sort_keys=True))
