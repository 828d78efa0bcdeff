"""`integrations map`: events to stdout, summary to stderr, dead letters to a file, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT
from tests.mapping.conftest import push_record


def test_map_jsonl_with_dead_letter_file(cli, workspace, tmp_path):
    dl = tmp_path / "dl.jsonl"
    r = cli("map", "--mapping", str(workspace / "mappings/github/push.yaml"), "--input",
            str(workspace / "samples/demo/github/push.jsonl"), "--dead-letter", str(dl))
    assert r.code == 0, r
    events = r.json_lines()
    assert len(events) == 2 and all("ingested_at" not in e for e in events)
    assert "read 4, mapped 1, filtered 1, rejected 2 (2 events)" in r.err
    rejected = [json.loads(line) for line in dl.read_text().splitlines()]
    assert [d["record_index"] for d in rejected] == [2, 3]
    assert rejected[0]["field"] == "occurred_at" and "not valid JSON" in rejected[1]["reason"]


def test_map_by_plugin_and_source_from_a_json_array_as_cloudevents(cli, workspace, tmp_path, monkeypatch,
                                                                    cloudevents_validator):
    monkeypatch.setenv("INTEGRATIONS_MAPPINGS", str(workspace / "mappings"))
    data = tmp_path / "in.json"
    data.write_text(json.dumps([push_record(1), push_record(2)]))
    r = cli("map", "--plugin", "github", "--source", "push", "--input", str(data), "--format", "cloudevents",
            "--tenant", "acme")
    assert r.code == 0, r
    out = r.json_lines()
    assert len(out) == 3
    for ce in out:
        cloudevents_validator.validate(ce)
        assert ce["data"]["tenant_id"] == "acme"


def test_invalid_mapping_exits_1_with_its_place(cli, workspace):
    bad = workspace / "mappings/github/push.yaml"
    bad.write_text(bad.read_text().replace("for_each", "foreach"))
    r = cli("map", "--mapping", str(bad), "--input", str(workspace / "samples/demo/github/push.jsonl"))
    assert r.code == 1
    assert f"{bad}:8:5: unknown key 'foreach'" in r.err


def test_usage_errors_exit_2(cli, workspace):
    assert cli("map", "--input", "x.json").code == 2
    assert cli("map", "--plugin", "github", "--source", "push", "--input", "missing.json").code == 2
    assert cli("map", "--plugin", "nope", "--source", "push", "--input", "-").code == 2


def test_map_reads_stdin_as_a_real_process(workspace):
    proc = subprocess.run(
        [sys.executable, "-m", "integrations", "map", "--mapping", str(workspace / "mappings/github/push.yaml"),
         "--input", "-"], input=json.dumps(push_record(2)), capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2
    assert "read 1, mapped 1" in proc.stderr
