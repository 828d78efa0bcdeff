"""`integrations run`, `events`, `dlq` and `test-mappings` over a real store file."""

from __future__ import annotations

import json

import duckdb


def run_args(workspace, *extra):
    return ("run", "--db", str(workspace / "store.duckdb"), "--samples", str(workspace / "samples"),
            "--mappings", str(workspace / "mappings"), "--tenants-dir", str(workspace / "tenants"), *extra)


def test_run_maps_samples_into_the_store_and_is_idempotent(cli, workspace):
    r = cli(*run_args(workspace))
    assert r.code == 0, r
    assert "push" in r.out and "partial" in r.out
    db = str(workspace / "store.duckdb")
    conn = duckdb.connect(db, read_only=True)
    assert conn.execute("SELECT count(*) FROM events").fetchall()[0][0] == 2
    assert conn.execute("SELECT read, mapped, filtered, rejected FROM runs").fetchall() == [(4, 1, 1, 2)]
    conn.close()
    r = cli(*run_args(workspace))
    conn = duckdb.connect(db, read_only=True)
    assert conn.execute("SELECT count(*) FROM events").fetchall()[0][0] == 2
    assert conn.execute("SELECT max(attempts) FROM dead_letter").fetchall()[0][0] == 2
    conn.close()


def test_run_for_two_tenants_keeps_them_apart(cli, workspace):
    assert cli(*run_args(workspace, "--tenant", "demo", "--tenant", "acme")).code == 0
    demo = cli("events", "list", "--db", str(workspace / "store.duckdb"), "--json").json_lines()
    acme = cli("events", "list", "--db", str(workspace / "store.duckdb"), "--tenant", "acme", "--json").json_lines()
    assert len(demo) == 2 and len(acme) == 1
    assert {e["tenant_id"] for e in demo} == {"demo"} and {e["tenant_id"] for e in acme} == {"acme"}


def test_run_fails_only_when_every_source_failed(cli, workspace):
    (workspace / "mappings/github/push.yaml").write_text("plugin: [")
    r = cli(*run_args(workspace))
    assert r.code == 1 and "failed" in r.out


def test_events_export_formats(cli, workspace, tmp_path, cloudevents_validator):
    cli(*run_args(workspace))
    db = str(workspace / "store.duckdb")
    lines = cli("events", "export", "--db", db, "--format", "jsonl").json_lines()
    assert len(lines) == 2 and all("ingested_at" in e for e in lines)
    for ce in cli("events", "export", "--db", db, "--format", "cloudevents").json_lines():
        cloudevents_validator.validate(ce)
    out = tmp_path / "events.parquet"
    assert cli("events", "export", "--db", db, "--format", "parquet", "--output", str(out)).code == 0
    assert duckdb.sql(f"SELECT count(*) FROM '{out}'").fetchall()[0][0] == 2


def test_dlq_list_and_replay_after_a_mapping_fix(cli, workspace, monkeypatch):
    cli(*run_args(workspace))
    db = str(workspace / "store.duckdb")
    rows = [json.loads(line) for line in cli("dlq", "list", "--db", db, "--json").out.splitlines()]
    assert len(rows) == 2 and {r["kind"] for r in rows} == {"mapping"}
    assert any(r["field"] == "occurred_at" for r in rows)
    # Fix the mapping: a commit without a timestamp takes a default time.
    mapping = workspace / "mappings/github/push.yaml"
    mapping.write_text(mapping.read_text().replace("occurred_at: item.timestamp",
                                                   "occurred_at: \"item.timestamp || '2024-01-01T00:00:00Z'\""))
    monkeypatch.setenv("INTEGRATIONS_MAPPINGS", str(workspace / "mappings"))
    r = cli("dlq", "replay", "--db", db)
    assert r.code == 0, r
    open_rows = [json.loads(line) for line in cli("dlq", "list", "--db", db, "--json").out.splitlines()]
    assert len(open_rows) == 1 and "not valid JSON" in open_rows[0]["reason"]
    assert len(cli("events", "list", "--db", db, "--json").json_lines()) == 3


def test_test_mappings_reports_a_diff_and_update_approves(cli, workspace):
    from tests.mapping.conftest import push_record

    examples = workspace / "mappings/github/examples/push"
    examples.mkdir(parents=True)
    (examples / "two.input.json").write_text(json.dumps(push_record(2)))
    root = str(workspace / "mappings")
    r = cli("test-mappings", "--mappings", root)
    assert r.code == 1 and "FAIL" in r.out
    assert cli("test-mappings", "--mappings", root, "--update").code == 0
    assert cli("test-mappings", "--mappings", root).code == 0
    expected = examples / "two.expected.jsonl"
    expected.write_text(expected.read_text().replace("change 1", "change one"))
    r = cli("test-mappings", "--mappings", root)
    assert r.code == 1 and '-  "title": "octo/checkout-api: change one"' in r.out
