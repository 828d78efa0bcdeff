from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from integrations.mapping import PythonEngine
from integrations.mapping._sql_file import map_file
from integrations.pipeline import map_items, store_result
from integrations.records import iter_records
from integrations.store import EventStore

PUSH = textwrap.dedent("""\
    plugin: github
    source: push
    version: 1
    description: one commit event per commit
    outputs:
      - kind: commit
        event_type: delivery
        for_each: commits
        fields:
          external_id: item.id
          occurred_at: item.timestamp
          title: "format('{}: {}', record.repository.full_name, item.message)"
          resource_ids: "[record.repository.full_name]"
          attributes.sha: item.id
          attributes.author.name: item.author.name
        required: [attributes.sha]
        severity:
          - when: "item.distinct == `false`"
            level: low
        correlation_hints:
          - type: resource_id
            value: "[record.repository.full_name, item.id]"
            confidence: 0.9
        evidence_links:
          - type: commit
            url: item.url
            description: "'Commit on GitHub'"
            metadata: {sha: item.id}
    """)


def push_record(n: int = 2, **overrides) -> dict:
    record = {
        "ref": "refs/heads/main",
        "repository": {"full_name": "octo/checkout-api", "name": "checkout-api"},
        "commits": [
            {"id": f"{i:040x}", "timestamp": f"2024-05-01T12:0{i}:00+02:00", "message": f"change {i}",
             "url": f"https://github.com/octo/checkout-api/commit/{i:040x}", "distinct": True,
             "author": {"name": "Mona", "email": "mona@example.com"}}
            for i in range(n)
        ],
    }
    record.update(overrides)
    return record


@pytest.fixture
def push_yaml() -> str:
    return PUSH


@pytest.fixture
def push_mapping():
    from integrations.mapping import load_mapping

    return load_mapping(PUSH, file="push.yaml")


# -- the fast file path against the Python pipeline ----------------------------------------------


def store_dump(store: EventStore):
    """Every event and dead letter of the store, in a fixed order, for comparing two stores."""
    with store.reader() as conn:
        events = conn.execute(
            "SELECT event_id, tenant_id, event_type, kind, severity, title, occurred_at, source_integration, source, "
            "external_id, resource_ids, hint_values, attributes::VARCHAR, integration_context::VARCHAR, "
            "content_hash, source_precedence FROM events ORDER BY event_id").fetchall()
        letters = conn.execute("SELECT dead_letter_id, reason, field, output, expression, record_index, "
                               "record::VARCHAR FROM dead_letter ORDER BY dead_letter_id").fetchall()
    return events, letters


def both_paths(mapping, path: Path, tmp_path: Path, **map_file_options):
    """The Python pipeline and `map_file` over the same file into two stores; asserts the stores match.

    Returns both reports, so that a test can compare counts and rejections too.
    """
    python_store, sql_store = EventStore(tmp_path / "p.duckdb"), EventStore(tmp_path / "s.duckdb")
    result = map_items(PythonEngine(), mapping, iter_records(path), "acme")
    expected = store_result(python_store, tenant_id="acme", plugin=mapping.plugin, source=mapping.source,
                            result=result, precedence=mapping.spec.precedence)
    report = map_file(mapping, path, tenant_id="acme", store=sql_store, **map_file_options)
    assert store_dump(sql_store) == store_dump(python_store)
    counts = ("read", "mapped", "filtered", "rejected", "events", "inserted")
    assert [getattr(report, k) for k in counts] == [getattr(expected, k) for k in counts]
    assert [(r.record_index, r.reason) for r in report.rejections] == [(r.record_index, r.reason)
                                                                       for r in result.rejections]
    return expected, report
