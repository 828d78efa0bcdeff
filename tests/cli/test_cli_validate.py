"""`integrations validate` and `integrations schema`."""

from __future__ import annotations

import json


def test_validate_prints_every_error_and_exits_1(cli, workspace):
    bad = workspace / "mappings/github/bad.yaml"
    text = (workspace / "mappings/github/push.yaml").read_text()
    bad.write_text(text.replace("event_type: delivery", "event_type: delivery\n    colour: red").replace("format(", "formatt("))
    r = cli("validate", str(workspace / "mappings"))
    assert r.code == 1
    lines = [line for line in r.out.splitlines() if line.startswith(str(bad))]
    assert any(":8:5: unknown key 'colour'" in line for line in lines), r.out
    assert "1 error(s) in 2 file(s)" in r.err or "error(s)" in r.err


def test_validate_ok_exits_0(cli, workspace):
    r = cli("validate", str(workspace / "mappings"))
    assert r.code == 0 and "1 mapping file(s) valid" in r.err


def test_validate_missing_path_is_a_usage_error(cli, workspace):
    assert cli("validate", str(workspace / "nope.yaml")).code == 2


def test_unmapped_lists_fields_no_expression_reads(cli, workspace):
    r = cli("validate", str(workspace / "mappings/github/push.yaml"), "--unmapped",
            str(workspace / "samples/demo/github/push.jsonl"))
    assert r.code == 0
    assert "commits[].author.email" in r.out and "ref" in r.out
    assert "commits[].message" not in r.out


def test_schema_commands(cli):
    event = json.loads(cli("schema", "event").out)
    assert "integration_context" in event["properties"]
    mapping = json.loads(cli("schema", "mapping").out)
    assert "outputs" in mapping["properties"]


def test_explain_says_which_fields_run_compiled(cli):
    r = cli("validate", "mappings/github/push.yaml", "--explain")
    assert r.code == 0
    assert "commit.external_id: compiled" in r.out
