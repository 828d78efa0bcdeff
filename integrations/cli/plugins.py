"""`integrations plugins list|show`: what the registry found, and what it refused."""

from __future__ import annotations

import json

import click

from integrations.cli._common import print_table
from integrations.errors import UsageError
from integrations.plugins import load_registry


@click.group(name="plugins")
def command() -> None:
    """List and show registered plugins."""


@command.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="JSON for machines.")
def list_plugins(as_json: bool) -> None:
    """Every registered plugin (name, version, status, sources) and every plugin that was refused."""
    registry = load_registry()
    entries = registry.list_entries()
    if as_json:
        click.echo(json.dumps({"plugins": [e.model_dump() for e in entries],
                               "refused": [p.__dict__ for p in registry.problems]}, indent=2, sort_keys=True))
        return
    print_table("plugins", ["name", "version", "status", "distribution", "events", "sources", "credentials"],
                [[e.name, e.version, e.status, e.distribution, ", ".join(e.supported_events), ", ".join(e.sources),
                  ", ".join(e.required_credentials)] for e in entries])
    for problem in registry.problems:
        click.secho(f"refused {problem.entry_point} ({problem.distribution}): {problem.message}", fg="yellow", err=True)


@command.command(name="show")
@click.argument("name")
def show_plugin(name: str) -> None:
    """One plugin's registry entry, including its configuration schema."""
    registry = load_registry()
    entries = [e for e in registry.list_entries() if e.name == name]
    if not entries:
        known = ", ".join(sorted({e.name for e in registry.list_entries()}))
        raise UsageError(f"no plugin named '{name}'", hint=f"registered: {known}")
    click.echo(json.dumps([e.model_dump() for e in entries], indent=2, sort_keys=True))
