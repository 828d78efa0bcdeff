"""The webhook inbox: the receiver's own durable SQLite file between GitHub and the runner.

The receiver commits every accepted delivery here before it answers 2xx, so a crash after the
answer loses nothing. It is a separate file from the DuckDB event store on purpose: the store has a
single writing process (the runner), and the receiver must answer GitHub within seconds whatever the
runner is doing. The runner drains the inbox at least once: `drain()` marks a batch only after the
caller's block (its store transaction) has finished without error; a crash in between means the
batch comes again, which is harmless because event ids are deterministic.

SQLite runs in WAL mode with `synchronous=FULL`, so a commit has reached the disk when it returns,
and the receiver writing while the runner reads does not block either of them.

Rows are keyed by (tenant, delivery id): a tenant's deliveries never collide with, shadow or
de-duplicate another tenant's, and every read and write names its tenant.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from integrations.errors import RecordError, StoreError, error_context
from integrations.webhooks._payload import parse_payload

DEFAULT_INBOX = Path("data/inbox/github.sqlite")
# Drained deliveries are kept this long, then pruned by the runner (`integrations webhooks prune`).
# The receiver de-duplicates against them; GitHub redelivers (on request) for 3 days.
DEFAULT_KEEP_DRAINED_DAYS = 7.0

# The headers kept with each delivery, in GitHub's spelling. Never the signature headers.
RELEVANT_HEADERS = (
    "X-GitHub-Event",
    "X-GitHub-Delivery",
    "X-GitHub-Hook-ID",
    "X-GitHub-Hook-Installation-Target-ID",
    "X-GitHub-Hook-Installation-Target-Type",
    "User-Agent",
    "Content-Type",
)

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    tenant_id            TEXT NOT NULL,
    delivery_id          TEXT NOT NULL,
    event_name           TEXT NOT NULL,
    hook_id              TEXT,
    installation_target  TEXT,
    headers              TEXT NOT NULL,
    body                 BLOB NOT NULL,
    received_at          TEXT NOT NULL,
    drained_at           TEXT,
    PRIMARY KEY (tenant_id, delivery_id)
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (tenant_id, drained_at, event_name);
"""


def default_inbox_path() -> Path:
    """`INTEGRATIONS_WEBHOOK_INBOX` when set, else `data/inbox/github.sqlite`."""
    return Path(os.environ.get("INTEGRATIONS_WEBHOOK_INBOX", str(DEFAULT_INBOX)))


def inbox_path_for(plugin: str, github_inbox: Path | None = None) -> Path:
    """Each plugin's deliveries have their own inbox file: GitHub's is `github_inbox` (default
    `default_inbox_path()`), another plugin's is `<plugin>.sqlite` in the same folder.

    Separate files keep one sender's burst from holding the other's writes, and keep the schema
    (keyed by tenant and the sender's delivery id) the same for every plugin.
    """
    github = github_inbox or default_inbox_path()
    return github if plugin == "github" else github.with_name(f"{plugin}.sqlite")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Delivery:
    """One stored delivery, as the runner sees it."""

    tenant_id: str
    delivery_id: str
    event_name: str
    payload: dict[str, Any] = field(repr=False)
    received_at: datetime
    hook_id: str | None = None
    installation_target: str | None = None  # "<type>:<id>", e.g. "repository:186853002"
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    body: bytes = field(default=b"", repr=False)  # the raw body exactly as received


def relevant_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers worth keeping, in GitHub's spelling, from any (case-insensitive or not) mapping."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return {name: lowered[name.lower()] for name in RELEVANT_HEADERS if name.lower() in lowered}


