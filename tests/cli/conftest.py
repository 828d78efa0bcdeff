from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.mapping.conftest import PUSH, push_record


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A mappings folder with a push mapping, a samples folder for two tenants, and a store path."""
    (tmp_path / "mappings" / "github").mkdir(parents=True)
    (tmp_path / "mappings" / "github" / "push.yaml").write_text(PUSH)
    for tenant, n in (("demo", 2), ("acme", 1)):
        folder = tmp_path / "samples" / tenant / "github"
        folder.mkdir(parents=True)
        lines = [json.dumps(push_record(n)), json.dumps(push_record(0)), '{"commits": [{"id": "x"}]}', "{not json"]
        (folder / "push.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path
