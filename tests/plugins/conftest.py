"""Plugins for the framework tests: a good one, and ones that raise, hang or return garbage."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from integrations.plugins import AuthResult, HealthStatus, IntegrationPlugin, Page, PluginRegistry

MAPPING = """plugin: {name}
source: items
outputs:
  - kind: item
    event_type: system
    fields:
      external_id: to_string(id)
      occurred_at: at
      title: "format('item {{}}', id)"
"""


class GoodPlugin(IntegrationPlugin):
    """Three pages of two records, with a position cursor."""

    name = "good"
    version = "1.0.0"
    supported_events = ("item",)
    sources = ("items",)
    fail_after_page: int | None = None

    async def initialize(self, config):
        return None

    async def authenticate(self, credentials):
        return AuthResult(ok=True)

    async def fetch_data(self, request):
        start = int(request.watermarks.get("page", "0"))
        for page in range(start, 3):
            if self.fail_after_page is not None and page > self.fail_after_page:
                raise RuntimeError("the service fell over mid-way")
            records = [{"id": page * 2 + i, "at": f"2024-05-01T12:0{page}:0{i}Z"} for i in range(2)]
            yield Page(source=request.source, records=records, watermarks={"page": str(page + 1)})

    async def health_check(self):
        return HealthStatus(healthy=True)

    async def shutdown(self):
        return None


class RaisingPlugin(GoodPlugin):
    name = "raising"

    async def fetch_data(self, request):
        raise ConnectionError("boom")
        yield  # pragma: no cover


class HangingPlugin(GoodPlugin):
    name = "hanging"

    async def fetch_data(self, request):
        await asyncio.sleep(3600)
        yield  # pragma: no cover


class GarbagePlugin(GoodPlugin):
    name = "garbage"

    async def fetch_data(self, request):
        yield {"not": "a page"}


class RefusingPlugin(GoodPlugin):
    name = "refusing"

    async def authenticate(self, credentials):
        return AuthResult(ok=False, message="token revoked", needs_credentials=True)


ALL = (GoodPlugin, RaisingPlugin, HangingPlugin, GarbagePlugin, RefusingPlugin)


@pytest.fixture
def registry() -> PluginRegistry:
    reg = PluginRegistry()
    for cls in ALL:
        reg.register(cls)
    return reg


@pytest.fixture
def plugin_mappings(tmp_path: Path) -> Path:
    root = tmp_path / "mappings"
    for cls in ALL:
        (root / cls.name).mkdir(parents=True)
        (root / cls.name / "items.yaml").write_text(MAPPING.format(name=cls.name))
    return root
