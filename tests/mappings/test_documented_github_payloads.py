"""The GitHub webhook mappings on every payload GitHub documents for their events.

`tests/data/github/webhook_examples.json.gz` holds the examples of docs.github.com's "Webhook
events and payloads" (api.github.com and GitHub Enterprise Server 3.1-3.5), as octokit publishes
them (see refresh_webhook_examples.py). Our golden examples pin a few of them field by field;
this module holds the mappings to all of them, so that a shape we did not copy cannot slip by:

* no documented payload is rejected, and one is filtered only where the mapping says it filters
  (a push without commits, a workflow run that has not completed);
* the events name the delivery's repository and carry the payload's own ids;
* the compiled engine and the fast file path give exactly what the Python engine gives.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from integrations.mapping import PythonEngine, load_mapping
from integrations.mapping._sql import SqlEngine
from integrations.pipeline import map_items
from tests.mapping.conftest import both_paths

ROOT = Path(__file__).resolve().parents[2]
CORPUS = json.loads(gzip.decompress((ROOT / "tests" / "data" / "github" / "webhook_examples.json.gz").read_bytes()))
EXAMPLES = [(f"{site}/{event}#{n}", event, payload)
            for site, events in sorted(CORPUS["examples"].items())
            for event, payloads in sorted(events.items())
            for n, payload in enumerate(payloads)]
EVENTS = sorted({event for _id, event, _payload in EXAMPLES})

# What each mapping's `when` documents as filtered (not an event, not an error).
FILTERED = {
    "push": lambda p: not p.get("commits"),
    "workflow_run": lambda p: p.get("action") != "completed",
}


def _mapping(event: str):
    return load_mapping(ROOT / "mappings" / "github" / f"{event}.yaml")


def test_the_corpus_covers_every_webhook_source_and_both_payload_generations() -> None:
    assert CORPUS["package"].startswith("@octokit/webhooks-examples@")
    assert EVENTS == ["deployment", "deployment_status", "pull_request", "push", "release", "workflow_run"]
    assert len(EXAMPLES) >= 100
    # GitHub Enterprise Server 3.1's deployment payloads predate `action`.
    assert any("action" not in p for _id, event, p in EXAMPLES if event == "deployment")


@pytest.mark.parametrize(("example_id", "event", "payload"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_documented_payload_maps(example_id: str, event: str, payload: dict) -> None:
    result = PythonEngine().map(_mapping(event), [payload], tenant_id="demo")
    assert not result.rejections, [f"{r.field}: {r.reason}" for r in result.rejections]
    should_filter = FILTERED.get(event, lambda _p: False)(payload)
    assert (result.filtered, result.mapped) == ((1, 0) if should_filter else (0, 1)), example_id
    repository = payload["repository"]["full_name"]
    for event_ in result.events:
        document = event_.to_json_dict(with_ingested_at=False)
        assert repository in event_.resource_ids
        assert f"service:{payload['repository']['name'].lower()}" in event_.resource_ids
        assert event_.integration_context.source_integration == "github"
        assert event_.integration_context.external_id
        assert event_.title and "None" not in event_.title, document["title"]
    if event == "push" and not should_filter:
        assert [e.integration_context.external_id for e in result.events] == [c["id"] for c in payload["commits"]]


@pytest.mark.parametrize("event", EVENTS)
def test_both_engines_agree_on_the_documented_payloads(event: str, tmp_path: Path) -> None:
    """All examples of an event in one batch: `SqlEngine.map` and the fast file path (`map_file`,
    SQL into the store) against the Python engine."""
    mapping = _mapping(event)
    payloads = [p for _id, e, p in EXAMPLES if e == event]
    items = list(enumerate(payloads))
    expected = map_items(PythonEngine(), mapping, items, "acme")
    actual = map_items(SqlEngine(python_below=0), mapping, items, "acme")
    assert [e.to_json_dict() for e in actual.events] == [e.to_json_dict() for e in expected.events]
    assert actual.summary() == expected.summary()
    path = tmp_path / f"{event}.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in payloads), encoding="utf-8")
    both_paths(mapping, path, tmp_path)
