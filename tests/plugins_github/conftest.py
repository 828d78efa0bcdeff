"""Fixtures for the GitHub plugin tests: the fake GitHub API (one server per session), keys, a run.

- `github`: the fake API with fresh state for the test (`github.state`, `github.api_url`, which is
  served under /api/v3 like GitHub Enterprise Server).
- `app_key`: the GitHub App's RSA key pair, made for this test run.
- `poll_run`: runs one tenant's GitHub integration through the real run loop (`run_tenant`) into a
  DuckDB store in tmp, with a HealthMonitor on a FakeClock (back-off and rate-limit waits take no
  time and are recorded in `clock.sleeps`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from integrations.credentials import GitHubPatCredential
from integrations.mapping import PythonEngine
from integrations.health import FakeClock, HealthMonitor, RetryPolicy
from integrations.plugins import (
    LifecycleManager,
    PluginConfiguration,
    PluginCredentials,
    PluginRegistry,
    RunContext,
    SourceConfig,
    run_tenant,
)
from integrations.plugins.github import GitHubPlugin
from integrations.store import EventStore
from tests.credentials.conftest import make_rsa_key, start_server
from tests.plugins_github.fake_github import API_PREFIX, FakeGitHubState, build_app

PAT = "ghp_" + "T3stT0ken" * 4


@dataclass
class FakeGitHub:
    url: str
    box: list[FakeGitHubState]

    @property
    def state(self) -> FakeGitHubState:
        return self.box[0]

    @property
    def api_url(self) -> str:
        return self.url + API_PREFIX


@pytest.fixture(scope="session")
def _fake_github_session():
    box = [FakeGitHubState()]
    server, thread, url = start_server(build_app(box))
    try:
        yield FakeGitHub(url, box)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def github(_fake_github_session: FakeGitHub) -> FakeGitHub:
    """The fake API with fresh state: it accepts the personal access token PAT."""
    _fake_github_session.box[0] = FakeGitHubState(tokens={PAT})
    return _fake_github_session


@pytest.fixture(scope="session")
def app_key():
    return make_rsa_key()


@dataclass
class PollRun:
    """One tenant's GitHub integration, run as often as a test likes against one store."""

    store: EventStore
    clock: FakeClock
    health: HealthMonitor
    registry: PluginRegistry
    manager: LifecycleManager = field(default_factory=LifecycleManager)
    credentials: dict[str, Any] = field(default_factory=lambda: {"token": GitHubPatCredential(token=PAT)})

    def config(self, settings: dict, sources: list[str], tenant: str = "acme") -> PluginConfiguration:
        return PluginConfiguration(tenant_id=tenant, plugin_name="github", settings=settings,
                                   credentials={role: role for role in self.credentials},
                                   sources=[SourceConfig(name=s, mode="poll") for s in sources])

    def __call__(self, settings: dict, sources: list[str], tenant: str = "acme") -> dict[str, Any]:
        ctx = RunContext(store=self.store, registry=self.registry, manager=self.manager, health=self.health,
                         run_id=self.store.new_run_id(), engine=PythonEngine(),  # pages are small: no SQL compile
                         credentials=lambda config: PluginCredentials(config.tenant_id, dict(self.credentials)))

        async def go():
            try:
                return await run_tenant(ctx, [self.config(settings, sources, tenant)])
            finally:
                await self.manager.shutdown_all()  # as the runner does at the end of every run

        return {r.source: r for r in asyncio.run(go())}

    def close(self) -> None:
        asyncio.run(self.manager.shutdown_all())


@pytest.fixture
def poll_run(tmp_path: Path, github: FakeGitHub) -> Callable[..., PollRun]:
    """Make a PollRun (optionally with a plugin class, e.g. one with a test clock for App tokens)."""
    made: list[PollRun] = []

    def make(plugin_cls: type[GitHubPlugin] = GitHubPlugin, retry: RetryPolicy | None = None) -> PollRun:
        clock = FakeClock()
        github.state.wall = clock.wall
        registry = PluginRegistry()
        registry.register(plugin_cls)
        health = HealthMonitor(clock=clock, retry=retry)
        run = PollRun(store=EventStore(tmp_path / f"store{len(made)}.duckdb"), clock=clock, health=health,
                      registry=registry)
        made.append(run)
        return run

    yield make
    for run in made:
        run.close()
