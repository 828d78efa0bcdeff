"""Store operations on a whole tenant: audit records, deletion, retention.

Every table that holds tenant data has a `tenant_id` column; deletion finds them from the
catalogue, so a table added by a later migration is covered without changing this code.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import duckdb

from integrations.store._store import EventStore, canonical_json, utcnow


def tenant_tables(conn: duckdb.DuckDBPyConnection) -> list[str]:
    rows = conn.execute("""SELECT table_name FROM information_schema.columns
                           WHERE column_name = 'tenant_id' AND table_schema = 'main'
                           ORDER BY table_name""").fetchall()
    return [r[0] for r in rows]


def add_audit(store: EventStore, tenant_id: str, actor: str, action: str, target: str, diff: Any, *,
              conn: duckdb.DuckDBPyConnection | None = None) -> str:
    """Append one audit record (who, when, what, and a diff with secrets already redacted)."""
    if conn is None:
        with store.transaction() as own:
            return add_audit(store, tenant_id, actor, action, target, diff, conn=own)
    audit_id = uuid.uuid4().hex
    conn.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?::JSON)",
                 [audit_id, tenant_id, actor, utcnow(), action, target, canonical_json(diff)])
    return audit_id


def list_audit(store: EventStore, tenant_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
    if not store.path.exists():
        return []
    with store.reader() as conn:
        cur = conn.execute(f"""SELECT audit_id, actor, occurred_at, action, target, diff FROM audit_log
                               WHERE tenant_id = ? ORDER BY occurred_at DESC, audit_id LIMIT {int(limit)}""",
                           [tenant_id])
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    for row in rows:
        row["diff"] = json.loads(row["diff"]) if isinstance(row["diff"], str) else row["diff"]
    return rows


def delete_tenant_rows(store: EventStore, tenant_id: str, actor: str) -> dict[str, int]:
    """Remove every row of the tenant from every table; the audit keeps only the deletion record."""
    counts: dict[str, int] = {}
    with store.transaction() as conn:
        for table in tenant_tables(conn):
            counts[table] = conn.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = ?",
                                         [tenant_id]).fetchall()[0][0]
            conn.execute(f"DELETE FROM {table} WHERE tenant_id = ?", [tenant_id])
        add_audit(store, tenant_id, actor, "tenant.delete", tenant_id, {"deleted_rows": counts}, conn=conn)
    return counts


def purge_older_than(store: EventStore, tenant_id: str, days: int, *, now: datetime | None = None) -> dict[str, int]:
    """Retention: drop the tenant's events and raw records older than `days`."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    with store.transaction() as conn:
        events = conn.execute("SELECT count(*) FROM events WHERE tenant_id = ? AND occurred_at < ?",
                              [tenant_id, cutoff]).fetchall()[0][0]
        conn.execute("DELETE FROM events WHERE tenant_id = ? AND occurred_at < ?", [tenant_id, cutoff])
        raw = conn.execute("SELECT count(*) FROM raw_records WHERE tenant_id = ? AND received_at < ?",
                           [tenant_id, cutoff]).fetchall()[0][0]
        conn.execute("DELETE FROM raw_records WHERE tenant_id = ? AND received_at < ?", [tenant_id, cutoff])
    return {"events": events, "raw_records": raw}
