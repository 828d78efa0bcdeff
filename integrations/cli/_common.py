"""Options and output helpers shared by the subcommands."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from integrations.errors import UsageError
from integrations.store import EventStore, default_store_path


def db_option(func):
    return click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        envvar="INTEGRATIONS_STORE", show_envvar=True,
                        help="Event store file [default: data/integrations.duckdb].")(func)


def tenant_option(required: bool = False, default: str | None = "demo"):
    def deco(func):
        return click.option("--tenant", "tenant", default=None if required else default, required=required,
                            envvar="INTEGRATIONS_TENANT", show_default=not required, help="Tenant id.")(func)
    return deco


def open_store(db: Path | None) -> EventStore:
    return EventStore(db or default_store_path())


def parse_time(value: str | None, option: str) -> datetime | None:
    """ISO-8601 (date or date-time); naive means UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option}: '{value}' is not an ISO-8601 date or time",
                         hint="e.g. 2024-05-01 or 2024-05-01T12:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _width(stream) -> int | None:
    """Wide tables when output is piped (rich would otherwise wrap at 80 columns)."""
    return None if stream.isatty() else 200


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, width=_width(sys.stderr))


def stdout_console() -> Console:
    return Console(highlight=False, width=_width(sys.stdout))


def print_table(title: str | None, columns: list[str], rows: list[list[Any]], *, console: Console | None = None) -> None:
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="right" if rows and isinstance(rows[0][i], (int, float)) else "left")
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    (console or stdout_console()).print(table)


def write_json_line(data: Any) -> None:
    sys.stdout.write(json.dumps(data, sort_keys=True, default=str, ensure_ascii=False) + "\n")
