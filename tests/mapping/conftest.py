from __future__ import annotations

import textwrap

import pytest

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
