"""`integrations events list|export`: the stored events back, per tenant."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from integrations.cli._common import db_option, open_store, parse_time, print_table, tenant_option, write_json_line
from integrations.errors import UsageError
from integrations.events import EXPORT_FORMATS, format_rfc3339
from integrations.events import export_events as export_documents


@click.group(name="events")
def command() -> None:
    """List or export stored events."""


@command.command(name="list")
@db_option
@tenant_option()
@click.option("--kind", help="Only this kind (commit, alarm, ...).")
@click.option("--since", help="From this time (ISO-8601).")
@click.option("--until", help="Before this time (ISO-8601).")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON Lines instead of a table.")
def list_events(db: Path | None, tenant: str, kind: str | None, since: str | None, until: str | None,
                limit: int, as_json: bool) -> None:
    """A tenant's events in time order."""
    events = open_store(db).query_events(tenant, kind=kind, since=parse_time(since, "--since"),
                                         until=parse_time(until, "--until"), limit=limit)
    if as_json:
        for event in events:
            write_json_line(event.to_json_dict())
        return
    print_table(f"{len(events)} event(s) of tenant {tenant}", ["occurred_at", "type", "kind", "severity", "title"],
                [[format_rfc3339(e.occurred_at), e.event_type, e.kind, e.severity, e.title[:80]] for e in events])


@command.command(name="export")
@db_option
@tenant_option()
@click.option("--format", "fmt", type=click.Choice(sorted([*EXPORT_FORMATS, "parquet"])), default="jsonl",
              show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write [default: stdout].")
@click.option("--kind", help="Only this kind.")
@click.option("--since", help="From this time (ISO-8601).")
@click.option("--until", help="Before this time (ISO-8601).")
def export_events(db: Path | None, tenant: str, fmt: str, output: Path | None, kind: str | None,
                  since: str | None, until: str | None) -> None:
    """Export a tenant's events as JSON Lines, CloudEvents JSON Lines or Parquet."""
    events = open_store(db).query_events(tenant, kind=kind, since=parse_time(since, "--since"),
                                         until=parse_time(until, "--until"))
    if fmt == "parquet":
        if output is None:
            raise UsageError("--format parquet needs --output FILE")
        import pandas as pd

        rows = [e.to_json_dict() for e in events]
        frame = pd.DataFrame([{**{k: v for k, v in r.items() if k not in ("attributes", "integration_context")},
                               "attributes": json.dumps(r["attributes"], sort_keys=True),
                               "integration_context": json.dumps(r["integration_context"], sort_keys=True)}
                              for r in rows])
        frame.to_parquet(output, index=False)
        click.echo(f"wrote {len(rows)} event(s) to {output}", err=True)
        return
    documents, skipped = export_documents(fmt, events)
    out = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        for data in documents:
            out.write(json.dumps(data, sort_keys=True, default=str, ensure_ascii=False) + "\n")
    finally:
        if output:
            out.close()
            click.echo(f"wrote {len(documents)} document(s) to {output}", err=True)
    if skipped:
        click.echo(f"{skipped} event(s) have no {fmt} counterpart and were skipped", err=True)

