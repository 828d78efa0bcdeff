"""One plugin instance per (tenant, plugin), moved through a small state machine.

    created ──initialize──> initialized ──authenticate──> authenticated ──fetch──> authenticated
       │                        │                              │
       └──────── shutdown ──────┴────────── shutdown ──────────┴──> stopped ──initialize──> ...
    any call that raises or times out ──> failed (restart = shutdown + initialize [+ authenticate])
    authenticate refused ──> needs_credentials

Every call runs under a time-out, so a plugin that hangs is stopped and reported like one that
raises; the other instances are never touched. States are observable (`state`, `history`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from integrations.errors import PluginError
from integrations.plugins._interface import (
    AuthResult,
    DataRequest,
    HealthStatus,
    IntegrationPlugin,
    Page,
    PluginConfiguration,
    PluginCredentials,
)


class PluginState(str, Enum):
    created = "created"
    initialized = "initialized"
    authenticated = "authenticated"
    fetching = "fetching"
    needs_credentials = "needs_credentials"
    stopped = "stopped"
    failed = "failed"


_ALLOWED: dict[str, set[PluginState]] = {
    "initialize": {PluginState.created, PluginState.stopped, PluginState.failed},
    "authenticate": {PluginState.initialized, PluginState.authenticated, PluginState.needs_credentials},
    "fetch": {PluginState.authenticated},
    "health_check": {PluginState.initialized, PluginState.authenticated, PluginState.needs_credentials},
}


@dataclass
class PluginInstance:
    """A plugin object for one tenant, with its state and what happened to it."""

    tenant_id: str
    plugin: IntegrationPlugin
    timeout: float = 300.0
    state: PluginState = PluginState.created
    last_error: str | None = None
    history: list[tuple[float, str, str]] = field(default_factory=list)  # (time, operation, new state)
    _config: PluginConfiguration | None = None
    _credentials: PluginCredentials | None = None

    @property
    def name(self) -> str:
        return self.plugin.name

    def _check(self, operation: str) -> None:
        if self.state not in _ALLOWED[operation]:
            allowed = ", ".join(sorted(s.value for s in _ALLOWED[operation]))
            raise PluginError(f"plugin '{self.name}' of tenant '{self.tenant_id}' cannot {operation} while "
                              f"{self.state.value} (only when {allowed})")

    def _move(self, operation: str, state: PluginState, error: str | None = None) -> None:
        self.state = state
        self.last_error = error
        self.history.append((time.time(), operation, state.value))

    async def _call(self, operation: str, awaitable: Any) -> Any:
        try:
            return await asyncio.wait_for(awaitable, timeout=self.timeout)
        except StopAsyncIteration:
            raise
        except asyncio.TimeoutError:
            message = f"plugin '{self.name}' {operation}() timed out after {self.timeout:g}s"
            self._move(operation, PluginState.failed, message)
            raise PluginError(message) from None
        except PluginError as err:
            self._move(operation, PluginState.failed, str(err))
            raise
        except Exception as err:
            message = f"plugin '{self.name}' {operation}() raised {type(err).__name__}: {err}"
            self._move(operation, PluginState.failed, message)
            raise PluginError(message) from err

    async def initialize(self, config: PluginConfiguration) -> None:
        self._check("initialize")
        settings_model = self.plugin.settings_model
        from pydantic import ValidationError

        try:
            self.plugin.settings = settings_model.model_validate(config.settings)
        except ValidationError as err:
            first = err.errors()[0]
            message = f"settings.{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
            self._move("initialize", PluginState.failed, message)
            raise PluginError(f"plugin '{self.name}' of tenant '{self.tenant_id}': {message}",
                              field="settings") from None
        self.plugin.config = config
        self._config = config
        self.timeout = config.timeout_seconds
        await self._call("initialize", self.plugin.initialize(config))
        self._move("initialize", PluginState.initialized)

    async def authenticate(self, credentials: PluginCredentials) -> AuthResult:
        self._check("authenticate")
        result = await self._call("authenticate", self.plugin.authenticate(credentials))
        if not isinstance(result, AuthResult):
            self._move("authenticate", PluginState.failed, "authenticate() returned malformed data")
            raise PluginError(f"plugin '{self.name}' authenticate() returned {type(result).__name__}, not AuthResult")
        self._credentials = credentials
        if result.ok:
            self._move("authenticate", PluginState.authenticated)
        else:
            self._move("authenticate", PluginState.needs_credentials, result.message or "credentials refused")
        return result

    async def fetch(self, request: DataRequest) -> AsyncIterator[Page]:
        """Pages from the plugin, each awaited under the time-out and checked for shape."""
        self._check("fetch")
        self._move("fetch", PluginState.fetching)
        iterator = self.plugin.fetch_data(request)
        if not hasattr(iterator, "__anext__"):
            self._move("fetch", PluginState.failed, "fetch_data() did not return an async iterator")
            raise PluginError(f"plugin '{self.name}' fetch_data() returned {type(iterator).__name__}, "
                              "not an async iterator of pages")
        while True:
            try:
                page = await self._call("fetch_data", iterator.__anext__())
            except StopAsyncIteration:
                break
            if not isinstance(page, Page) or not isinstance(page.records, list):
                message = f"plugin '{self.name}' fetch_data() yielded malformed data ({type(page).__name__})"
                self._move("fetch", PluginState.failed, message)
                raise PluginError(message, hint="fetch_data must yield Page(source, records=[...], watermarks={...})")
            yield page
        self._move("fetch", PluginState.authenticated)

    async def health_check(self) -> HealthStatus:
        self._check("health_check")
        result = await self._call("health_check", self.plugin.health_check())
        if not isinstance(result, HealthStatus):
            raise PluginError(f"plugin '{self.name}' health_check() returned malformed data")
        return result

    async def shutdown(self) -> None:
        """Always ends in `stopped`; a plugin that fails to shut down is recorded, not re-raised."""
        if self.state in (PluginState.created, PluginState.stopped):
            self._move("shutdown", PluginState.stopped)
            return
        try:
            await asyncio.wait_for(self.plugin.shutdown(), timeout=self.timeout)
            self._move("shutdown", PluginState.stopped)
        except Exception as err:  # includes time-outs
            self._move("shutdown", PluginState.stopped, f"shutdown() raised {type(err).__name__}: {err}")

    async def restart(self) -> None:
        """Shut down, then initialize (and authenticate again with the last credentials)."""
        if self._config is None:
            raise PluginError(f"plugin '{self.name}' was never initialized; nothing to restart")
        await self.shutdown()
        await self.initialize(self._config)
        if self._credentials is not None:
            await self.authenticate(self._credentials)


class LifecycleManager:
    """All plugin instances of a process, one per (tenant, plugin)."""

    def __init__(self) -> None:
        self.instances: dict[tuple[str, str], PluginInstance] = {}

    def instance(self, tenant_id: str, plugin_cls: type[IntegrationPlugin], timeout: float = 300.0) -> PluginInstance:
        key = (tenant_id, plugin_cls.name)
        existing = self.instances.get(key)
        if existing is None or type(existing.plugin) is not plugin_cls:
            existing = PluginInstance(tenant_id=tenant_id, plugin=plugin_cls(), timeout=timeout)
            self.instances[key] = existing
        return existing

    def states(self) -> dict[tuple[str, str], str]:
        return {key: inst.state.value for key, inst in self.instances.items()}

    async def shutdown_all(self) -> None:
        for inst in self.instances.values():
            await inst.shutdown()
