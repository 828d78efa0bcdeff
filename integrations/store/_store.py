"""Every read and write of the event store. Each one names its tenant.

Tables: `events` (upserted by event_id), `dead_letter` (records and requests that failed, with
the reason, for replay), `runs` (what each run did), `watermarks` (where each source got to,
written in the same transaction as its events), `raw_records` (what each source received, so a
changed mapping can be re-applied without fetching again).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from integrations.errors import StoreError
from integrations.events import CanonicalEvent
from integrations.store._connection import DEFAULT_STORE, attach, connection, in_transaction, migrate


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def canonical_json(value: Any) -> str:
    """Stable JSON text (sorted keys, no spaces): the basis of content and record hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def record_hash(record: Any) -> str:
    return hashlib.sha256(canonical_json(record).encode("utf-8")).hexdigest()


@dataclass
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: "UpsertCounts") -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged


_EVENT_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("tenant_id", pa.string()), ("event_type", pa.string()), ("kind", pa.string()),
    ("severity", pa.string()), ("title", pa.string()), ("occurred_at", pa.timestamp("us", tz="UTC")),
    ("source_integration", pa.string()), ("source", pa.string()), ("external_id", pa.string()),
    ("resource_ids", pa.list_(pa.string())), ("hint_values", pa.list_(pa.string())),
    ("attributes", pa.string()), ("integration_context", pa.string()), ("content_hash", pa.string()),
    ("source_precedence", pa.int32()), ("seq", pa.int64()),
])


def _event_rows(events: Sequence[CanonicalEvent], source: str | None, precedence: int = 100) -> pa.Table:
    cols: dict[str, list[Any]] = {name: [] for name in _EVENT_SCHEMA.names}
    for seq, event in enumerate(events):
        data = event.to_json_dict(with_ingested_at=False)
        ctx = data["integration_context"]
        cols["event_id"].append(event.event_id)
        cols["tenant_id"].append(event.tenant_id)
        cols["event_type"].append(event.event_type)
        cols["kind"].append(event.kind)
        cols["severity"].append(event.severity)
        cols["title"].append(event.title)
        cols["occurred_at"].append(event.occurred_at)
        cols["source_integration"].append(ctx["source_integration"])
        cols["source"].append(source)
        cols["external_id"].append(ctx["external_id"])
        cols["resource_ids"].append(list(event.resource_ids))
        cols["hint_values"].append(sorted({h["value"] for h in ctx["correlation_hints"]}))
        cols["attributes"].append(canonical_json(data["attributes"]))
        cols["integration_context"].append(canonical_json(ctx))
        cols["content_hash"].append(hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest())
        cols["source_precedence"].append(precedence)
        cols["seq"].append(seq)
    return pa.table(cols, schema=_EVENT_SCHEMA)


def row_to_event(row: dict[str, Any]) -> CanonicalEvent:
    """A stored row back as a CanonicalEvent."""
    ctx = row["integration_context"]
    attrs = row["attributes"]
    return CanonicalEvent.model_validate({
        "event_id": row["event_id"], "tenant_id": row["tenant_id"], "event_type": row["event_type"],
        "kind": row["kind"], "severity": row["severity"], "title": row["title"],
        "occurred_at": row["occurred_at"], "ingested_at": row["ingested_at"],
        "resource_ids": list(row["resource_ids"] or []),
        "attributes": json.loads(attrs) if isinstance(attrs, str) else attrs,
        "integration_context": json.loads(ctx) if isinstance(ctx, str) else ctx,
    })


