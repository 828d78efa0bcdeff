"""`integrations dlq list|replay`: records and requests that failed, kept with their reason."""

from __future__ import annotations

import json
from pathlib import Path

import click

from integrations.cli._common import db_option, open_store, print_table, tenant_option
from integrations.deadletters import replay_dead_letters


@click.group(name="dlq")
def command() -> None:
    """List and replay dead letters."""


@command.command(name="list")
@db_option
@tenant_option()
@click.option("--plugin")
@click.option("--source")
@click.option("--all", "show_all", is_flag=True, help="Include replayed ones.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines with the records.")
def list_dead_letters(db: Path | None, tenant: str, plugin: str | None, source: str | None, show_all: bool,
                      as_json: bool) -> None:
    """A tenant's dead letters: what failed, why, where, how often."""
    rows = open_store(db).list_dead_letters(tenant, plugin=plugin, source=source, status=None if show_all else "open")
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, sort_keys=True, default=str))
        return
    print_table(f"{len(rows)} dead letter(s) of tenant {tenant}",
                ["id", "kind", "plugin", "source", "record", "field", "reason", "attempts", "status"],
                [[r["dead_letter_id"][:12], r["kind"], r["plugin"], r["source"], r["record_index"], r["field"],
                  r["reason"][:70], r["attempts"], r["status"]] for r in rows])


@command.command(name="replay")
@db_option
@tenant_option()
@click.option("--plugin")
@click.option("--source")
@click.option("--engine", default="auto", show_default=True)
def replay(db: Path | None, tenant: str, plugin: str | None, source: str | None, engine: str) -> int:
    """Map open dead letters again (after a mapping fix); those that map leave the queue.

    Requests that failed to fetch are re-issued by running their sources again from their watermarks.
    """
    from runner import replay_fetch_dead_letters

    outcome = replay_dead_letters(open_store(db), tenant, plugin=plugin, source=source, engine_name=engine,
                                  fetch_replayer=replay_fetch_dead_letters)
    print_table(f"replay for tenant {tenant}", ["plugin", "source", "kind", "tried", "replayed", "still failing"],
                [[k[0], k[1], k[2], v["tried"], v["replayed"], v["failing"]] for k, v in sorted(outcome.items())])
    return 0