class Inbox:
    """The inbox file at `path`; safe to share between threads (one connection behind a lock).

    Each process (receiver, runner) opens its own `Inbox`; SQLite's file locking and the busy
    timeout arbitrate between them.
    """

    def __init__(self, path: str | Path = DEFAULT_INBOX, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        with error_context(file=str(self.path)):
            self._conn = self._open(busy_timeout)

    def _open(self, busy_timeout: float) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                conn.close()
                raise StoreError(f"the inbox is at schema version {version}, newer than this program "
                                 f"({_SCHEMA_VERSION})", hint="upgrade integrations-workbench")
            if version < _SCHEMA_VERSION:
                conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {_SCHEMA_VERSION}; COMMIT;")
            return conn
        except (sqlite3.Error, OSError) as err:
            raise StoreError(f"cannot open webhook inbox: {err}",
                             hint="check that the directory exists and is writable") from None

    @contextlib.contextmanager
    def _locked(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """The connection, alone; inside one transaction when writing."""
        with self._lock, error_context(file=str(self.path)):
            try:
                if not write:
                    yield self._conn
                    return
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as err:
                raise StoreError(f"webhook inbox: {err}") from None

    # -- the receiver's side -----------------------------------------------------------------

    def add(self, tenant_id: str, delivery_id: str, headers: Mapping[str, str], body: bytes, *,
            event_name: str | None = None) -> bool:
        """Store a delivery durably; True when new, False when this delivery id was already there.

        The body must carry a JSON object (RecordError otherwise), so the runner never drains a
        delivery it cannot decode. `event_name` (the source that reads it) defaults to GitHub's
        X-GitHub-Event header.
        """
        kept = relevant_headers(headers)
        parse_payload(body, kept.get("Content-Type"))
        event_name = event_name or kept.get("X-GitHub-Event")
        if not event_name:
            raise RecordError("delivery has no X-GitHub-Event header", field="X-GitHub-Event")
        target = None
        if "X-GitHub-Hook-Installation-Target-Type" in kept or "X-GitHub-Hook-Installation-Target-ID" in kept:
            target = (f"{kept.get('X-GitHub-Hook-Installation-Target-Type', '')}:"
                      f"{kept.get('X-GitHub-Hook-Installation-Target-ID', '')}")
        with self._locked(write=True) as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO deliveries (tenant_id, delivery_id, event_name, hook_id, installation_target,"
                " headers, body, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (tenant_id, delivery_id, event_name, kept.get("X-GitHub-Hook-ID"), target,
                 json.dumps(kept, sort_keys=True), sqlite3.Binary(body), _now()))
            return cur.rowcount == 1

    def check(self) -> None:
        """Raise StoreError unless the inbox can be read (for `/healthz`)."""
        with self._locked() as conn:
            conn.execute("SELECT 1 FROM deliveries LIMIT 1").fetchall()

    # -- the runner's side -------------------------------------------------------------------

    def pending(self, tenant_id: str, limit: int = 100, *, event_name: str | None = None) -> list[Delivery]:
        """Up to `limit` of the tenant's deliveries not yet drained (of one event, if given), oldest first."""
        sql = ("SELECT tenant_id, delivery_id, event_name, hook_id, installation_target, headers, body, received_at"
               " FROM deliveries WHERE tenant_id = ? AND drained_at IS NULL")
        args: list[Any] = [tenant_id]
        if event_name is not None:
            sql += " AND event_name = ?"
            args.append(event_name)
        with self._locked() as conn:
            rows = conn.execute(sql + " ORDER BY rowid LIMIT ?", (*args, limit)).fetchall()
        return [self._delivery(row) for row in rows]

    def _delivery(self, row: tuple[Any, ...]) -> Delivery:
        tenant_id, delivery_id, event_name, hook_id, target, headers_json, body, received_at = row
        headers = json.loads(headers_json)
        body = bytes(body)
        try:
            payload = parse_payload(body, headers.get("Content-Type"))
        except RecordError as err:
            err.message = f"delivery {delivery_id} of tenant {tenant_id}: {err.message}"
            err.file = str(self.path)
            raise
        return Delivery(tenant_id=tenant_id, delivery_id=delivery_id, event_name=event_name, payload=payload,
                        received_at=datetime.fromisoformat(received_at), hook_id=hook_id,
                        installation_target=target, headers=headers, body=body)

    def mark_drained(self, tenant_id: str, delivery_ids: Iterable[str]) -> int:
        """Mark the tenant's deliveries as drained; returns how many were pending. Other tenants' ids are ignored."""
        now = _now()
        with self._locked(write=True) as conn:
            cur = conn.executemany(
                "UPDATE deliveries SET drained_at = ? WHERE tenant_id = ? AND delivery_id = ? AND drained_at IS NULL",
                [(now, tenant_id, delivery_id) for delivery_id in delivery_ids])
            return max(cur.rowcount, 0)

    @contextlib.contextmanager
    def drain(self, tenant_id: str, limit: int = 100, *, event_name: str | None = None) -> Iterator[list[Delivery]]:
        """A batch of pending deliveries, marked drained only when the block ends without error.

        Put the store transaction inside the block, so the batch is marked after it commits:

            with inbox.drain("acme") as batch:
                with store.transaction() as conn:
                    ...  # map and upsert batch
        """
        batch = self.pending(tenant_id, limit, event_name=event_name)
        yield batch
        if batch:
            self.mark_drained(tenant_id, [d.delivery_id for d in batch])

    def counts(self, tenant_id: str) -> dict[str, int]:
        """How many of the tenant's deliveries are pending and drained."""
        with self._locked() as conn:
            pending, drained = conn.execute(
                "SELECT count(*) FILTER (WHERE drained_at IS NULL), count(*) FILTER (WHERE drained_at IS NOT NULL)"
                " FROM deliveries WHERE tenant_id = ?", (tenant_id,)).fetchone()
        return {"pending": pending, "drained": drained}

    def summary(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """Per tenant and event: pending and drained counts, and when the oldest pending one arrived.

        Pending deliveries that stay pending are events no source of the tenant reads (or a runner
        that does not run): `integrations webhooks status` shows them, nothing deletes them.
        """
        sql = ("SELECT tenant_id, event_name, count(*) FILTER (WHERE drained_at IS NULL),"
               " count(*) FILTER (WHERE drained_at IS NOT NULL), min(received_at) FILTER (WHERE drained_at IS NULL)"
               " FROM deliveries")
        args: tuple[Any, ...] = ()
        if tenant_id is not None:
            sql += " WHERE tenant_id = ?"
            args = (tenant_id,)
        with self._locked() as conn:
            rows = conn.execute(sql + " GROUP BY tenant_id, event_name ORDER BY tenant_id, event_name", args).fetchall()
        return [{"tenant_id": t, "event": e, "pending": p, "drained": d, "oldest_pending": o} for t, e, p, d, o in rows]

    def prune(self, drained_before: datetime) -> int:
        """Delete deliveries drained before `drained_before` (all tenants); returns how many.

        Keep them as long as GitHub may redeliver (3 days): a pruned delivery id would be accepted again.
        """
        cutoff = drained_before.astimezone(timezone.utc).isoformat(timespec="microseconds")
        with self._locked(write=True) as conn:
            return conn.execute("DELETE FROM deliveries WHERE drained_at IS NOT NULL AND drained_at < ?",
                                (cutoff,)).rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "Inbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Inbox({str(self.path)!r})"


InboxReader = Callable[[str, str, str], "tuple[list[Any], Callable[[], None]]"]


def inbox_reader(inbox: Inbox, *, plugin: str = "github", limit: int = 10_000) -> InboxReader:
    """The run loop's reader: (tenant, plugin, source) -> (payloads, acknowledge).

    A webhook source is named after the event it reads (`push`, `pull_request`, ...), so the
    payloads are the tenant's pending deliveries of that event, oldest first. `acknowledge()` marks
    exactly those as drained; the loop calls it after their events are committed (at least once).
    Other plugins get nothing: this inbox holds `plugin`'s deliveries only.
    """

    def read(tenant_id: str, plugin_name: str, source: str) -> tuple[list[Any], Callable[[], None]]:
        if plugin_name != plugin:
            return [], lambda: None
        batch = inbox.pending(tenant_id, limit, event_name=source)
        ids = [d.delivery_id for d in batch]

        def acknowledge() -> None:
            inbox.mark_drained(tenant_id, ids)

        return [d.payload for d in batch], acknowledge

    return read
