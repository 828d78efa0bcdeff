"""A plugin that calls a real HTTP server on 127.0.0.1 through the health monitor, beside broken ones.

The server answers 429s with Retry-After and 500s for a while, then recovers. Back-off and the
breaker's cool-down run on a fake clock, so the test takes no real waiting.
"""

from __future__ import annotations

import asyncio
import json

import httpx

from integrations.health import BreakerConfig, FakeClock, HealthMonitor, RetryPolicy
from integrations.mapping import get_engine
from integrations.plugins import (
    AuthResult,
    HealthStatus,
    IntegrationPlugin,
    LifecycleManager,
    Page,
    PluginConfiguration,
    PluginSettings,
    RunContext,
    SourceConfig,
    run_tenant,
)
from tests.plugins.conftest import MAPPING


class HttpSettings(PluginSettings):
    base_url: str


class HttpItemsPlugin(IntegrationPlugin):
    """Pages of items from GET {base_url}/items?page=N, every call through the guard."""

    name = "httpitems"
    version = "1.0.0"
    supported_events = ("item",)
    sources = ("items",)
    settings_model = HttpSettings

    async def initialize(self, config):
        self.client = httpx.AsyncClient(base_url=self.settings.base_url, timeout=5)

    async def authenticate(self, credentials):
        return AuthResult(ok=True)

    async def fetch_data(self, request):
        page = int(request.watermarks.get("page", "0"))
        while True:
            response = await self.guard.acall(self.client.get, "/items", params={"page": page})
            items = response.json()["items"]
            if not items:
                return
            page += 1
            yield Page(source=request.source, records=items, watermarks={"page": str(page)})

    async def health_check(self):
        return HealthStatus(healthy=True)

    async def shutdown(self):
        await self.client.aclose()


def test_retries_breaker_and_recovery_against_a_real_server(http_server, store, registry, plugin_mappings, cli,
                                                            store_path):
    registry.register(HttpItemsPlugin)
    (plugin_mappings / "httpitems").mkdir()
    (plugin_mappings / "httpitems" / "items.yaml").write_text(MAPPING.format(name="httpitems"))
    items = {"items": [{"id": i, "at": f"2024-05-01T12:00:0{i}Z"} for i in range(3)]}
    empty = {"items": []}
    clock = FakeClock()
    monitor = HealthMonitor(clock=clock, retry=RetryPolicy(max_attempts=4, base_seconds=0.5, cap_seconds=5),
                            breaker=BreakerConfig(failure_threshold=4, window_seconds=60, cooldown_seconds=30))
    configs = [PluginConfiguration(tenant_id="demo", plugin_name=name, timeout_seconds=2.0,
                                   settings={"base_url": http_server.base_url} if name == "httpitems" else {},
                                   sources=[SourceConfig(name="items", mode="poll")])
               for name in ("httpitems", "raising", "hanging", "garbage")]

    def run():
        ctx = RunContext(store=store, registry=registry, manager=LifecycleManager(), engine=get_engine("python"),
                         mappings=plugin_mappings, run_id="r", health=monitor)
        reports = asyncio.run(run_tenant(ctx, configs))
        asyncio.run(ctx.manager.shutdown_all())
        return {r.plugin: r for r in reports}

    def health():
        rows = json.loads(cli("health", "--db", str(store_path), "--json").out)
        return next(r for r in rows if r["plugin"] == "httpitems")

    # 1. Two 429s with Retry-After, then 500s: retried with back-off, then the breaker opens.
    http_server.script("/items", [(429, {"Retry-After": "1"}, {}), (429, {"Retry-After": "1"}, {}),
                                  (500, {}, {}), (500, {}, {}), (500, {}, {}), (500, {}, {})],
                       default=(200, {}, empty))
    reports = run()
    assert reports["httpitems"].status == "failed"
    assert {reports[p].status for p in ("raising", "hanging", "garbage")} == {"failed"}
    assert sum(1 for s in clock.sleeps if s >= 1.0) >= 2  # honoured Retry-After: 1
    first = health()
    assert first["breaker_state"] == "open" and first["state"] == "down"
    assert first["failures"] >= 4
    fetch_letters = store.list_dead_letters("demo", kind="fetch")
    assert len(fetch_letters) == 1 and fetch_letters[0]["record"]["source"] == "items"
    hits_before = len(http_server.hits)

    # 2. While open, the integration is skipped without calling the service; the others still run.
    reports = run()
    assert "circuit breaker open" in reports["httpitems"].error
    assert len(http_server.hits) == hits_before

    # 3. After the cool-down the service has recovered: a trial call succeeds and the breaker closes.
    clock.advance(31)
    http_server.script("/items", [(200, {}, items), (200, {}, empty)], default=(200, {}, empty))
    reports = run()
    assert reports["httpitems"].status == "ok" and reports["httpitems"].events == 3
    assert store.count_events("demo") == 3
    recovered = health()
    assert recovered["breaker_state"] == "closed" and recovered["last_success"] is not None
    assert store.get_watermarks("demo", "httpitems", "items") == {"page": "1"}


def test_a_fetch_that_exhausted_its_retries_is_replayed_once_the_service_is_back(http_server, store, registry,
                                                                                  plugin_mappings, tmp_path):
    from functools import partial

    from integrations.deadletters import replay_dead_letters
    from runner import RunOptions, replay_fetch_dead_letters

    registry.register(HttpItemsPlugin)
    (plugin_mappings / "httpitems").mkdir()
    (plugin_mappings / "httpitems" / "items.yaml").write_text(MAPPING.format(name="httpitems"))
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "demo.yaml").write_text(
        f"tenant: demo\nintegrations:\n  httpitems:\n    settings: {{base_url: '{http_server.base_url}'}}\n"
        "    sources:\n      - {name: items, mode: poll}\n")
    options = RunOptions(store_path=store.path, tenants=["demo"], mappings=plugin_mappings, tenants_dir=tenants,
                         registry=registry, engine="python",
                         health=HealthMonitor(clock=FakeClock(), retry=RetryPolicy(max_attempts=2)))
    from runner import run

    http_server.script("/items", [], default=(503, {}, {}))
    report = run(options)
    assert report.all_failed
    (letter,) = store.list_dead_letters("demo", kind="fetch")
    assert letter["record"]["watermarks"] == {} and "503" in letter["reason"]

    items = {"items": [{"id": 7, "at": "2024-05-01T12:00:07Z"}]}
    http_server.script("/items", [(200, {}, items)], default=(200, {}, {"items": []}))
    options.health = HealthMonitor(clock=FakeClock())
    outcome = replay_dead_letters(store, "demo", fetch_replayer=partial(replay_fetch_dead_letters, options=options))
    assert outcome[("httpitems", "items", "fetch")] == {"tried": 1, "replayed": 1, "failing": 0}
    assert store.list_dead_letters("demo", kind="fetch") == []
    assert store.count_events("demo") == 1
