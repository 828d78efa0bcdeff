"""`integrations run`: for each tenant, run its configured integrations through the plugin loop.

A tenant's configuration comes from `tenants/<tenant>.yaml`; a tenant without one runs its bundled
sample files. A source that fails is reported and the others go on; the run fails only when every
source failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from integrations.health import HealthMonitor
from integrations.mapping import get_engine
from integrations.paths import mappings_dir, samples_dir
from integrations.pipeline import SourceReport
from integrations.credentials import CredentialManager, EnvironmentMasterKeys
from integrations.plugins import (
    LifecycleManager,
    PluginConfiguration,
    PluginCredentials,
    PluginRegistry,
    RunContext,
    load_registry,
    run_tenant,
)
from integrations.store import EventStore
from integrations.tenants import load_tenant_config, samples_config, tenants_dir
from integrations.enrichment import enrich
from runner._config import RunnerConfig, enrichment_rules
from runner._executors import make_executor
from runner._partitions import PARTITION_MODES, configs_for_modes, run_partitions
from runner._schedule import stop_requested
from runner._sinks import SinkReport, build_sinks, deliver_pending

log = logging.getLogger("integrations.runner")


@dataclass
class RunOptions:
    store_path: Path
    tenants: list[str] = field(default_factory=lambda: ["demo"])
    samples: Path = field(default_factory=samples_dir)
    mappings: Path = field(default_factory=mappings_dir)
    tenants_dir: Path = field(default_factory=tenants_dir)
    engine: str = "auto"
    registry: PluginRegistry | None = None  # default: the plugins installed in this environment
    health: HealthMonitor | None = None
    inbox: Path | None = None  # default: data/inbox/github.sqlite (INTEGRATIONS_WEBHOOK_INBOX)
    since: datetime | None = None
    until: datetime | None = None
    progress: Callable[[SourceReport], None] | None = None  # called as each source finishes
    config: RunnerConfig = field(default_factory=RunnerConfig)
    executor: str | None = None      # None: runner.yaml's executor.kind; "loop": no partitions
    scheduler: str | None = None     # Dask scheduler address (executor "dask")
    workers: int | None = None
    window: timedelta | None = None  # cut since/until into windows (poll sources)

    @classmethod
    def from_config(cls, config: RunnerConfig, **overrides: Any) -> "RunOptions":
        """Options from runner.yaml; explicit values (command-line options) win."""
        values: dict[str, Any] = {"store_path": config.store, "tenants": list(config.default_tenants),
                                  "samples": config.samples, "mappings": config.mappings,
                                  "tenants_dir": config.tenants_dir, "engine": config.engine, "config": config}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class RunReport:
    run_id: str
    sources: list[SourceReport] = field(default_factory=list)
    sinks: list[SinkReport] = field(default_factory=list)
    duration_s: float = 0.0
    summaries: list[str] = field(default_factory=list)  # enrichment and sinks, one line each

    @property
    def all_failed(self) -> bool:
        return bool(self.sources) and all(s.status == "failed" for s in self.sources)


def _tenant_config(tenant: str, options: RunOptions):
    return load_tenant_config(tenant, options.tenants_dir) or samples_config(tenant, options.samples)


def _after_tenant(ctx: RunContext, options: RunOptions, tenant: str, config, sinks, report: "RunReport") -> None:
    """Enrich the tenant's new events, then hand them to the sinks (enriched, in order)."""
    rules = enrichment_rules(options.config)
    if rules:
        enriched = enrich(ctx.store, tenant, rules, run_id=ctx.run_id, aliases=config.service_aliases)
        report.summaries.append(f"enrichment: {enriched.summary()}")
    for sink in deliver_pending(ctx.store, sinks, tenant, health=ctx.health):
        report.sinks.append(sink)
        if sink.type != "duckdb":
            report.summaries.append(f"sink {sink.sink} ({tenant}): {sink.status}, {sink.delivered} delivered, "
                                    f"{sink.pending} pending" + (f": {sink.error}" if sink.error else ""))


