"""`integrations tenant create|list|delete|purge`: a tenant's whole life."""

from __future__ import annotations

from pathlib import Path

import click

from integrations.cli._common import db_option, open_store, print_table
from integrations.cli.config import actor_option, tenants_dir_option
from integrations.store._tenants import purge_older_than
from integrations.tenants import TenantAdmin, current_actor, list_tenants


@click.group(name="tenant")
def command() -> None:
    """Create, list, delete tenants and apply their retention."""


@command.command(name="create")
@click.argument("tenant")
@click.option("--description", default="")
@actor_option
@tenants_dir_option
@db_option
def create(tenant: str, description: str, actor: str | None, tenants_dir: Path | None, db: Path | None) -> None:
    """Create tenants/TENANT.yaml with the acting person as its admin."""
    who = current_actor(actor)
    TenantAdmin(open_store(db), tenants_dir).create(tenant, who, description)
    click.echo(f"created tenant {tenant} ({who} is admin)")


@command.command(name="list")
@tenants_dir_option
def list_command(tenants_dir: Path | None) -> None:
    """The tenants that have a configuration file."""
    for tenant in list_tenants(tenants_dir):
        click.echo(tenant)


@command.command(name="delete")
@click.argument("tenant")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@actor_option
@tenants_dir_option
@db_option
def delete(tenant: str, yes: bool, actor: str | None, tenants_dir: Path | None, db: Path | None) -> None:
    """Delete every row and file of TENANT (events, dead letters, credentials, state); nothing of another's."""
    if not yes:
        click.confirm(f"Delete tenant {tenant} and all its data?", abort=True)
    counts = TenantAdmin(open_store(db), tenants_dir).delete(tenant, current_actor(actor))
    print_table(f"deleted tenant {tenant}", ["table", "rows"], [[t, n] for t, n in sorted(counts.items())])


@command.command(name="purge")
@click.option("--tenant", "tenants", multiple=True, help="Tenant(s) [default: every tenant with a retention].")
@tenants_dir_option
@db_option
def purge(tenants: tuple[str, ...], tenants_dir: Path | None, db: Path | None) -> None:
    """Apply each tenant's retention_days: drop older events and raw records."""
    store = open_store(db)
    admin = TenantAdmin(store, tenants_dir)
    rows = []
    for tenant in tenants or tuple(list_tenants(tenants_dir)):
        config = admin.load(tenant)
        if config.retention_days:
            counts = purge_older_than(store, tenant, config.retention_days)
            rows.append([tenant, config.retention_days, counts["events"], counts["raw_records"]])
    print_table("retention", ["tenant", "days", "events purged", "raw records purged"], rows)
