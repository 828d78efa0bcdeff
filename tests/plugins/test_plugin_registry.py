"""The registry: interface checks (Property 1), versions, specifiers and dependencies."""

from __future__ import annotations

import asyncio
import keyword

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.errors import PluginError
from integrations.plugins import (
    AuthResult,
    DataRequest,
    HealthStatus,
    IntegrationPlugin,
    Page,
    PluginConfiguration,
    PluginCredentials,
    PluginInstance,
    PluginRegistry,
    load_registry,
)
from integrations.plugins._interface import REQUIRED_METHODS
from tests.plugins.conftest import GoodPlugin

ABSTRACT = ("initialize", "authenticate", "fetch_data", "health_check", "shutdown")


async def _initialize(self, config):
    return None


async def _authenticate(self, credentials):
    return AuthResult(ok=True)


async def _fetch_data(self, request):
    yield Page(source=request.source, records=[{"n": i} for i in range(self.count)])


async def _health_check(self):
    return HealthStatus(healthy=True)


async def _shutdown(self):
    return None


IMPLEMENTATIONS = {"initialize": _initialize, "authenticate": _authenticate, "fetch_data": _fetch_data,
                   "health_check": _health_check, "shutdown": _shutdown}
names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True).filter(lambda n: not keyword.iskeyword(n))


def make_plugin(name: str, version: str, methods: set[str], count: int) -> type:
    body = {"name": name, "version": version, "supported_events": ("thing",), "count": count}
    body.update({m: IMPLEMENTATIONS[m] for m in methods})
    return type(f"Generated_{name}", (IntegrationPlugin,), body)


@given(name=names, major=st.integers(0, 20), minor=st.integers(0, 20),
       methods=st.sets(st.sampled_from(ABSTRACT)), count=st.integers(0, 5))
@settings(max_examples=150, deadline=None)
def test_property_1_plugin_interface_standardization(name, major, minor, methods, count):
    """Feature: integrations, Property 1: Plugin Interface Standardization — any generated plugin class
    that implements the interface registers and runs; any that lacks a method is refused with a message
    naming it."""
    cls = make_plugin(name, f"{major}.{minor}", methods, count)
    registry = PluginRegistry()
    missing = sorted(set(ABSTRACT) - methods)
    if missing:
        with pytest.raises(PluginError) as info:
            registry.register(cls)
        for method in missing:
            assert f"{method}()" in str(info.value)
        assert name in str(info.value)
        assert registry.list_entries() == []
        return
    entry = registry.register(cls)
    assert (entry.name, entry.version) == (name, f"{major}.{minor}")
    resolved = registry.resolve(name, f"=={major}.{minor}")
    instance = PluginInstance("t", resolved())

    async def lifecycle():
        await instance.initialize(PluginConfiguration(tenant_id="t", plugin_name=name))
        await instance.authenticate(PluginCredentials("t"))
        pages = [p async for p in instance.fetch(DataRequest(tenant_id="t", source="s"))]
        await instance.shutdown()
        return pages

    pages = asyncio.run(lifecycle())
    assert [len(p.records) for p in pages] == [count]
    assert instance.state.value == "stopped"


def test_non_async_methods_and_bad_versions_are_refused():
    class Sync(GoodPlugin):
        name = "sync"

        def health_check(self):  # type: ignore[override]
            return HealthStatus(healthy=True)

    class BadVersion(GoodPlugin):
        name = "badversion"
        version = "one"

    registry = PluginRegistry()
    with pytest.raises(PluginError, match="health_check\\(\\) must be 'async def'"):
        registry.register(Sync)
    with pytest.raises(PluginError, match="not a PEP 440 version"):
        registry.register(BadVersion)
    with pytest.raises(PluginError, match="not a subclass of IntegrationPlugin"):
        registry.register(object)


def test_versions_and_specifiers():
    registry = PluginRegistry()
    for version in ("0.9.0", "1.0.0", "1.4.2", "2.0.0"):
        registry.register(type(f"V{version}", (GoodPlugin,), {"version": version}))
    assert registry.versions("good") == ["0.9.0", "1.0.0", "1.4.2", "2.0.0"]
    assert registry.resolve("good").version == "2.0.0"
    assert registry.resolve("good", ">=1,<2").version == "1.4.2"
    with pytest.raises(PluginError, match="no version of plugin 'good' satisfies '>=3'") as info:
        registry.resolve("good", ">=3")
    assert "available: 0.9.0, 1.0.0, 1.4.2, 2.0.0" in info.value.hint
    with pytest.raises(PluginError, match="not a version specifier"):
        registry.resolve("good", "one")
    with pytest.raises(PluginError, match="no plugin named 'nope'"):
        registry.resolve("nope")


def test_same_name_and_version_from_two_distributions_conflicts():
    registry = PluginRegistry()
    registry.register(GoodPlugin, distribution="dist-a")
    twin = type("Twin", (GoodPlugin,), {})
    with pytest.raises(PluginError, match="conflicts with the same name and version from dist-a"):
        registry.register(twin, distribution="dist-b")


def test_unmet_dependencies_are_refused_and_the_others_stay():
    registry = PluginRegistry()
    registry.register(GoodPlugin)
    registry.register(type("NeedsGood", (GoodPlugin,), {"name": "needs_good", "dependencies": ("good>=1,<2",)}))
    registry.register(type("NeedsNewGood", (GoodPlugin,), {"name": "needs_new", "dependencies": ("good>=5",)}))
    registry.register(type("NeedsLib", (GoodPlugin,), {"name": "needs_lib", "dependencies": ("no-such-dist>=1",)}))
    registry.register(type("NeedsPydantic", (GoodPlugin,), {"name": "needs_pydantic", "dependencies": ("pydantic>=2",)}))
    registry.register(type("Chain", (GoodPlugin,), {"name": "chain", "dependencies": ("needs_new",)}))
    registry.check_dependencies()
    assert sorted(n for n, _v in registry.plugins) == ["good", "needs_good", "needs_pydantic"]
    messages = " | ".join(p.message for p in registry.problems)
    assert "needs plugin good>=5 but the registry has good 1.0.0" in messages
    assert "needs no-such-dist>=1, which is neither a registered plugin nor an installed distribution" in messages
    assert "chain" in messages


def test_built_in_plugins_register_through_entry_points():
    registry = load_registry()
    names = {e.name for e in registry.list_entries()}
    assert {"github", "cloudwatch"} <= names
    github = registry.resolve("github")
    assert set(REQUIRED_METHODS) <= set(dir(github))
    entry = next(e for e in registry.list_entries() if e.name == "github")
    assert entry.distribution == "integrations-workbench" and entry.status == "active"
    assert "base_url" in entry.configuration_schema["properties"]


def test_plugins_cli_lists_and_shows(cli):
    r = cli("plugins", "list")
    assert r.code == 0 and "github" in r.out and "cloudwatch" in r.out
    r = cli("plugins", "show", "cloudwatch")
    assert r.code == 0 and '"name": "cloudwatch"' in r.out
    assert cli("plugins", "show", "nope").code == 2
