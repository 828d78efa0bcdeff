"""Reads and writes of the `integration_health` table: one JSON row of figures per (tenant, plugin).

The runner's health monitor writes its figures here so that `integrations health`, the workbench
and notebooks (other processes) can read them. Each function takes an `EventStore` (opening its
own short connection or transaction) or a duckdb connection already open (joining its transaction).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from integrations.errors import StoreError
from integrations.store._store import EventStore, canonical_json, utcnow

StoreLike = EventStore | duckdb.DuckDBPyConnection | str | Path


def _as_store(target: StoreLike) -> EventStore | duckdb.DuckDBPyConnection:
    if isinstance(target, (str, Path)):
        return EventStore(target)
    return target


@contextlib.contextmanager
def _writing(target: StoreLike) -> Iterator[duckdb.DuckDBPyConnection]:
    target = _as_store(target)
    if isinstance(target, EventStore):
        with target.transaction() as conn:
            yield conn
    else:
        yield target


def _updated_at(figures: Mapping[str, Any]) -> datetime:
    value = figures.get("updated_at")
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    return utcnow()


def save_health(store_or_conn: StoreLike, tenant: str, plugin: str, figures: Mapping[str, Any]) -> None:
    """Insert or replace the figures of one (tenant, plugin)."""
    save_health_many(store_or_conn, [{**figures, "tenant": tenant, "plugin": plugin}])


def save_health_many(store_or_conn: StoreLike, rows: Iterable[Mapping[str, Any]]) -> int:
    """Insert or replace many figures in one transaction; each row names its `tenant` and `plugin`."""
    rows = list(rows)
    if not rows:
        return 0
    for row in rows:
        if not row.get("tenant") or not row.get("plugin"):
            raise StoreError("health figures must name their tenant and plugin", field="tenant")
    with _writing(store_or_conn) as conn:
        for row in rows:
            figures = {k: v for k, v in row.items() if k not in ("tenant", "plugin", "updated_at")}
            conn.execute("INSERT OR REPLACE INTO integration_health VALUES (?, ?, ?::JSON, ?)",
                         [row["tenant"], row["plugin"], canonical_json(figures), _updated_at(row)])
    return len(rows)


def load_health(store: StoreLike, tenant: str | None = None) -> list[dict[str, Any]]:
    """Saved figures, sorted by tenant and plugin; each dict has `tenant`, `plugin`, `updated_at`."""
    target = _as_store(store)
    sql = "SELECT tenant_id, plugin, figures, updated_at FROM integration_health"
    params: list[Any] = []
    if tenant is not None:
        sql += " WHERE tenant_id = ?"
        params.append(tenant)
    sql += " ORDER BY tenant_id, plugin"
    if isinstance(target, EventStore):
        if not target.path.exists():
            return []
        with target.reader() as conn:
            rows = _select(conn, sql, params)
    else:
        rows = _select(target, sql, params)
    out = []
    for tenant_id, plugin, figures, updated_at in rows:
        data = json.loads(figures) if isinstance(figures, str) else dict(figures or {})
        data.update({"tenant": tenant_id, "plugin": plugin,
                     "updated_at": updated_at.isoformat() if isinstance(updated_at, datetime) else updated_at})
        out.append(data)
    return out


def _select(conn: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    try:
        return conn.execute(sql, params).fetchall()
    except duckdb.CatalogException:  # a store from before the health table existed: nothing saved yet
        return []


def delete_health(store_or_conn: StoreLike, tenant: str, plugin: str | None = None) -> None:
    """Forget the figures of a tenant's plugin (or of all its plugins)."""
    with _writing(store_or_conn) as conn:
        if plugin is None:
            conn.execute("DELETE FROM integration_health WHERE tenant_id = ?", [tenant])
        else:
            conn.execute("DELETE FROM integration_health WHERE tenant_id = ? AND plugin = ?", [tenant, plugin])


__all__ = ["delete_health", "load_health", "save_health", "save_health_many"]
