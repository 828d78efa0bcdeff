"""`integrations config show|set|history`: a tenant's configuration, changed with permission and audit."""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml

from integrations.cli._common import db_option, open_store, print_table
from integrations.store._tenants import list_audit
from integrations.tenants import TenantAdmin, current_actor, require


def actor_option(func):
    return click.option("--actor", default=None, help="Who is acting [default: $INTEGRATIONS_ACTOR or login name].")(func)


def tenants_dir_option(func):
    return click.option("--tenants-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help="Tenant configuration folder [default: tenants].")(func)


@click.group(name="config")
def command() -> None:
    """Show, change and audit a tenant's configuration."""


@command.command(name="show")
@click.option("--tenant", required=True)
@actor_option
@tenants_dir_option
@db_option
def show(tenant: str, actor: str | None, tenants_dir: Path | None, db: Path | None) -> None:
    """The tenant's configuration (secret-looking values redacted)."""
    admin = TenantAdmin(open_store(db), tenants_dir)
    click.echo(yaml.safe_dump(admin.show(tenant, current_actor(actor)), sort_keys=False), nl=False)


@command.command(name="set")
@click.option("--tenant", required=True)
@click.argument("key")
@click.argument("value")
@actor_option
@tenants_dir_option
@db_option
def set_value(tenant: str, key: str, value: str, actor: str | None, tenants_dir: Path | None, db: Path | None) -> None:
    """Set KEY (dotted, e.g. integrations.github.rate_limits.requests_per_second) to VALUE (YAML; 'null' removes)."""
    admin = TenantAdmin(open_store(db), tenants_dir)
    diff = admin.set(tenant, current_actor(actor), key, yaml.safe_load(value))
    click.echo(diff or "no change")


@command.command(name="history")
@click.option("--tenant", required=True)
@click.option("--json", "as_json", is_flag=True)
@actor_option
@tenants_dir_option
@db_option
def history(tenant: str, as_json: bool, actor: str | None, tenants_dir: Path | None, db: Path | None) -> None:
    """Every accepted change to the tenant: who, when, what."""
    store = open_store(db)
    admin = TenantAdmin(store, tenants_dir)
    require(admin.load(tenant), current_actor(actor), "config.read")
    rows = list_audit(store, tenant)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, default=str, sort_keys=True))
        return
    print_table(f"audit of tenant {tenant}", ["when", "actor", "action", "target"],
                [[str(r["occurred_at"])[:19], r["actor"], r["action"], r["target"]] for r in rows])
