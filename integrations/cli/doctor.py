"""`integrations doctor`: configuration, credentials and connectivity of every tenant integration."""

from __future__ import annotations

import json
from pathlib import Path

import click

from integrations.cli._common import print_table


@click.command(name="doctor")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--tenant", "tenants", multiple=True, help="Only these tenants [default: all known].")
@click.option("--json", "as_json", is_flag=True)
def command(config_file: Path | None, tenants: tuple[str, ...], as_json: bool) -> int:
    """Check runner.yaml, tenant files, plugins, mappings, credentials and connectivity; writes nothing.

    Exit 1 when any check is an error.
    """
    from runner import load_runner_config
    from runner._doctor import diagnose

    config = load_runner_config(config_file, required=config_file is not None)
    checks = diagnose(config, list(tenants) or None)
    if as_json:
        click.echo(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        print_table("doctor", ["tenant", "target", "check", "status", "detail"],
                    [[c.tenant, c.target, c.check, c.status, c.detail] for c in checks])
    errors = sum(1 for c in checks if c.status == "error")
    click.secho(f"{errors} error(s), {sum(1 for c in checks if c.status == 'warn')} warning(s)",
                fg="red" if errors else "green", err=True)
    return 1 if errors else 0
