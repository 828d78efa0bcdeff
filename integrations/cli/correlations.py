"""`integrations correlations list|explain|enrich`: the links enrichment made, and why."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from integrations.cli._common import db_option, open_store, print_table, tenant_option, write_json_line
from integrations.events import format_rfc3339

config_option = click.option(
    "--config", "config", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Runner configuration with `enrichment: rules:` [default: runner.yaml when present, else the built-in rules].")


@click.group(name="correlations")
def command() -> None:
    """List correlations and explain how an event was correlated."""


@command.command(name="list")
@db_option
@tenant_option()
@click.option("--rule", help="Only links made by this rule.")
@click.option("--event", "event_id", help="Only links of this event (its id).")
@click.option("--limit", type=int, default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON Lines instead of a table.")
def list_correlations(db: Path | None, tenant: str, rule: str | None, event_id: str | None, limit: int,
                      as_json: bool) -> None:
    """A tenant's links: which rule linked which events, how far apart, how sure."""
    from integrations.enrichment import format_delta
    from integrations.enrichment._explain import describe_matched
    from integrations.store._correlations import list_correlations as rows_of

    with open_store(db).reader() as conn:
        rows = rows_of(conn, tenant, rule=rule, event_id=event_id, limit=limit)
    if as_json:
        for row in rows:
            write_json_line(row)
        return
    print_table(f"{len(rows)} correlation(s) of tenant {tenant}",
                ["rule", "event", "related", "when", "confidence", "matched"],
                [[r["rule"],
                  f"{r['event_kind']} {r['event_id'][:8]} ({r['event_source_integration']}) "
                  f"{format_rfc3339(r['event_occurred_at'])}",
                  f"{r['related_kind']} {r['related_event_id'][:8]} ({r['related_source_integration']})",
                  format_delta(r["delta_seconds"] or 0.0), f"{r['confidence']:.3f}",
                  describe_matched(r["matched"] or {})[:90]] for r in rows])


@command.command(name="explain")
@click.argument("event_id")
@db_option
@tenant_option()
@config_option
@click.option("--limit", type=int, default=25, show_default=True, help="Candidates shown per rule.")
@click.option("--json", "as_json", is_flag=True, help="The explanation as one JSON document.")
def explain_event(event_id: str, db: Path | None, tenant: str, config: Path | None, limit: int, as_json: bool) -> None:
    """How EVENT_ID (or a unique start of it) was correlated: links, and candidates each rule turned down."""
    from integrations.enrichment import rules_from_config
    from integrations.enrichment._explain import explain

    explanation = explain(open_store(db), tenant, event_id, rules_from_config(config), limit=limit)
    if as_json:
        write_json_line(explanation.to_dict())
        return
    click.echo(explanation.render())


@command.command(name="enrich")
@db_option
@click.option("--tenant", "tenants", multiple=True, help="Tenant(s) to enrich [default: demo].")
@config_option
@click.option("--full", is_flag=True, help="Revisit every event, not only those that arrived since the last run.")
@click.option("--json", "as_json", is_flag=True, help="One JSON report per tenant.")
def enrich_tenants(db: Path | None, tenants: tuple[str, ...], config: Path | None, full: bool, as_json: bool) -> None:
    """Run the correlation rules now (the runner does this after each run)."""
    from integrations.enrichment import enrich, rules_from_config

    store = open_store(db)
    rules = rules_from_config(config)
    for tenant in tenants or ("demo",):
        report = enrich(store, tenant, rules, full=full)
        if as_json:
            write_json_line(dataclasses.asdict(report))
        else:
            click.echo(report.summary())
