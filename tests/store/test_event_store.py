"""The DuckDB event store: upserts, dead letters, runs, tenants, and one writer with many readers."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import duckdb
import pytest

from integrations.errors import StoreError
from integrations.mapping import PythonEngine, load_mapping
from integrations.store import LATEST_VERSION, EventStore
from tests.mapping.conftest import PUSH, push_record

MAPPING = load_mapping(PUSH)


def events(tenant="demo", n=3):
    return PythonEngine().map(MAPPING, [push_record(n)], tenant_id=tenant).events


def test_upsert_is_idempotent_and_keeps_ingested_at(store):
    first = store.upsert_events(events())
    assert (first.inserted, first.updated, first.unchanged) == (3, 0, 0)
    before = {e.event_id: e.ingested_at for e in store.query_events("demo")}
    again = store.upsert_events(events())
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert {e.event_id: e.ingested_at for e in store.query_events("demo")} == before


def test_changed_content_updates_in_place(store):
    store.upsert_events(events())
    changed = events()
    changed[0].title = "new title"
    counts = store.upsert_events(changed)
    assert (counts.inserted, counts.updated, counts.unchanged) == (0, 1, 2)
    stored = {e.event_id: e for e in store.query_events("demo")}
    assert stored[changed[0].event_id].title == "new title"
    assert len(stored) == 3


def test_duplicates_inside_one_batch_keep_the_last(store):
    batch = events(n=1) + events(n=1)
    batch[1].title = "later"
    counts = store.upsert_events(batch)
    assert counts.inserted == 1
    assert store.query_events("demo")[0].title == "later"


def test_round_trip_keeps_every_field(store):
    original = events(n=1)[0]
    store.upsert_events([original])
    (back,) = store.query_events("demo")
    assert back.to_json_dict(with_ingested_at=False) == original.to_json_dict(with_ingested_at=False)


def test_reads_are_per_tenant(store):
    store.upsert_events(events("demo", 2) + events("acme", 3))
    assert len(store.query_events("demo")) == 2 and len(store.query_events("acme")) == 3
    assert all(e.tenant_id == "acme" for e in store.query_events("acme"))
    assert store.query_events("nobody") == []


def test_query_filters(store):
    store.upsert_events(events(n=3))
    from datetime import datetime, timezone

    assert len(store.query_events("demo", kind="release")) == 0
    since = datetime(2024, 5, 1, 10, 1, tzinfo=timezone.utc)
    assert len(store.query_events("demo", since=since)) == 2
    assert len(store.query_events("demo", until=since)) == 1
    assert len(store.query_events("demo", limit=1)) == 1


def test_dead_letters_count_attempts_and_keep_the_record(store):
    item = {"record": {"a": 1}, "reason": "bad", "field": "title", "record_index": 4}
    store.add_dead_letters("demo", "github", "push", [item])
    store.add_dead_letters("demo", "github", "push", [{**item, "reason": "still bad"}])
    (row,) = store.list_dead_letters("demo")
    assert row["attempts"] == 2 and row["reason"] == "still bad" and row["record"] == {"a": 1}
    assert row["kind"] == "mapping" and row["status"] == "open" and row["field"] == "title"
    assert store.list_dead_letters("acme") == []


def test_runs_are_recorded(store):
    store.record_run({"run_id": "r1", "tenant_id": "demo", "plugin": "github", "source": "push",
                      "started_at": "2024-01-01T00:00:00Z", "read": 5, "status": "ok"})
    (row,) = store.list_runs("demo")
    assert row["read"] == 5 and row["status"] == "ok"


def test_schema_is_versioned_and_migrates_forward(store_path: Path):
    conn = duckdb.connect(str(store_path))
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
    conn.close()
    EventStore(store_path).initialize()
    conn = duckdb.connect(str(store_path))
    assert conn.execute("SELECT max(version) FROM schema_version").fetchall()[0][0] == LATEST_VERSION
    tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    conn.close()
    assert {"events", "dead_letter", "runs", "watermarks", "raw_records"} <= tables


def test_a_version_4_store_keeps_its_events_when_events_are_rebuilt_for_bulk_writes(store_path: Path, monkeypatch):
    import integrations.store._connection as connection
    from integrations.store._schema import MIGRATIONS

    with monkeypatch.context() as patch:
        patch.setattr(connection, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= 4])
        old = EventStore(store_path)
        assert old.upsert_events(events()).inserted == 3
        before = old.query_events("demo")
    store = EventStore(store_path)
    store.initialize()
    assert store.query_events("demo") == before
    again = store.upsert_events(events())
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    conn = duckdb.connect(str(store_path))
    ddl = conn.execute("SELECT sql FROM duckdb_tables() WHERE table_name = 'events'").fetchall()[0][0]
    indexes = {r[0] for r in conn.execute("SELECT index_name FROM duckdb_indexes() WHERE table_name = 'events'").fetchall()}
    conn.close()
    assert "attributes JSON USING COMPRESSION ZSTD" in ddl and "PRIMARY KEY" not in ddl and not indexes


def test_event_ids_stay_unique_without_a_key(store):
    """Every write goes through merge_staged: repeats in a batch, across batches and across sources
    leave one row per id (the table has no primary key to enforce it)."""
    batch = events(n=3)
    store.upsert_events(batch + batch)
    store.upsert_events(batch, source="polled", precedence=50)
    store.upsert_events(list(reversed(batch)))
    with store.reader() as conn:
        rows, ids = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchall()[0]
    assert rows == ids == 3


def test_reading_a_missing_store_says_what_to_do(tmp_path: Path):
    with pytest.raises(StoreError, match="no event store") as info:
        with EventStore(tmp_path / "none.duckdb").reader():
            pass
    assert "integrations run" in info.value.hint


def _hold_writer(path: str, seconds: float, ready) -> None:
    store = EventStore(path)
    with store.transaction() as conn:
        ready.set()
        time.sleep(seconds)
        conn.execute("SELECT 1").fetchall()


def test_a_reader_waits_for_the_writer_instead_of_failing(store, store_path):
    store.upsert_events(events())
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    writer = ctx.Process(target=_hold_writer, args=(str(store_path), 1.0, ready))
    writer.start()
    try:
        assert ready.wait(30)
        started = time.monotonic()
        assert len(EventStore(store_path).query_events("demo")) == 3  # waited for the lock, then read
        assert time.monotonic() - started < 20
    finally:
        writer.join(30)
    assert writer.exitcode == 0


def test_a_reader_gives_up_with_a_clear_error_after_its_timeout(store, store_path):
    store.initialize()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    writer = ctx.Process(target=_hold_writer, args=(str(store_path), 3.0, ready))
    writer.start()
    try:
        assert ready.wait(30)
        with pytest.raises(StoreError, match="cannot open event store") as info:
            EventStore(store_path, lock_timeout=0.3).query_events("demo")
        assert "one writer" in info.value.hint
    finally:
        writer.join(30)


@pytest.mark.parametrize("order", [("history", "eventbridge"), ("eventbridge", "history")])
def test_the_same_fact_from_two_sources_keeps_the_first_ranking_source_whatever_the_order(store, order):
    base = events(n=1)[0]
    versions = {"history": base.model_copy(update={"title": "from history"}),
                "eventbridge": base.model_copy(update={"title": "from eventbridge"})}
    precedence = {"history": 10, "eventbridge": 20}
    for source in order:
        store.upsert_events([versions[source]], source=source, precedence=precedence[source])
    assert store.query_events("demo")[0].title == "from history"
    # Running both again, in either order, changes nothing.
    for source in reversed(order):
        counts = store.upsert_events([versions[source]], source=source, precedence=precedence[source])
        assert (counts.inserted, counts.updated, counts.unchanged) == (0, 0, 1)


def test_an_update_keeps_the_enrichment_written_on_the_event(store):
    original = events(n=1)[0]
    store.upsert_events([original], source="push")
    with store.transaction() as conn:
        conn.execute("""UPDATE events SET integration_context = json_merge_patch(integration_context,
                        '{"enrichment_metadata": {"correlations": [{"rule": "r"}]}}')""")
    store.upsert_events([original.model_copy(update={"title": "changed"})], source="push")
    (back,) = store.query_events("demo")
    assert back.title == "changed"
    assert back.integration_context.enrichment_metadata == {"correlations": [{"rule": "r"}]}
