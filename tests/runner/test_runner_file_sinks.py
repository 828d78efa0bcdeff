"""File sinks: one JSON Lines or Parquet file per tenant and day, rewritten whole from the store (idempotent)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from integrations.events import event_id_for
from integrations.health import HealthMonitor
from runner._sinks import build_sinks, deliver_pending, parse_sinks, route_events
from tests.runner.conftest import TENANTS, outbox_rows, stored


def file_sinks(out: Path, **extra):
    return build_sinks(parse_sinks([{"name": "lines", "type": "jsonl", "path": str(out), **extra},
                                    {"name": "lake", "type": "parquet", "path": str(out), **extra}]))


def jsonl_events(folder: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            assert event["event_id"] not in out, "an event appears twice"
            assert event["occurred_at"].startswith(path.stem), "an event is in another day's file"
            out[event["event_id"]] = event
    return out


def spread_over_days(store, tenant: str, days: int = 3) -> None:
    """Copies of the tenant's events on the next days, so files of several days are written."""
    events = store.query_events(tenant)
    copies = []
    for shift in range(1, days):
        for e in events:
            ctx = e.integration_context.model_copy(update={"external_id": f"{e.integration_context.external_id}+{shift}"})
            copies.append(e.model_copy(update={
                "occurred_at": e.occurred_at + timedelta(days=shift), "integration_context": ctx,
                "event_id": event_id_for(tenant, ctx.source_integration, e.kind, ctx.external_id)}))
    store.upsert_events(copies, run_id="test")


def test_jsonl_and_parquet_files_hold_each_stored_event_once_per_tenant_and_day(filled_store, out_dir):
    import pyarrow.parquet as pq

    for tenant in TENANTS:
        spread_over_days(filled_store, tenant)
    sinks = file_sinks(out_dir)
    for tenant in TENANTS:
        reports = deliver_pending(filled_store, sinks, tenant, health=HealthMonitor())
        assert [r.status for r in reports] == ["ok", "ok"] and all(r.pending == 0 for r in reports)
        assert len(reports[0].files) == 3
        expected = stored(filled_store, tenant)
        assert jsonl_events(out_dir / "lines" / tenant) == expected
        days = sorted(p.name for p in (out_dir / "lake" / tenant).iterdir())
        assert days == sorted(Path(f).name for f in reports[1].files) and len(days) == 3
        table = pq.read_table(out_dir / "lake" / tenant)
        assert sorted(table.column("event_id").to_pylist()) == sorted(expected)
        assert set(table.column("tenant_id").to_pylist()) == {tenant}
        row = table.slice(0, 1).to_pylist()[0]
        assert json.loads(row["integration_context"]) == expected[row["event_id"]]["integration_context"]


def test_rewriting_a_day_after_an_update_keeps_one_newest_copy(filled_store, out_dir):
    sinks = file_sinks(out_dir)
    deliver_pending(filled_store, sinks, "demo")
    changed = filled_store.query_events("demo", kind="commit")[0]
    changed = changed.model_copy(update={"title": changed.title + " (edited)"})
    filled_store.upsert_events([changed], source="push", run_id="again")
    reports = deliver_pending(filled_store, sinks, "demo")
    assert [r.queued for r in reports] == [1, 1] and [r.delivered for r in reports] == [1, 1]
    on_file = jsonl_events(out_dir / "lines" / "demo")
    assert on_file[changed.event_id]["title"].endswith("(edited)")
    assert on_file == stored(filled_store, "demo")
    again = deliver_pending(filled_store, sinks, "demo")
    assert [r.queued for r in again] == [0, 0] and [r.files for r in again] == [[], []]


def test_an_unwritable_folder_keeps_the_events_queued_until_it_is_fixed(filled_store, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    sinks = build_sinks(parse_sinks([{"name": "lines", "type": "jsonl", "path": str(blocked)}]))
    report = deliver_pending(filled_store, sinks, "demo")[0]
    assert report.status == "failed" and report.delivered == 0 and report.pending == len(stored(filled_store, "demo"))
    assert "lines/demo" in report.error
    blocked.unlink()
    fixed = deliver_pending(filled_store, sinks, "demo")[0]
    assert fixed.status == "ok" and fixed.pending == 0 and fixed.queued == 0
    assert jsonl_events(blocked / "lines" / "demo") == stored(filled_store, "demo")


def test_events_stored_without_routing_are_swept_up_and_routing_in_the_transaction_queues_them(store, out_dir):
    """route_events() queues a batch in the transaction that stores it; anything stored another way
    (remap, dlq replay, a crash between commit and routing) is queued by the sweep before delivery."""
    from tests.runner.conftest import ingest_samples

    sinks = file_sinks(out_dir, tenants=["demo"])
    ingest_samples(store, "demo")
    events = store.query_events("demo")
    with store.transaction() as conn:
        queued = route_events(conn, sinks, "demo", [e.event_id for e in events[:3]])
    assert queued == {"lines": 3, "lake": 3}
    assert [done for _s, _e, done in outbox_rows(store, "demo", "lines")] == [False] * 3
    reports = deliver_pending(store, sinks, "demo")
    assert [r.queued for r in reports] == [len(events) - 3] * 2
    assert jsonl_events(out_dir / "lines" / "demo") == stored(store, "demo")
    ingest_samples(store, "acme")
    assert deliver_pending(store, sinks, "acme") == []  # these sinks take demo only
    acme_ids = [e.event_id for e in store.query_events("acme")]
    with store.transaction() as conn:
        assert route_events(conn, sinks, "acme", acme_ids) == {}


def test_sink_configuration_errors_name_the_line(tmp_path):
    from integrations.errors import ConfigError
    from runner._sinks import load_sinks

    path = tmp_path / "runner.yaml"
    path.write_text("sinks:\n  - {name: a, type: jsonl}\n  - {name: a, type: parquet}\n")
    with pytest.raises(ConfigError) as err:
        load_sinks(path)
    assert err.value.line == 3 and "used twice" in str(err.value)
    path.write_text("sinks:\n  - name: b\n    type: kafka\n")
    with pytest.raises(ConfigError) as err:
        load_sinks(path)
    assert err.value.line == 2 and "duckdb" in str(err.value)
    path.write_text("jobs: []\n")
    assert [s.name for s in load_sinks(path)] == ["store"]
