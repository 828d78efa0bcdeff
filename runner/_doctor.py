"""`integrations doctor`: check every tenant's configuration, credentials and connectivity.

Nothing is written: the store is opened read-only, plugins are initialized and authenticated in
memory and shut down again, and no event, watermark or health figure is saved.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from integrations.errors import IntegrationsError
from integrations.mapping import validate_mapping
from integrations.paths import mapping_path
from integrations.plugins import LifecycleManager, PluginConfiguration, load_registry
from integrations.store import LATEST_VERSION, EventStore
from integrations.tenants import list_tenants, load_tenant_config, samples_config
from runner._config import RunnerConfig


@dataclass
class Check:
    tenant: str
    target: str
    check: str
    status: str  # ok | warn | error
    detail: str = ""


def _store_checks(config: RunnerConfig) -> list[Check]:
    store = EventStore(config.store, lock_timeout=5)
    if not store.path.exists():
        return [Check("*", str(config.store), "store", "warn", "not created yet: `integrations run` creates it")]
    try:
        with store.reader() as conn:
            version = conn.execute("SELECT max(version) FROM schema_version").fetchall()[0][0]
    except IntegrationsError as err:
        return [Check("*", str(config.store), "store", "error", str(err))]
    if version < LATEST_VERSION:
        return [Check("*", str(config.store), "store", "warn", f"schema {version}; the next run migrates it to {LATEST_VERSION}")]
    return [Check("*", str(config.store), "store", "ok", f"schema {version}")]


async def _connectivity(plugin_cls, config: PluginConfiguration, credentials) -> str:
    instance = LifecycleManager().instance(config.tenant_id, plugin_cls, min(config.timeout_seconds, 30))
    try:
        await instance.initialize(config)
        auth = await instance.authenticate(credentials)
        if not auth.ok:
            raise IntegrationsError(f"authentication refused: {auth.message}")
        status = await instance.health_check()
        if not status.healthy:
            raise IntegrationsError(f"unhealthy: {status.message}")
        return status.message or "reachable"
    finally:
        await instance.shutdown()


def diagnose(config: RunnerConfig, tenants: list[str] | None = None) -> list[Check]:
    """Every check for every tenant; never raises for a tenant's problem, reports it."""
    from runner._run import credential_resolver

    checks = _store_checks(config)
    registry = load_registry()
    for problem in registry.problems:
        checks.append(Check("*", problem.entry_point, "plugin", "warn", problem.message))
    names = tenants or sorted(set(list_tenants(config.tenants_dir)) | set(config.default_tenants)
                              | {t for job in config.jobs for t in job.tenants})
    resolve = credential_resolver(EventStore(config.store), registry)
    for tenant in names:
        try:
            tenant_config = load_tenant_config(tenant, config.tenants_dir)
        except IntegrationsError as err:
            checks.append(Check(tenant, str(config.tenants_dir / f"{tenant}.yaml"), "tenant file", "error", str(err)))
            continue
        if tenant_config is None:
            tenant_config = samples_config(tenant, config.samples)
            checks.append(Check(tenant, "-", "tenant file", "warn", "no tenant file: runs its bundled samples"))
        else:
            checks.append(Check(tenant, f"{config.tenants_dir}/{tenant}.yaml", "tenant file", "ok"))
        for plugin_config in tenant_config.plugin_configurations():
            target = plugin_config.plugin_name
            if not plugin_config.enabled:
                checks.append(Check(tenant, target, "plugin", "ok", "disabled"))
                continue
            try:
                plugin_cls = registry.resolve(plugin_config.plugin_name, plugin_config.version)
                plugin_cls.settings_model.model_validate(plugin_config.settings)
            except IntegrationsError as err:
                checks.append(Check(tenant, target, "plugin", "error", str(err)))
                continue
            except Exception as err:  # pydantic ValidationError
                checks.append(Check(tenant, target, "settings", "error", str(err).splitlines()[0]))
                continue
            checks.append(Check(tenant, target, "plugin", "ok", f"{plugin_cls.name} {plugin_cls.version}"))
            for source in plugin_config.sources:
                where = f"{target}/{source.name}"
                errors = validate_mapping(mapping_path(target, source.name, config.mappings)) \
                    if mapping_path(target, source.name, config.mappings).exists() else None
                if errors is None:
                    checks.append(Check(tenant, where, "mapping", "error",
                                        f"no mapping file {mapping_path(target, source.name, config.mappings)}"))
                elif errors:
                    checks.append(Check(tenant, where, "mapping", "error", f"{len(errors)} error(s): {errors[0]}"))
                else:
                    checks.append(Check(tenant, where, "mapping", "ok"))
                if source.mode == "samples":
                    path = config.samples / tenant / target / f"{source.name}.jsonl"
                    checks.append(Check(tenant, where, "samples", "ok" if path.exists() else "error",
                                        str(path) if path.exists() else f"missing {path}"))
            if any(s.mode == "poll" for s in plugin_config.sources):
                try:
                    credentials = resolve(plugin_config)
                    checks.append(Check(tenant, target, "credentials", "ok", ", ".join(sorted(credentials.values)) or "none needed"))
                    detail = asyncio.run(_connectivity(plugin_cls, plugin_config, credentials))
                    checks.append(Check(tenant, target, "connectivity", "ok", detail))
                except IntegrationsError as err:
                    checks.append(Check(tenant, target, "credentials/connectivity", "error", str(err)))
    return checks
