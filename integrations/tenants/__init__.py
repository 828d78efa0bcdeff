"""Tenant configuration: one file per tenant under tenants/."""

from integrations.tenants._config import (
    IntegrationEntry,
    TenantConfig,
    list_tenants,
    load_tenant_config,
    parse_tenant_config,
    samples_config,
    tenants_dir,
)

__all__ = [
    "IntegrationEntry",
    "TenantConfig",
    "list_tenants",
    "load_tenant_config",
    "parse_tenant_config",
    "samples_config",
    "tenants_dir",
]
