"""The plugin contract: the seed design's IntegrationPlugin, declared once.

Every plugin is a class that subclasses `IntegrationPlugin`, sets the class attributes and
implements the abstract methods. The registry checks a class against this contract before it is
used and names the plugin and the missing member when it falls short.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from integrations.health import RateLimitConfig
from integrations.mapping import CompiledMapping, MapResult


class PluginSettings(BaseModel):
    """Base of every plugin's settings model; its JSON Schema is the registry's configuration_schema."""

    model_config = ConfigDict(extra="forbid")


SourceMode = Literal["samples", "poll", "webhook"]


class SourceConfig(BaseModel):
    """One source of an integration and where its records come from."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    mode: SourceMode = "samples"
    enabled: bool = True


class PluginConfiguration(BaseModel):
    """The seed's PluginConfiguration: one tenant's configuration of one plugin."""

    model_config = ConfigDict(extra="forbid")
    tenant_id: str
    plugin_name: str
    version: str = Field(default="", description="PEP 440 version specifier, e.g. '>=0.1,<1'")
    enabled: bool = True
    settings: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, str] = Field(default_factory=dict, description="role -> credential name")
    feature_flags: dict[str, bool] = Field(default_factory=dict)
    rate_limits: RateLimitConfig = Field(default_factory=RateLimitConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    timeout_seconds: float = Field(default=300.0, gt=0)


@dataclass
class PluginCredentials:
    """Decrypted credentials handed to `authenticate`, by role; values are pydantic secret models."""

    tenant_id: str
    values: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # never show secrets
        return f"PluginCredentials(tenant_id={self.tenant_id!r}, roles={sorted(self.values)!r})"


@dataclass
class AuthResult:
    ok: bool
    message: str = ""
    expires_at: datetime | None = None
    needs_credentials: bool = False


@dataclass
class HealthStatus:
    healthy: bool
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataRequest:
    """What to fetch: a tenant's source, from its watermarks, up to an optional time."""

    tenant_id: str
    source: str
    watermarks: dict[str, str] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None


@dataclass
class Page:
    """One page of records from a source, and the watermarks that are true once it is stored."""

    source: str
    records: list[Any]
    watermarks: dict[str, str] = field(default_factory=dict)


@dataclass
class ExternalData:
    """Records of one source handed to `transform_data`."""

    tenant_id: str
    source: str
    records: list[Any]


class IntegrationPlugin(abc.ABC):
    """The standard interface every integration implements (seed design: Plugin Interface)."""

    name: ClassVar[str]
    """Unique plugin name, also the mapping folder: mappings/<name>/."""
    version: ClassVar[str]
    """The plugin's PEP 440 version."""
    supported_events: ClassVar[tuple[str, ...]]
    """Event kinds it produces (commit, alarm, ...)."""
    description: ClassVar[str] = ""
    author: ClassVar[str] = ""
    sources: ClassVar[tuple[str, ...]] = ()
    """Source names it can fetch or receive (push, metric_data, ...)."""
    required_credentials: ClassVar[tuple[str, ...]] = ()
    """Credential types it accepts (github_pat, aws_access_keys, ...)."""
    dependencies: ClassVar[tuple[str, ...]] = ()
    """Requirements on other plugins or distributions, e.g. 'boto3>=1.34'."""
    status: ClassVar[Literal["active", "inactive", "deprecated"]] = "active"
    settings_model: ClassVar[type[PluginSettings]] = PluginSettings
    """Pydantic model of the tenant settings this plugin takes."""

    def __init__(self) -> None:
        self.config: PluginConfiguration | None = None
        self.settings: PluginSettings | None = None
        self.mappings: dict[str, CompiledMapping] = {}
        self.engine = None
        # Set by the framework: wrap every call to the service in `await self.guard.acall(fn, ...)` to get
        # the breaker, rate limit, retries with back-off and health figures of this tenant's integration.
        self.guard = None

    @abc.abstractmethod
    async def initialize(self, config: PluginConfiguration) -> None:
        """Take the tenant's configuration (settings already validated) and prepare clients."""

    @abc.abstractmethod
    async def authenticate(self, credentials: PluginCredentials) -> AuthResult:
        """Check the credentials against the service; never log or echo them."""

    @abc.abstractmethod
    def fetch_data(self, request: DataRequest) -> AsyncIterator[Page]:
        """Yield pages of records (an async generator, so large pulls stream)."""

    async def transform_data(self, data: ExternalData) -> MapResult:
        """The events of the records (a push fans out into many) and their rejections, through the mappings."""
        from integrations.mapping import get_engine

        mapping = self.mappings.get(data.source)
        if mapping is None:
            from integrations.errors import PluginError

            raise PluginError(f"plugin '{self.name}' has no mapping for source '{data.source}'",
                              hint=f"add mappings/{self.name}/{data.source}.yaml")
        engine = self.engine or get_engine()
        return engine.map(mapping, data.records, tenant_id=data.tenant_id)

    @abc.abstractmethod
    async def health_check(self) -> HealthStatus:
        """A cheap call that tells whether the service answers with these credentials."""

    @abc.abstractmethod
    async def shutdown(self) -> None:
        """Close clients and release what initialize acquired."""


REQUIRED_ATTRIBUTES = ("name", "version", "supported_events")
REQUIRED_METHODS = ("initialize", "authenticate", "fetch_data", "transform_data", "health_check", "shutdown")