class EventStore:
    """The DuckDB event store at `path`. Cheap to create; connections are opened per operation."""

    def __init__(self, path: str | Path = DEFAULT_STORE, *, lock_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self._migrated = False

    # -- connections -------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One writing transaction: everything inside commits together or not at all."""
        with connection(self.path, read_only=False, lock_timeout=self.lock_timeout) as conn:
            if not self._migrated:
                migrate(conn)
                self._migrated = True
            with in_transaction(conn):
                yield conn

    @contextlib.contextmanager
    def attached(self, conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
        """One writing transaction on another DuckDB's connection, with the store as its default catalog.

        The fast mapping path computes events in a private in-memory database; attaching the store
        there merges them straight from its tables, and the file is held only for the merge.
        """
        if not self._migrated:
            self.initialize()
        alias = "_event_store"
        attach(conn, self.path, alias=alias, lock_timeout=self.lock_timeout)
        previous = conn.execute("SELECT current_database()").fetchall()[0][0]
        try:
            conn.execute(f"USE {alias}")
            with in_transaction(conn):
                yield conn
        finally:
            conn.execute(f"USE {previous}")
            conn.execute(f"DETACH {alias}")

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short read-only connection (workbench, notebooks, list commands)."""
        with connection(self.path, read_only=True, lock_timeout=self.lock_timeout) as conn:
            yield conn

    def initialize(self) -> None:
        """Create the file and bring its schema up to date."""
        with self.transaction():
            pass

    # -- events ------------------------------------------------------------------------------

    def upsert_events(self, events: Sequence[CanonicalEvent], *, source: str | None = None, precedence: int = 100,
                      run_id: str | None = None, conn: duckdb.DuckDBPyConnection | None = None) -> UpsertCounts:
        """Insert new events, update changed ones, leave unchanged ones (and their ingested_at) alone.

        The same fact may come from two sources (an alarm from its history and from EventBridge, a
        pull request from a webhook and from polling): one event id. Its content is then the one of
        the source that ranks first (lower `precedence`, then source name), whatever the order of
        arrival, so re-running or remapping never flips it back and forth.
        """
        if not events:
            return UpsertCounts()
        if conn is None:
            with self.transaction() as own:
                return self.upsert_events(events, source=source, precedence=precedence, run_id=run_id, conn=own)
        batch = _event_rows(events, source, precedence)
        conn.register("_incoming", batch)
        try:
            conn.execute("""
                CREATE OR REPLACE TEMP TABLE _batch AS
                SELECT * EXCLUDE (seq) FROM _incoming
                QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY seq DESC) = 1""")
            return self.merge_staged(conn, "_batch", run_id=run_id)
        finally:
            conn.execute("DROP TABLE IF EXISTS _batch")
            conn.unregister("_incoming")

    @staticmethod
    def merge_staged(conn: duckdb.DuckDBPyConnection, staged: str, *, run_id: str | None = None) -> UpsertCounts:
        """Merge a staged table of event rows (one per event id, `_EVENT_SCHEMA` columns) into `events`.

        Every engine writes through here, so they all follow the same rules: new ids are inserted,
        changed content from the same or a higher-ranking source updates the row (keeping
        `ingested_at` and any enrichment), everything else is left alone.
        """
        # Joins build their hash table on the staged side and stream `events` past it, so memory
        # follows the batch, not the store (a join that hashed `events` ran out of memory at a
        # million rows). `_present`: the staged ids the store has, and whether this row replaces it.
        wins = """(b.source IS NOT DISTINCT FROM e.source
                    OR b.source_precedence < coalesce(e.source_precedence, 100)
                    OR (b.source_precedence = coalesce(e.source_precedence, 100) AND b.source < e.source))"""
        conn.execute(f"""
            CREATE OR REPLACE TEMP TABLE _present AS
            SELECT b.event_id, coalesce(e.tenant_id = b.tenant_id AND e.content_hash <> b.content_hash AND {wins},
                                        false) AS changed
            FROM {staged} b JOIN events e ON e.event_id = b.event_id""")
        try:
            total, present, updated = conn.execute(
                f"SELECT (SELECT count(*) FROM {staged}), count(*), count(*) FILTER (WHERE changed) FROM _present"
            ).fetchall()[0]
            inserted, unchanged = total - present, present - updated
            now = utcnow()
            if updated:
                conn.execute(f"""
                    UPDATE events SET event_type = b.event_type, kind = b.kind, severity = b.severity,
                        title = b.title, occurred_at = b.occurred_at, updated_at = ?, source = b.source,
                        source_precedence = b.source_precedence,
                        resource_ids = b.resource_ids, hint_values = b.hint_values,
                        attributes = b.attributes::JSON,
                        integration_context = json_merge_patch(b.integration_context::JSON,
                            json_object('enrichment_metadata',
                                        coalesce(events.integration_context -> 'enrichment_metadata', '{{}}'::JSON))),
                        content_hash = b.content_hash, run_id = ?
                    FROM (SELECT s.* FROM {staged} s SEMI JOIN _present p ON p.event_id = s.event_id AND p.changed) b
                    WHERE events.event_id = b.event_id""", [now, run_id])
            if inserted:
                conn.execute(f"""
                    INSERT INTO events (event_id, tenant_id, event_type, kind, severity, title, occurred_at, ingested_at,
                                        updated_at, source_integration, source, external_id, resource_ids, hint_values,
                                        attributes, integration_context, content_hash, run_id, source_precedence)
                    SELECT b.event_id, b.tenant_id, b.event_type, b.kind, b.severity, b.title, b.occurred_at,
                           ?, ?, b.source_integration, b.source, b.external_id, b.resource_ids, b.hint_values,
                           b.attributes::JSON, b.integration_context::JSON, b.content_hash, ?, b.source_precedence
                    FROM {staged} b ANTI JOIN _present p ON p.event_id = b.event_id""", [now, now, run_id])
        finally:
            conn.execute("DROP TABLE IF EXISTS _present")
        return UpsertCounts(inserted=inserted, updated=updated, unchanged=unchanged)

    def query_events(self, tenant_id: str, *, kind: str | None = None, event_type: str | None = None,
                     source_integration: str | None = None, since: datetime | None = None,
                     until: datetime | None = None, limit: int | None = None) -> list[CanonicalEvent]:
        """A tenant's events in time order, filtered."""
        sql = "SELECT * FROM events WHERE tenant_id = ?"
        params: list[Any] = [tenant_id]
        for column, value in (("kind", kind), ("event_type", event_type), ("source_integration", source_integration)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        if since is not None:
            sql += " AND occurred_at >= ?"
            params.append(since)
        if until is not None:
            sql += " AND occurred_at < ?"
            params.append(until)
        sql += " ORDER BY occurred_at, event_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        if not self.path.exists():
            return []
        with self.reader() as conn:
            cur = conn.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [row_to_event(dict(zip(names, row))) for row in cur.fetchall()]

    def count_events(self, tenant_id: str) -> int:
        if not self.path.exists():
            return 0
        with self.reader() as conn:
            return conn.execute("SELECT count(*) FROM events WHERE tenant_id = ?", [tenant_id]).fetchall()[0][0]

    # -- dead letters -----------------------------------------------------------------------

    def add_dead_letters(self, tenant_id: str, plugin: str, source: str, items: Iterable[dict[str, Any]], *,
                         kind: str = "mapping", run_id: str | None = None,
                         conn: duckdb.DuckDBPyConnection | None = None) -> int:
        """Keep failed records (or requests) with their reason; a repeat bumps `attempts`.

        Each item has `record`, `reason` and optionally `field`, `output`, `expression`, `record_index`.
        """
        items = list(items)
        if not items:
            return 0
        if conn is None:
            with self.transaction() as own:
                return self.add_dead_letters(tenant_id, plugin, source, items, kind=kind, run_id=run_id, conn=own)
        now = utcnow()
        for item in items:
            dl_id = hashlib.sha256(
                canonical_json([tenant_id, plugin, source, kind, item["record"]]).encode("utf-8")).hexdigest()[:32]
            conn.execute("""
                INSERT INTO dead_letter VALUES (?, ?, ?, ?, ?, ?::JSON, ?, ?, ?, ?, ?, ?, ?, 1, 'open', NULL, ?)
                ON CONFLICT (dead_letter_id) DO UPDATE SET
                    reason = excluded.reason, field = excluded.field, output = excluded.output,
                    expression = excluded.expression, last_seen = excluded.last_seen,
                    attempts = dead_letter.attempts + 1, status = 'open', resolved_at = NULL,
                    run_id = excluded.run_id""",
                [dl_id, tenant_id, plugin, source, kind, canonical_json(item["record"]), item["reason"],
                 item.get("field"), item.get("output"), item.get("expression"), item.get("record_index"),
                 now, now, run_id])
        return len(items)

    def list_dead_letters(self, tenant_id: str, *, plugin: str | None = None, source: str | None = None,
                          status: str | None = "open", kind: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        sql = "SELECT * FROM dead_letter WHERE tenant_id = ?"
        params: list[Any] = [tenant_id]
        for column, value in (("plugin", plugin), ("source", source), ("status", status), ("kind", kind)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        sql += " ORDER BY plugin, source, first_seen, dead_letter_id"
        with self.reader() as conn:
            cur = conn.execute(sql, params)
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, row)) for row in cur.fetchall()]
        for row in rows:
            row["record"] = json.loads(row["record"])
        return rows

    def resolve_dead_letters(self, tenant_id: str, ids: Sequence[str], *, conn: duckdb.DuckDBPyConnection) -> None:
        for dl_id in ids:
            conn.execute("UPDATE dead_letter SET status = 'replayed', resolved_at = ? WHERE tenant_id = ? AND dead_letter_id = ?",
                         [utcnow(), tenant_id, dl_id])

    # -- runs --------------------------------------------------------------------------------

    @staticmethod
    def new_run_id() -> str:
        return utcnow().strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]

    def record_run(self, row: dict[str, Any], *, conn: duckdb.DuckDBPyConnection | None = None) -> None:
        """Insert or replace one (run, tenant, plugin, source) row of the `runs` table."""
        if conn is None:
            with self.transaction() as own:
                return self.record_run(row, conn=own)
        columns = ["run_id", "tenant_id", "plugin", "source", "started_at", "finished_at", "duration_s", "read",
                   "mapped", "filtered", "rejected", "events", "inserted", "updated", "unchanged", "engine",
                   "status", "error"]
        values = [row.get(c) for c in columns]
        for i, c in enumerate(columns):
            if values[i] is None and c in ("read", "mapped", "filtered", "rejected", "events", "inserted", "updated", "unchanged"):
                values[i] = 0
        conn.execute(f"INSERT OR REPLACE INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", values)

    def list_runs(self, tenant_id: str | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        sql = "SELECT * FROM runs"
        params: list[Any] = []
        if tenant_id is not None:
            sql += " WHERE tenant_id = ?"
            params.append(tenant_id)
        sql += f" ORDER BY started_at DESC, plugin, source LIMIT {int(limit)}"
        with self.reader() as conn:
            cur = conn.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    # -- watermarks and raw records ------------------------------------------------------------

    def get_watermarks(self, tenant_id: str, plugin: str, source: str) -> dict[str, str]:
        if not self.path.exists():
            return {}
        with self.reader() as conn:
            rows = conn.execute("SELECT cursor_key, value FROM watermarks WHERE tenant_id = ? AND plugin = ? AND source = ?",
                                [tenant_id, plugin, source]).fetchall()
        return dict(rows)

    def set_watermarks(self, tenant_id: str, plugin: str, source: str, values: dict[str, str], *,
                       conn: duckdb.DuckDBPyConnection) -> None:
        """Move cursors; call inside the transaction that writes the events they cover."""
        now = utcnow()
        for key, value in values.items():
            conn.execute("INSERT OR REPLACE INTO watermarks VALUES (?, ?, ?, ?, ?, ?)",
                         [tenant_id, plugin, source, key, str(value), now])

    def add_raw_records(self, tenant_id: str, plugin: str, source: str, records: Sequence[Any], *,
                        run_id: str | None = None, conn: duckdb.DuckDBPyConnection) -> int:
        """Keep what a source received (deduplicated by content) for `remap`."""
        if not records:
            return 0
        now = utcnow()
        table = pa.table({
            "record_hash": [record_hash(r) for r in records],
            "record": [canonical_json(r) for r in records],
            "seq": list(range(len(records))),
        })
        conn.register("_raw", table)
        try:
            before = conn.execute("SELECT count(*) FROM raw_records WHERE tenant_id = ? AND plugin = ? AND source = ?",
                                  [tenant_id, plugin, source]).fetchall()[0][0]
            start = conn.execute("SELECT coalesce(max(seq), 0) FROM raw_records WHERE tenant_id = ? AND plugin = ? "
                                 "AND source = ?", [tenant_id, plugin, source]).fetchall()[0][0]
            conn.execute("""
                INSERT INTO raw_records (tenant_id, plugin, source, record_hash, record, received_at, run_id, seq)
                SELECT ?, ?, ?, r.record_hash, r.record::JSON, ?, ?, ? + r.seq + 1
                FROM (SELECT * FROM _raw QUALIFY row_number() OVER (PARTITION BY record_hash ORDER BY seq) = 1) r
                WHERE NOT EXISTS (SELECT 1 FROM raw_records x WHERE x.tenant_id = ? AND x.plugin = ?
                                  AND x.source = ? AND x.record_hash = r.record_hash)""",
                         [tenant_id, plugin, source, now, run_id, start, tenant_id, plugin, source])
            after = conn.execute("SELECT count(*) FROM raw_records WHERE tenant_id = ? AND plugin = ? AND source = ?",
                                 [tenant_id, plugin, source]).fetchall()[0][0]
        finally:
            conn.unregister("_raw")
        return after - before

    def iter_raw_records(self, tenant_id: str, plugin: str, source: str, *, since: datetime | None = None,
                         batch_size: int = 10_000) -> Iterator[list[Any]]:
        """Raw records of a source, oldest first, in batches."""
        if not self.path.exists():
            return
        sql = "SELECT record FROM raw_records WHERE tenant_id = ? AND plugin = ? AND source = ?"
        params: list[Any] = [tenant_id, plugin, source]
        if since is not None:
            sql += " AND received_at >= ?"
            params.append(since)
        sql += " ORDER BY seq NULLS FIRST, received_at, record_hash"  # arrival order: last write wins as it did
        with self.reader() as conn:
            cur = conn.execute(sql, params)
            while True:
                rows = cur.fetchmany(batch_size)
                if not rows:
                    break
                yield [json.loads(r[0]) for r in rows]


def default_store_path() -> Path:
    """`INTEGRATIONS_STORE` when set, else `data/integrations.duckdb`."""
    import os

    return Path(os.environ.get("INTEGRATIONS_STORE", str(DEFAULT_STORE)))


__all__ = ["EventStore", "StoreError", "UpsertCounts", "canonical_json", "default_store_path", "record_hash",
           "row_to_event", "utcnow"]
