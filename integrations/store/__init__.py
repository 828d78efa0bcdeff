"""The DuckDB event store: schema, migrations and every read and write of it."""

from integrations.store._connection import DEFAULT_STORE, migrate
from integrations.store._schema import LATEST_VERSION, MIGRATIONS
from integrations.store._store import (
    EventStore,
    UpsertCounts,
    canonical_json,
    default_store_path,
    record_hash,
    row_to_event,
    utcnow,
)

__all__ = [
    "DEFAULT_STORE",
    "LATEST_VERSION",
    "MIGRATIONS",
    "EventStore",
    "UpsertCounts",
    "canonical_json",
    "default_store_path",
    "migrate",
    "record_hash",
    "row_to_event",
    "utcnow",
]
