"""`integrations run`: the main job, on the embedded defaults unless told otherwise."""

from __future__ import annotations

from pathlib import Path

import click

from integrations.cli._common import db_option, print_table
from integrations.paths import mappings_dir, samples_dir
from integrations.store import default_store_path


@click.command(name="run")
@db_option
@click.option("--tenant", "tenants", multiple=True, help="Tenant(s) to run [default: demo].")
@click.option("--samples", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Sample records folder [default: data/samples].")
@click.option("--mappings", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Mappings folder [default: mappings].")
@click.option("--tenants-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Tenant configuration folder [default: tenants].")
@click.option("--engine", default="auto", show_default=True, help="Mapping engine: auto, python or sql.")
def command(db: Path | None, tenants: tuple[str, ...], samples: Path | None, mappings: Path | None,
            tenants_dir: Path | None, engine: str) -> int:
    """Read every source of each tenant, map it and upsert the events into the store.

    Exit 0 when at least one source ran (rejections are reported, not fatal); 1 when every source failed.
    """
    from integrations.credentials import EnvironmentMasterKeys
    from runner import RunOptions, run

    EnvironmentMasterKeys(create=True).current()  # first run: a local master key, with a warning

    options = RunOptions(store_path=db or default_store_path(), tenants=list(tenants) or ["demo"],
                         samples=samples or samples_dir(), mappings=mappings or mappings_dir(), engine=engine)
    if tenants_dir is not None:
        options.tenants_dir = tenants_dir
    report = run(options)
    rows = [[s.tenant_id, s.plugin, s.source, s.read, s.mapped, s.filtered, s.rejected, s.events, s.inserted,
             s.status if not s.error else f"{s.status}: {s.error}"] for s in report.sources]
    print_table(f"run {report.run_id} -> {options.store_path}",
                ["tenant", "plugin", "source", "read", "mapped", "filtered", "rejected", "events", "new", "status"], rows)
    if not report.sources:
        click.secho(f"no sources found under {options.samples} for tenant(s) {', '.join(options.tenants)}", fg="yellow",
                    err=True)
    rejected = sum(s.rejected for s in report.sources)
    if rejected:
        click.echo(f"{rejected} record(s) rejected: see `integrations dlq list`", err=True)
    return 1 if report.all_failed else 0
