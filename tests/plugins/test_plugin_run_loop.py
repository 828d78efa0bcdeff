"""The run loop: broken plugins beside a good one, watermarks in the same transaction as events."""

from __future__ import annotations

import asyncio

from integrations.mapping import get_engine
from integrations.plugins import LifecycleManager, PluginConfiguration, RunContext, SourceConfig, run_tenant
from integrations.store import EventStore
from tests.plugins.conftest import GoodPlugin


def configs(*names: str, tenant: str = "demo") -> list[PluginConfiguration]:
    return [PluginConfiguration(tenant_id=tenant, plugin_name=n, timeout_seconds=1.0,
                                sources=[SourceConfig(name="items", mode="poll")]) for n in names]


def context(store, registry, mappings) -> RunContext:
    return RunContext(store=store, registry=registry, manager=LifecycleManager(), engine=get_engine("python"),
                      mappings=mappings, run_id="run-1")


def test_broken_plugins_are_isolated_and_reported(store, registry, plugin_mappings):
    ctx = context(store, registry, plugin_mappings)
    reports = asyncio.run(run_tenant(ctx, configs("good", "raising", "hanging", "garbage", "refusing")))
    by_plugin = {r.plugin: r for r in reports}
    assert by_plugin["good"].status == "ok" and by_plugin["good"].events == 6
    assert "ConnectionError: boom" in by_plugin["raising"].error
    assert "timed out" in by_plugin["hanging"].error
    assert "malformed data" in by_plugin["garbage"].error
    assert "needs credentials: token revoked" in by_plugin["refusing"].error
    assert {r.status for p, r in by_plugin.items() if p != "good"} == {"failed"}
    assert store.count_events("demo") == 6
    states = {key[1]: state for key, state in ctx.manager.states().items()}
    assert states["good"] == "authenticated" and states["hanging"] == "failed"
    assert states["refusing"] == "needs_credentials"
    runs = {r["plugin"]: r for r in store.list_runs("demo")}
    assert runs["raising"]["status"] == "failed" and runs["good"]["read"] == 6


def test_a_failure_mid_way_keeps_the_watermark_of_the_last_stored_page(store, registry, plugin_mappings):
    GoodPlugin.fail_after_page = 0
    try:
        reports = asyncio.run(run_tenant(context(store, registry, plugin_mappings), configs("good")))
    finally:
        GoodPlugin.fail_after_page = None
    assert reports[0].status == "failed" and "fell over" in reports[0].error
    assert store.get_watermarks("demo", "good", "items") == {"page": "1"}
    assert store.count_events("demo") == 2
    reports = asyncio.run(run_tenant(context(store, registry, plugin_mappings), configs("good")))
    assert reports[0].read == 4  # resumed after page 1
    assert store.get_watermarks("demo", "good", "items") == {"page": "3"}
    assert store.count_events("demo") == 6
    again = asyncio.run(run_tenant(context(store, registry, plugin_mappings), configs("good")))
    assert again[0].read == 0 and store.count_events("demo") == 6


def test_tenants_keep_their_own_watermarks_and_events(tmp_path, registry, plugin_mappings):
    store = EventStore(tmp_path / "s.duckdb")
    asyncio.run(run_tenant(context(store, registry, plugin_mappings), configs("good", tenant="acme")))
    assert store.get_watermarks("demo", "good", "items") == {}
    assert store.count_events("demo") == 0 and store.count_events("acme") == 6
