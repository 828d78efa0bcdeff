"""Lifecycle: legal states only, time-outs, restarts, and instances that never affect each other."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.errors import PluginError
from integrations.plugins import (
    DataRequest,
    LifecycleManager,
    PluginConfiguration,
    PluginCredentials,
    PluginState,
)
from tests.plugins.conftest import GoodPlugin, HangingPlugin, RaisingPlugin, RefusingPlugin

LEGAL_AFTER = {
    "initialize": {"initialized", "failed"},
    "authenticate": {"authenticated", "needs_credentials", "failed"},
    "fetch": {"authenticated", "failed"},
    "shutdown": {"stopped"},
    "restart": {"authenticated", "initialized", "needs_credentials", "failed"},
}
ALLOWED_BEFORE = {
    "initialize": {"created", "stopped", "failed"},
    "authenticate": {"initialized", "authenticated", "needs_credentials"},
    "fetch": {"authenticated"},
}


def config(tenant: str, name: str) -> PluginConfiguration:
    return PluginConfiguration(tenant_id=tenant, plugin_name=name, timeout_seconds=0.5)


async def apply(instance, op: str, tenant: str) -> None:
    if op == "initialize":
        await instance.initialize(config(tenant, instance.name))
    elif op == "authenticate":
        await instance.authenticate(PluginCredentials(tenant))
    elif op == "fetch":
        async for _page in instance.fetch(DataRequest(tenant_id=tenant, source="items")):
            pass
    elif op == "shutdown":
        await instance.shutdown()
    elif op == "restart":
        await instance.restart()


operations = st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(sorted(LEGAL_AFTER))), max_size=25)


@given(ops=operations, kinds=st.tuples(st.sampled_from([GoodPlugin, RaisingPlugin, RefusingPlugin]),
                                       st.sampled_from([GoodPlugin, RaisingPlugin, RefusingPlugin])))
@settings(max_examples=150, deadline=None)
def test_property_6_plugin_lifecycle_management(ops, kinds):
    """Feature: integrations, Property 6: Plugin Lifecycle Management — random lifecycle sequences keep
    each plugin in a legal state and never affect another plugin's instance."""
    manager = LifecycleManager()
    instances = {"a": manager.instance("tenant-a", kinds[0]), "b": manager.instance("tenant-b", kinds[1])}

    async def scenario():
        for who, op in ops:
            inst, other = instances[who], instances["b" if who == "a" else "a"]
            before, other_before, other_history = inst.state.value, other.state, len(other.history)
            try:
                await apply(inst, op, f"tenant-{who}")
            except PluginError:
                if op in ALLOWED_BEFORE and before not in ALLOWED_BEFORE[op]:
                    assert inst.state.value == before  # a refused call changes nothing
                elif op == "restart" and inst._config is None:  # never initialized: nothing to restart
                    assert inst.state.value == before
                else:
                    assert inst.state.value in LEGAL_AFTER[op] | {"failed", "needs_credentials"}
            else:
                if op in ALLOWED_BEFORE:
                    assert before in ALLOWED_BEFORE[op]
                assert inst.state.value in LEGAL_AFTER[op]
            assert inst.state in PluginState
            assert other.state is other_before and len(other.history) == other_history

    asyncio.run(scenario())


def test_calls_out_of_order_are_refused_with_the_state_named():
    inst = LifecycleManager().instance("t", GoodPlugin)

    async def scenario():
        with pytest.raises(PluginError, match="cannot fetch while created"):
            async for _ in inst.fetch(DataRequest(tenant_id="t", source="items")):
                pass

    asyncio.run(scenario())


def test_a_hanging_plugin_times_out_and_fails():
    inst = LifecycleManager().instance("t", HangingPlugin)

    async def scenario():
        await inst.initialize(config("t", "hanging"))
        await inst.authenticate(PluginCredentials("t"))
        with pytest.raises(PluginError, match="timed out after 0.5s"):
            async for _ in inst.fetch(DataRequest(tenant_id="t", source="items")):
                pass

    asyncio.run(scenario())
    assert inst.state is PluginState.failed and "timed out" in inst.last_error


def test_restart_brings_a_failed_plugin_back():
    inst = LifecycleManager().instance("t", RaisingPlugin)

    async def scenario():
        await inst.initialize(config("t", "raising"))
        await inst.authenticate(PluginCredentials("t"))
        with pytest.raises(PluginError, match="ConnectionError: boom"):
            async for _ in inst.fetch(DataRequest(tenant_id="t", source="items")):
                pass
        assert inst.state is PluginState.failed
        await inst.restart()

    asyncio.run(scenario())
    assert inst.state is PluginState.authenticated
    assert [h[1] for h in inst.history][-3:] == ["shutdown", "initialize", "authenticate"]


def test_settings_are_checked_against_the_plugin_schema():
    from integrations.plugins.github import GitHubPlugin

    inst = LifecycleManager().instance("t", GitHubPlugin)
    bad = PluginConfiguration(tenant_id="t", plugin_name="github", settings={"per_page": 500})
    with pytest.raises(PluginError, match="settings.per_page"):
        asyncio.run(inst.initialize(bad))
    assert inst.state is PluginState.failed