async def _run_all(ctx: RunContext, options: RunOptions, sinks, report: "RunReport") -> list[SourceReport]:
    reports: list[SourceReport] = []
    try:
        for tenant in options.tenants:
            if stop_requested():
                break
            config = _tenant_config(tenant, options)
            reports.extend(await run_tenant(ctx, config.plugin_configurations()))
            await _reconcile_webhooks(ctx, tenant)
            _after_tenant(ctx, options, tenant, config, sinks, report)
    finally:
        await ctx.manager.shutdown_all()
    return reports


def _run_partitioned(ctx: RunContext, options: RunOptions, kind: str, sinks, report: "RunReport") -> list[SourceReport]:
    """Sample and poll sources as partitions on an executor; webhook sources through the loop, here."""
    section = options.config.executor
    configs = {tenant: _tenant_config(tenant, options) for tenant in options.tenants}
    window = options.window or (timedelta(hours=section.window_hours) if section.window_hours else None)
    with make_executor(kind, workers=options.workers or section.workers,
                       scheduler=options.scheduler or section.scheduler) as executor:
        partitioned = [c for config in configs.values()
                       for c in configs_for_modes(config.plugin_configurations(), PARTITION_MODES)]
        reports = run_partitions(ctx.store, partitioned, executor, run_id=ctx.run_id, samples=options.samples,
                                 mappings=options.mappings, engine=options.engine, registry=ctx.registry,
                                 credentials=ctx.credentials, health=ctx.health, since=options.since,
                                 until=options.until, window=window, progress=options.progress)

    async def webhooks() -> list[SourceReport]:
        out: list[SourceReport] = []
        try:
            for config in configs.values():
                hooks = configs_for_modes(config.plugin_configurations(), ("webhook",))
                if hooks and not stop_requested():
                    out.extend(await run_tenant(ctx, hooks))
        finally:
            await ctx.manager.shutdown_all()
        return out

    reports.extend(asyncio.run(webhooks()))
    ctx.health.save(ctx.store)
    for tenant, config in configs.items():
        if not stop_requested():
            _after_tenant(ctx, options, tenant, config, sinks, report)
    return reports


async def _reconcile_webhooks(ctx: RunContext, tenant: str) -> None:
    """GitHub does not redeliver failed webhook deliveries: ask it to, for App installations."""
    instance = ctx.manager.instances.get((tenant, "github"))
    if instance is None or instance.state.value != "authenticated":
        return
    if getattr(instance.plugin, "app_provider", None) is None:
        return
    try:
        outcome = await instance.plugin.reconcile()
        log.info("webhook deliveries reconciled", extra={"tenant": tenant, **outcome.as_dict()})
    except Exception as err:  # reconciliation is best effort: polling fills any gap anyway
        log.warning("webhook reconciliation failed for tenant %s: %s", tenant, err)


def run(options: RunOptions) -> RunReport:
    """One run over every tenant's integrations."""
    store = EventStore(options.store_path)
    store.initialize()
    report = RunReport(run_id=store.new_run_id())
    ctx = _context(store, options, report.run_id)
    started = time.perf_counter()
    log.info("run started", extra={"run_id": report.run_id, "tenants": options.tenants})
    sinks = build_sinks(options.config.sinks)
    kind = options.executor or options.config.executor.kind
    try:
        if kind == "loop":
            report.sources = asyncio.run(_run_all(ctx, options, sinks, report))
        else:
            report.sources = _run_partitioned(ctx, options, kind, sinks, report)
    finally:
        for sink in sinks:
            sink.close()
    report.duration_s = time.perf_counter() - started
    log.info("run finished", extra={"run_id": report.run_id, "duration_s": round(report.duration_s, 3),
                                    "sources": len(report.sources),
                                    "failed": sum(1 for s in report.sources if s.status == "failed")})
    return report


