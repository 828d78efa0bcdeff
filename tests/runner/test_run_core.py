"""The runner's own duties: configuration, progress, logs, remap, doctor, and surviving a kill."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from integrations.errors import ConfigError
from runner import RunOptions, load_runner_config, run
from tests.conftest import ROOT
from tests.mapping.conftest import push_record


def test_runner_yaml_errors_name_the_line(tmp_path):
    path = tmp_path / "runner.yaml"
    path.write_text("store: x.duckdb\njobs:\n  - name: hourly\n    cron: '5 * * * *'\n  - name: daily\n    cronn: '0 3 * * *'\n")
    with pytest.raises(ConfigError) as info:
        load_runner_config(path)
    assert str(info.value).startswith(f"{path}:6:")
    assert "unknown key 'cronn'" in str(info.value)
    path.write_text("jobs:\n  - name: hourly\n    cron: '5 * * *'\n")
    with pytest.raises(ConfigError, match="a cron line has 5 fields") as info:
        load_runner_config(path)
    assert info.value.line == 3
    assert load_runner_config(tmp_path / "absent.yaml").store == Path("data/integrations.duckdb")


def test_the_shipped_runner_yaml_and_tenant_files_are_valid():
    config = load_runner_config(ROOT / "runner.yaml", required=True)
    assert [j.name for j in config.jobs] == ["hourly"]
    from runner._doctor import diagnose

    checks = diagnose(config.model_copy(update={"store": Path("/nonexistent/store.duckdb")}))
    errors = [c for c in checks if c.status == "error"]
    assert not errors, errors
    assert {c.tenant for c in checks} >= {"demo", "acme"}


def test_doctor_reports_problems_and_writes_nothing(cli, tmp_path):
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "demo.yaml").write_text("tenant: demo\nintegrations:\n  github:\n    sources:\n"
                                       "      - {name: nosuch, mode: samples}\n  nosuchplugin: {}\n")
    (tmp_path / "runner.yaml").write_text(f"store: {tmp_path / 'store.duckdb'}\ntenants_dir: {tenants}\n")
    r = cli("doctor", "--config", str(tmp_path / "runner.yaml"), "--json")
    assert r.code == 1
    checks = json.loads(r.out)
    problems = {(c["target"], c["check"]) for c in checks if c["status"] == "error"}
    assert ("github/nosuch", "mapping") in problems and ("github/nosuch", "samples") in problems
    assert ("nosuchplugin", "plugin") in problems
    assert not (tmp_path / "store.duckdb").exists()


def test_progress_lines_and_json_logs_when_not_on_a_terminal(tmp_path):
    env = {**os.environ, "INTEGRATIONS_MASTER_KEY_FILE": str(tmp_path / "k"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "integrations", "--log-format", "json", "--log-level", "INFO", "run", "--engine", "python",
                           "--db", str(tmp_path / "s.duckdb"), "--tenant", "demo"], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert any(line.startswith("demo/github/push: partial read=9") for line in lines)
    logs = [json.loads(line) for line in lines if line.startswith("{")]
    finished = next(entry for entry in logs if entry["message"] == "run finished")
    assert finished["level"] == "INFO" and finished["logger"] == "integrations.runner" and finished["sources"] == 11


def test_remap_after_a_mapping_change_updates_that_history_and_nothing_else(tmp_path):
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    store_path = tmp_path / "s.duckdb"
    run(RunOptions(store_path=store_path, tenants=["demo"], mappings=mappings))
    conn = duckdb.connect(str(store_path), read_only=True)
    before = dict(conn.execute("SELECT event_id, content_hash FROM events").fetchall())
    conn.close()
    release = mappings / "github" / "release.yaml"
    release.write_text(release.read_text().replace("      attributes.name: ", "      attributes.release_name: ", 1))
    assert "attributes.release_name" in release.read_text()
    from integrations.store import EventStore
    from runner._remap import remap

    reports = remap(EventStore(store_path), mappings=mappings, engine_name="python")
    by_source = {(r.plugin, r.source): r for r in reports}
    assert by_source[("github", "release")].updated == 1
    others = {key: (r.inserted, r.updated) for key, r in by_source.items() if key != ("github", "release")}
    assert set(others.values()) == {(0, 0)}, others
    conn = duckdb.connect(str(store_path), read_only=True)
    after = dict(conn.execute("SELECT event_id, content_hash FROM events").fetchall())
    kinds = dict(conn.execute("SELECT event_id, kind FROM events").fetchall())
    conn.close()
    assert set(after) == set(before)
    changed = {e for e in after if after[e] != before[e]}
    assert changed and {kinds[e] for e in changed} == {"release"}


def _big_samples(folder: Path, n: int) -> None:
    target = folder / "demo" / "github"
    target.mkdir(parents=True)
    with (target / "push.jsonl").open("w") as out:
        for i in range(n):
            record = push_record(1)
            record["commits"][0]["id"] = f"{i:040x}"
            if i % 997 == 0:
                del record["commits"][0]["timestamp"]  # a few rejections too
            out.write(json.dumps(record) + "\n")


def test_a_run_killed_in_the_middle_and_run_again_loses_and_duplicates_nothing(tmp_path):
    samples = tmp_path / "samples"
    _big_samples(samples, 12_000)
    empty_tenants = tmp_path / "tenants"
    empty_tenants.mkdir()
    env = {**os.environ, "INTEGRATIONS_MASTER_KEY_FILE": str(tmp_path / "k"), "PYTHONPATH": str(ROOT),
           "INTEGRATIONS_BATCH_SIZE": "500"}
    args = [sys.executable, "-m", "integrations", "run", "--samples", str(samples), "--tenants-dir", str(empty_tenants),
            "--engine", "python"]
    killed = tmp_path / "killed.duckdb"
    proc = subprocess.Popen([*args, "--db", str(killed)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    count = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            conn = duckdb.connect(str(killed), read_only=True)
            count = conn.execute("SELECT count(*) FROM events").fetchall()[0][0]
            conn.close()
        except (duckdb.Error, duckdb.IOException):
            continue
        if count >= 1000:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(30)
    assert 1000 <= count < 12_000, "the run was not killed in the middle"
    assert subprocess.run([*args, "--db", str(killed)], cwd=ROOT, env=env, capture_output=True,
                          timeout=600).returncode == 0
    clean = tmp_path / "clean.duckdb"
    assert subprocess.run([*args, "--db", str(clean)], cwd=ROOT, env=env, capture_output=True,
                          timeout=600).returncode == 0

    def contents(path: Path):
        conn = duckdb.connect(str(path), read_only=True)
        events = conn.execute("SELECT event_id, content_hash FROM events ORDER BY 1").fetchall()
        letters = conn.execute("SELECT dead_letter_id, reason FROM dead_letter ORDER BY 1").fetchall()
        raw = conn.execute("SELECT count(*), count(DISTINCT record_hash) FROM raw_records").fetchall()[0]
        conn.close()
        return events, letters, raw

    killed_events, killed_letters, killed_raw = contents(killed)
    clean_events, clean_letters, clean_raw = contents(clean)
    assert len(clean_events) == 12_000 - len(clean_letters)
    assert killed_events == clean_events
    assert killed_letters == clean_letters
    assert killed_raw == clean_raw == (12_000, 12_000)
