"""`integrations health`: each integration's state, breaker and figures, as the runner last saved them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


_STATE_STYLE = {"healthy": "green", "degraded": "yellow", "down": "red", "needs_credentials": "magenta"}
_BREAKER_STYLE = {"closed": "green", "half_open": "yellow", "open": "red"}


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}"


def _when(value: Any) -> str:
    if not value:
        return "-"
    text = str(value)
    return text.replace("T", " ")[:19] + "Z" if text.endswith(("+00:00", "Z")) else text[:25]


def render_table(rows: list[dict[str, Any]]) -> Any:
    """A rich table of saved health figures (one row per tenant and plugin)."""
    from rich.table import Table

    table = Table(title="Integration health", title_justify="left")
    for name, justify in (("tenant", "left"), ("plugin", "left"), ("state", "left"), ("breaker", "left"),
                          ("calls", "right"), ("failures", "right"), ("p50 ms", "right"), ("p95 ms", "right"),
                          ("last success", "left"), ("last error", "left")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        state = str(row.get("state") or "-")
        breaker = str(row.get("breaker_state") or "-")
        opens = row.get("breaker_opens") or 0
        breaker_text = f"[{_BREAKER_STYLE.get(breaker, 'white')}]{breaker}[/]" + (f" ({opens}x opened)" if opens else "")
        table.add_row(
            str(row.get("tenant")), str(row.get("plugin")),
            f"[{_STATE_STYLE.get(state, 'white')}]{state}[/]", breaker_text,
            str(row.get("calls", 0)), str(row.get("failures", 0)),
            _ms(row.get("latency_p50_ms")), _ms(row.get("latency_p95_ms")),
            _when(row.get("last_success")),
            row.get("last_error") or "-",
        )
    return table


@click.command(name="health")
@click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Event store file (default: $INTEGRATIONS_STORE or data/integrations.duckdb).")
@click.option("--tenant", default=None, help="Only this tenant's integrations.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def command(db: Path | None, tenant: str | None, as_json: bool) -> None:
    """Show each integration's health figures and breaker state."""
    from integrations.store import EventStore, default_store_path
    from integrations.store._health import load_health

    path = db if db is not None else default_store_path()
    rows = load_health(EventStore(path), tenant=tenant)
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True, default=str))
        return
    if not rows:
        who = f" for tenant {tenant}" if tenant else ""
        click.echo(f"no health figures recorded{who} in {path} yet; they appear after `integrations run`")
        return
    import sys

    from rich.console import Console

    # piped or captured output gets a wide table rather than one folded into 80 columns
    width = None if sys.stdout.isatty() else 200
    Console(soft_wrap=False, width=width).print(render_table(rows))
