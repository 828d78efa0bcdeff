"""Opening the DuckDB file: one writing process at a time, short read-only readers.

DuckDB lets one process write a file; any other process that opens it (even read-only) while
the writer holds it gets a lock error. So every operation here opens a connection, does its work
in one transaction and closes it, and both sides wait (bounded) for the lock instead of failing:
the workbench and notebooks never crash or block the runner for longer than one transaction.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import duckdb

from integrations.errors import StoreError
from integrations.store._schema import LATEST_VERSION, MIGRATIONS

DEFAULT_STORE = Path("data/integrations.duckdb")
T = TypeVar("T")
_LOCK_MARKERS = ("could not set lock", "conflicting lock", "database is locked", "lock on file")


def _is_lock_error(err: Exception) -> bool:
    text = str(err).lower()
    return any(marker in text for marker in _LOCK_MARKERS)


def _waiting_for_lock(path: Path, lock_timeout: float, action: Callable[[], T]) -> T:
    """Run `action` (which opens the file), retrying up to `lock_timeout` seconds while another process holds it."""
    deadline = time.monotonic() + lock_timeout
    delay = 0.02
    while True:
        try:
            return action()
        except (duckdb.IOException, duckdb.ConnectionException, duckdb.BinderException) as err:
            if not _is_lock_error(err) or time.monotonic() >= deadline:
                hint = ("another process is writing the store; only one writer may hold it"
                        if _is_lock_error(err) else None)
                raise StoreError(f"cannot open event store: {err}", file=str(path), hint=hint) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def open_connection(path: Path, *, read_only: bool, lock_timeout: float) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting up to `lock_timeout` seconds while another process holds it."""
    if read_only and not path.exists():
        raise StoreError(f"no event store at {path}", file=str(path),
                         hint="run `integrations run` (or `make run`) first to create it")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)

    def connect() -> duckdb.DuckDBPyConnection:
        conn = duckdb.connect(str(path), read_only=read_only)
        conn.execute("SET TimeZone = 'UTC'")
        return conn

    return _waiting_for_lock(path, lock_timeout, connect)


# Bulk merges attach the store with row groups of this many rows (DuckDB's default is 122,880).
# An insert writes each full row group to the file, compressed, as it goes; with the default a
# merge of 100,000 events held them all in memory until the commit, then compressed them there on
# one thread (push events at 100,000 records: 1.7-2.1 s and +237 MB, against 1.25 s and +16 MB).
BULK_ROW_GROUP_SIZE = 16_384


def attach(conn: duckdb.DuckDBPyConnection, path: Path, *, alias: str, lock_timeout: float) -> None:
    """ATTACH the file to another database's connection for bulk writing, waiting like `open_connection`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    literal = str(path).replace("'", "''")
    _waiting_for_lock(path, lock_timeout, lambda: conn.execute(
        f"ATTACH '{literal}' AS {alias} (ROW_GROUP_SIZE {BULK_ROW_GROUP_SIZE})"))


@contextlib.contextmanager
def in_transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Everything inside commits together, or rolls back on any exception."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate(conn: duckdb.DuckDBPyConnection) -> int:
    """Apply the migrations the file lacks; returns the version it is now at."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
    row = conn.execute("SELECT max(version) FROM schema_version").fetchall()[0]
    current = row[0] or 0
    if current > LATEST_VERSION:
        raise StoreError(f"the store is at schema version {current}, newer than this program ({LATEST_VERSION})",
                         hint="upgrade integrations-workbench")
    for version, _title, statements in MIGRATIONS:
        if version <= current:
            continue
        with in_transaction(conn):
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, now())", [version])
        current = version
    return current


@contextlib.contextmanager
def connection(path: Path, *, read_only: bool = False, lock_timeout: float = 30.0) -> Iterator[duckdb.DuckDBPyConnection]:
    conn = open_connection(path, read_only=read_only, lock_timeout=lock_timeout)
    try:
        yield conn
    finally:
        conn.close()
