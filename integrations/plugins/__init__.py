"""The plugin framework: the interface, the registry found through entry points, lifecycles, the run loop."""

from integrations.plugins._interface import (
    AuthResult,
    DataRequest,
    ExternalData,
    HealthStatus,
    IntegrationPlugin,
    Page,
    PluginConfiguration,
    PluginCredentials,
    PluginSettings,
    RateLimitConfig,
    SourceConfig,
)
from integrations.plugins._lifecycle import LifecycleManager, PluginInstance, PluginState
from integrations.plugins._loop import RunContext, run_integration, run_tenant
from integrations.plugins._registry import (
    ENTRY_POINT_GROUP,
    LoadProblem,
    PluginRegistry,
    PluginRegistryEntry,
    check_plugin_class,
    load_registry,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "AuthResult",
    "DataRequest",
    "ExternalData",
    "HealthStatus",
    "IntegrationPlugin",
    "LifecycleManager",
    "LoadProblem",
    "Page",
    "PluginConfiguration",
    "PluginCredentials",
    "PluginInstance",
    "PluginRegistry",
    "PluginRegistryEntry",
    "PluginSettings",
    "PluginState",
    "RateLimitConfig",
    "RunContext",
    "SourceConfig",
    "check_plugin_class",
    "load_registry",
    "run_integration",
    "run_tenant",
]
