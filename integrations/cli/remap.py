"""`integrations remap`: re-apply changed mappings to history without fetching again."""

from __future__ import annotations

from pathlib import Path

import click

from integrations.cli._common import db_option, parse_time, print_table


@click.command(name="remap")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None)
@db_option
@click.option("--tenant", default=None, help="Only this tenant [default: all].")
@click.option("--plugin", default=None)
@click.option("--source", default=None)
@click.option("--since", default=None, help="Only raw records received from this time (ISO-8601).")
@click.option("--engine", default=None, help="Mapping engine: auto, python or sql.")
def command(config_file: Path | None, db: Path | None, tenant: str | None, plugin: str | None, source: str | None,
            since: str | None, engine: str | None) -> int:
    """Map the raw records kept per source again with today's mappings; updates the events they give."""
    from integrations.store import EventStore
    from runner import load_runner_config
    from runner._remap import remap

    config = load_runner_config(config_file, required=config_file is not None)
    store = EventStore(db or config.store)
    reports = remap(store, mappings=config.mappings, tenant=tenant, plugin=plugin, source=source,
                    since=parse_time(since, "--since"), engine_name=engine or config.engine,
                    run_id=store.new_run_id() if store.path.exists() else None)
    print_table("remap", ["tenant", "plugin", "source", "read", "events", "new", "updated", "unchanged", "rejected",
                          "status"],
                [[r.tenant_id, r.plugin, r.source, r.read, r.events, r.inserted, r.updated, r.unchanged, r.rejected,
                  r.status if not r.error else f"{r.status}: {r.error}"] for r in reports])
    return 1 if reports and all(r.status == "failed" for r in reports) else 0
