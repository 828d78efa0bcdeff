"""The sink outbox: which stored events each sink still has to receive, in order per tenant.

One row per (tenant, sink, event): `seq` orders delivery within a tenant and sink, `delivered_at`
is set only once the sink took the event, `attempts` and `last_error` say why it is still here.

The outbox is derived from the events table, so nothing can slip past it. `enqueue()` queues
every event of a tenant that the sink has not been given yet, or that changed since it was queued
(its `updated_at` is later than the row's `enqueued_at`); a changed event is queued again at the
end, so the sink gets its newest content. Run inside the transaction that writes the events (with
their ids), it costs a join over the batch; run as a sweep (no ids) before delivering, it catches
up with events written by any path (a run that crashed after its commit, `remap`, `dlq replay`).

Delivered rows are kept: they are what tells the sweep that an event was already handed over.
Every read and write of the `sink_outbox` table is here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from integrations.events import CanonicalEvent
from integrations.store._store import row_to_event, utcnow

Pending = tuple[int, str]  # (seq, event_id)


def enqueue(conn: duckdb.DuckDBPyConnection, tenant_id: str, sinks: Sequence[str],
            event_ids: Iterable[str] | None = None, *, now: datetime | None = None) -> dict[str, int]:
    """Queue the tenant's new or changed events for each sink; returns how many were queued per sink.

    With `event_ids`, only those events are considered (call it in the transaction that upserted
    them); without, every event of the tenant is (the catch-up sweep).
    """
    now = now or utcnow()
    counts: dict[str, int] = {}
    ids = None if event_ids is None else sorted(set(event_ids))
    if ids is not None and not ids:
        return {sink: 0 for sink in sinks}
    if ids is not None:
        conn.register("_outbox_ids", pa.table({"event_id": pa.array(ids, pa.string())}))
    try:
        only_ids = "AND e.event_id IN (SELECT event_id FROM _outbox_ids)" if ids is not None else ""
        for sink in sinks:
            base = conn.execute("SELECT coalesce(max(seq), 0) FROM sink_outbox WHERE tenant_id = ? AND sink = ?",
                                [tenant_id, sink]).fetchall()[0][0]
            rows = conn.execute(f"""
                INSERT INTO sink_outbox (tenant_id, sink, event_id, seq, enqueued_at, delivered_at, attempts, last_error)
                SELECT ?, ?, todo.event_id,
                       ? + row_number() OVER (ORDER BY todo.updated_at, todo.occurred_at, todo.event_id),
                       ?, NULL, 0, NULL
                FROM (SELECT e.event_id, e.updated_at, e.occurred_at
                      FROM events e
                      LEFT JOIN sink_outbox o
                        ON o.tenant_id = e.tenant_id AND o.sink = ? AND o.event_id = e.event_id
                      WHERE e.tenant_id = ? {only_ids}
                        AND (o.event_id IS NULL OR o.enqueued_at < e.updated_at)) todo
                ON CONFLICT (tenant_id, sink, event_id) DO UPDATE SET
                    seq = excluded.seq, enqueued_at = excluded.enqueued_at,
                    delivered_at = NULL, attempts = 0, last_error = NULL""",
                                [tenant_id, sink, base, now, sink, tenant_id]).fetchall()
            counts[sink] = int(rows[0][0]) if rows else 0
    finally:
        if ids is not None:
            conn.unregister("_outbox_ids")
    return counts


def drop_orphans(conn: duckdb.DuckDBPyConnection, tenant_id: str) -> int:
    """Forget rows whose event is gone from the store (deleted by retention): nothing left to send."""
    rows = conn.execute("""
        DELETE FROM sink_outbox o
        WHERE o.tenant_id = ?
          AND NOT EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = o.tenant_id AND e.event_id = o.event_id)""",
                        [tenant_id]).fetchall()
    return int(rows[0][0]) if rows else 0


def pending_events(conn: duckdb.DuckDBPyConnection, tenant_id: str, sink: str,
                   limit: int) -> list[tuple[int, CanonicalEvent]]:
    """The next `limit` undelivered events of a tenant for a sink, in `seq` order, as stored now."""
    cur = conn.execute("""
        SELECT o.seq AS _seq, e.*
        FROM sink_outbox o JOIN events e ON e.tenant_id = o.tenant_id AND e.event_id = o.event_id
        WHERE o.tenant_id = ? AND o.sink = ? AND o.delivered_at IS NULL
        ORDER BY o.seq
        LIMIT ?""", [tenant_id, sink, int(limit)])
    names = [d[0] for d in cur.description]
    out = []
    for values in cur.fetchall():
        row = dict(zip(names, values))
        out.append((int(row.pop("_seq")), row_to_event(row)))
    return out


def pending_days(conn: duckdb.DuckDBPyConnection, tenant_id: str, sink: str) -> list[tuple[str, list[Pending]]]:
    """Undelivered rows of a tenant for a sink, grouped by the UTC day of their event, oldest queued first."""
    rows = conn.execute("""
        SELECT strftime(e.occurred_at AT TIME ZONE 'UTC', '%Y-%m-%d') AS day, o.seq, o.event_id
        FROM sink_outbox o JOIN events e ON e.tenant_id = o.tenant_id AND e.event_id = o.event_id
        WHERE o.tenant_id = ? AND o.sink = ? AND o.delivered_at IS NULL
        ORDER BY o.seq""", [tenant_id, sink]).fetchall()
    days: dict[str, list[Pending]] = {}
    for day, seq, event_id in rows:
        days.setdefault(day, []).append((int(seq), event_id))
    return list(days.items())


def _mark(conn: duckdb.DuckDBPyConnection, tenant_id: str, sink: str, rows: Sequence[Pending], set_sql: str,
          params: list[Any]) -> int:
    if not rows:
        return 0
    conn.register("_outbox_rows", pa.table({"seq": pa.array([r[0] for r in rows], pa.int64()),
                                            "event_id": pa.array([r[1] for r in rows], pa.string())}))
    try:
        done = conn.execute(f"""
            UPDATE sink_outbox SET {set_sql}
            FROM _outbox_rows r
            WHERE sink_outbox.tenant_id = ? AND sink_outbox.sink = ?
              AND sink_outbox.event_id = r.event_id AND sink_outbox.seq = r.seq""",
                            [*params, tenant_id, sink]).fetchall()
    finally:
        conn.unregister("_outbox_rows")
    return int(done[0][0]) if done else 0


def mark_delivered(conn: duckdb.DuckDBPyConnection, tenant_id: str, sink: str, rows: Sequence[Pending], *,
                   now: datetime | None = None) -> int:
    """The sink took these rows. A row queued again since it was read (new `seq`) stays pending."""
    return _mark(conn, tenant_id, sink, rows, "delivered_at = ?, attempts = attempts + 1, last_error = NULL",
                 [now or utcnow()])


def mark_failed(conn: duckdb.DuckDBPyConnection, tenant_id: str, sink: str, rows: Sequence[Pending],
                error: str) -> int:
    """A delivery of these rows failed: count the attempt, keep the (secret-free) reason, keep them queued."""
    return _mark(conn, tenant_id, sink, rows, "attempts = attempts + 1, last_error = ?", [error[:2000]])


def outbox_summary(conn: duckdb.DuckDBPyConnection, tenant_id: str | None = None) -> list[dict[str, Any]]:
    """Per tenant and sink: delivered and pending counts, the oldest pending row, the last error."""
    sql = """
        SELECT tenant_id, sink,
               count(*) FILTER (WHERE delivered_at IS NOT NULL) AS delivered,
               count(*) FILTER (WHERE delivered_at IS NULL) AS pending,
               min(enqueued_at) FILTER (WHERE delivered_at IS NULL) AS oldest_pending,
               max(attempts) FILTER (WHERE delivered_at IS NULL) AS max_attempts,
               max(delivered_at) AS last_delivered,
               arg_max(last_error, seq) FILTER (WHERE delivered_at IS NULL AND last_error IS NOT NULL) AS last_error
        FROM sink_outbox"""
    params: list[Any] = []
    if tenant_id is not None:
        sql += " WHERE tenant_id = ?"
        params.append(tenant_id)
    sql += " GROUP BY tenant_id, sink ORDER BY tenant_id, sink"
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


__all__ = ["drop_orphans", "enqueue", "mark_delivered", "mark_failed", "outbox_summary", "pending_days",
           "pending_events"]
