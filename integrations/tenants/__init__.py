"""Tenant configuration: one file per tenant under tenants/."""

from integrations.tenants._admin import PERMISSIONS, PermissionDenied, TenantAdmin, current_actor, redact, require
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
    "PERMISSIONS",
    "PermissionDenied",
    "TenantAdmin",
    "current_actor",
    "redact",
    "require",
    "IntegrationEntry",
    "TenantConfig",
    "list_tenants",
    "load_tenant_config",
    "parse_tenant_config",
    "samples_config",
    "tenants_dir",
]
