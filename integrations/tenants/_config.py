"""Tenant configuration files: `tenants/<tenant>.yaml`, everything per tenant in one place.

```yaml
tenant: demo
integrations:
  github:
    version: ">=0.1,<1"          # which plugin versions this tenant accepts
    settings: {repositories: [octo/checkout-api]}
    credentials: {token: github-token}   # role -> credential name in the credential store
    rate_limits: {requests_per_second: 5}
    sources:
      - {name: push, mode: webhook}
      - {name: pull_request, mode: poll}
```

Errors name the file and line (`tenants/demo.yaml:7:9: ...`). A tenant with no file runs its
bundled samples (every `data/samples/<tenant>/<plugin>/<source>.jsonl`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from integrations.errors import ConfigError
from integrations.located_yaml import LocatedDocument, load_located, located_validation_errors
from integrations.plugins._interface import PluginConfiguration, RateLimitConfig, SourceConfig

TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,62}$")
Role = Literal["admin", "analyst", "viewer"]


class IntegrationEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = ""
    enabled: bool = True
    settings: dict = Field(default_factory=dict)
    credentials: dict[str, str] = Field(default_factory=dict)
    feature_flags: dict[str, bool] = Field(default_factory=dict)
    rate_limits: RateLimitConfig = Field(default_factory=RateLimitConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    timeout_seconds: float = Field(default=300.0, gt=0)


class TenantConfig(BaseModel):
    """One tenant's whole configuration."""

    model_config = ConfigDict(extra="forbid")
    tenant: str
    description: str = ""
    roles: dict[str, Role] = Field(default_factory=dict, description="person -> role")
    service_aliases: dict[str, str] = Field(default_factory=dict, description="alias -> canonical service name")
    retention_days: int | None = Field(default=None, ge=1)
    integrations: dict[str, IntegrationEntry] = Field(default_factory=dict)

    @field_validator("tenant")
    @classmethod
    def _tenant_id(cls, value: str) -> str:
        if not TENANT_ID.match(value):
            raise ValueError("tenant ids are lower case letters, digits, '-' and '_' (at most 63)")
        return value

    def plugin_configurations(self) -> list[PluginConfiguration]:
        return [PluginConfiguration(tenant_id=self.tenant, plugin_name=name, version=e.version, enabled=e.enabled,
                                    settings=e.settings, credentials=e.credentials, feature_flags=e.feature_flags,
                                    rate_limits=e.rate_limits, sources=e.sources, timeout_seconds=e.timeout_seconds)
                for name, e in self.integrations.items()]


def tenants_dir() -> Path:
    """`INTEGRATIONS_TENANTS`, else `./tenants`."""
    return Path(os.environ.get("INTEGRATIONS_TENANTS", "tenants"))


def parse_tenant_config(text: str, file: str | None = None) -> tuple[TenantConfig, LocatedDocument]:
    doc = load_located(text, file, ConfigError)
    try:
        config = TenantConfig.model_validate(doc.data)
    except ValidationError as err:
        errors = located_validation_errors(err, doc, file, ConfigError)
        first = errors[0]
        if len(errors) > 1:
            first.hint = "; ".join(str(e) for e in errors[1:])
        raise first from None
    return config, doc


def load_tenant_config(tenant_id: str, root: Path | None = None) -> TenantConfig | None:
    """The tenant's configuration, or None when it has no file."""
    path = (root or tenants_dir()) / f"{tenant_id}.yaml"
    if not path.exists():
        return None
    config, _doc = parse_tenant_config(path.read_text(encoding="utf-8"), str(path))
    if config.tenant != tenant_id:
        raise ConfigError(f"file is named for tenant '{tenant_id}' but says tenant: {config.tenant}", file=str(path),
                          line=1, field="tenant")
    return config


def list_tenants(root: Path | None = None) -> list[str]:
    folder = root or tenants_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.exists() else []


def samples_config(tenant_id: str, samples: Path) -> TenantConfig:
    """A configuration that reads every bundled sample file of the tenant."""
    integrations: dict[str, IntegrationEntry] = {}
    for path in sorted((samples / tenant_id).glob("*/*.jsonl")):
        entry = integrations.setdefault(path.parent.name, IntegrationEntry())
        entry.sources.append(SourceConfig(name=path.stem, mode="samples"))
    return TenantConfig(tenant=tenant_id, integrations=integrations)