def _context(store: EventStore, options: RunOptions, run_id: str) -> RunContext:
    health = options.health
    if health is None:
        health = HealthMonitor()
        health.restore(store)  # counts and last success carry over from earlier runs
    registry = options.registry or load_registry()
    return RunContext(store=store, registry=registry, manager=LifecycleManager(),
                      engine=get_engine(options.engine), samples=options.samples, mappings=options.mappings,
                      run_id=run_id, health=health, credentials=credential_resolver(store, registry),
                      inbox=_lazy_inbox_reader(options.inbox), since=options.since, until=options.until,
                      progress=options.progress, should_stop=stop_requested)


def credential_resolver(store: EventStore, registry: PluginRegistry):
    """Decrypt the credentials a tenant's configuration names, by role, checked against what the plugin accepts."""
    manager: list[CredentialManager] = []

    def resolve(config: PluginConfiguration) -> PluginCredentials:
        if not config.credentials:
            return PluginCredentials(config.tenant_id)
        if not manager:
            manager.append(CredentialManager(store, EnvironmentMasterKeys()))
        accepted = registry.resolve(config.plugin_name, config.version).required_credentials or None
        values = {role: manager[0].get(config.tenant_id, config.plugin_name, name, accepted=accepted)
                  for role, name in config.credentials.items()}
        return PluginCredentials(config.tenant_id, values)

    return resolve


def _lazy_inbox_reader(path: Path | None):
    """Each plugin's webhook inbox is opened only when a tenant has a webhook source of that plugin.

    GitHub's inbox is `path` (default `data/inbox/github.sqlite`); another plugin's is
    `<plugin>.sqlite` beside it, where `integrations webhooks serve` files that plugin's deliveries.
    Opening one prunes its drained deliveries older than a week, so the file does not grow forever.
    """
    readers: dict[str, Any] = {}

    def read(tenant_id: str, plugin: str, source: str):
        if plugin not in readers:
            from integrations.webhooks import DEFAULT_KEEP_DRAINED_DAYS, Inbox, inbox_path_for, inbox_reader

            inbox = Inbox(inbox_path_for(plugin, path))
            pruned = inbox.prune(datetime.now(timezone.utc) - timedelta(days=DEFAULT_KEEP_DRAINED_DAYS))
            if pruned:
                log.info("webhook inbox %s: %d drained deliveries older than %g days pruned", inbox.path, pruned,
                         DEFAULT_KEEP_DRAINED_DAYS)
            readers[plugin] = inbox_reader(inbox, plugin=plugin)
        return readers[plugin](tenant_id, plugin, source)

    return read


def replay_fetch_dead_letters(store: EventStore, tenant_id: str, rows: list[dict], options: RunOptions | None = None) -> list[str]:
    """Redo requests that failed to fetch: run their sources again from the stored watermarks.

    The watermark did not move when the fetch failed, so running the source again re-issues exactly
    the work that was lost; the dead letters of the sources that now succeed are resolved.
    """
    options = options or RunOptions(store_path=store.path, tenants=[tenant_id])
    config = load_tenant_config(tenant_id, options.tenants_dir)
    if config is None:
        return []
    wanted = {(row["plugin"], row["source"]) for row in rows}
    plugin_configs = []
    for plugin_config in config.plugin_configurations():
        sources = [s for s in plugin_config.sources if (plugin_config.plugin_name, s.name) in wanted]
        if sources:
            plugin_configs.append(plugin_config.model_copy(update={"sources": sources}))
    ctx = _context(store, options, store.new_run_id())

    async def go():
        try:
            return await run_tenant(ctx, plugin_configs)
        finally:
            await ctx.manager.shutdown_all()

    reports = asyncio.run(go())
    ok = {(r.plugin, r.source) for r in reports if r.status in ("ok", "partial")}
    return [row["dead_letter_id"] for row in rows if (row["plugin"], row["source"]) in ok]
