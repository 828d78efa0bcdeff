"""The run loop: for a tenant's configured integrations, fetch pages, map them, store them.

Each page is stored in one transaction together with the watermarks it makes true, so a failed
run never moves a cursor. Integrations of a tenant run side by side; one that raises, hangs past
its time-out or returns garbage is reported with its error and the others complete.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from integrations.errors import IntegrationsError, PluginError
from integrations.health import CircuitOpenError, HealthMonitor, RateLimitConfig, RetriesExhaustedError, dead_letter_item
from integrations.mapping import MappingEngine, get_engine, load_mapping
from integrations.paths import mapping_path
from integrations.pipeline import SourceReport, ingest, store_result
from integrations.plugins._interface import DataRequest, ExternalData, PluginConfiguration, PluginCredentials, SourceConfig
from integrations.plugins._lifecycle import LifecycleManager, PluginInstance
from integrations.plugins._registry import PluginRegistry
from integrations.records import iter_records
from integrations.store import EventStore, utcnow

# Records per transaction for sample and webhook sources (INTEGRATIONS_BATCH_SIZE to change).
BATCH_SIZE = int(os.environ.get("INTEGRATIONS_BATCH_SIZE", "5000"))
CredentialResolver = Callable[[PluginConfiguration], PluginCredentials]
# (tenant, plugin, source) -> list of (record, ack callback); set by the webhook inbox.
InboxReader = Callable[[str, str, str], tuple[list[Any], Callable[[], None]]]


@dataclass
class RunContext:
    """What a run needs, handed to every integration."""

    store: EventStore
    registry: PluginRegistry
    manager: LifecycleManager = field(default_factory=LifecycleManager)
    engine: MappingEngine = field(default_factory=get_engine)
    samples: Path = Path("data/samples")
    mappings: Path = Path("mappings")
    run_id: str = ""
    credentials: CredentialResolver | None = None
    inbox: InboxReader | None = None
    health: HealthMonitor = field(default_factory=HealthMonitor)
    since: Any = None
    until: Any = None
    progress: Callable[[SourceReport], None] | None = None
    should_stop: Callable[[], bool] | None = None  # checked between batches (the scheduler's SIGTERM)


def _batches(items, size: int):
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _source_report(ctx: RunContext, config: PluginConfiguration, source: SourceConfig) -> SourceReport:
    return SourceReport(tenant_id=config.tenant_id, plugin=config.plugin_name, source=source.name,
                        extra={"mode": source.mode})


async def _run_source(ctx: RunContext, instance: PluginInstance, config: PluginConfiguration,
                      source: SourceConfig) -> SourceReport:
    report = _source_report(ctx, config, source)
    tenant, plugin = config.tenant_id, config.plugin_name
    mapping = load_mapping(mapping_path(plugin, source.name, ctx.mappings))
    instance.plugin.mappings[source.name] = mapping
    instance.plugin.engine = ctx.engine
    if source.mode == "samples":
        path = ctx.samples / tenant / plugin / f"{source.name}.jsonl"
        if not path.exists():
            raise PluginError(f"no sample file for source '{source.name}'", file=str(path))
        for batch in _batches(iter_records(path), BATCH_SIZE):
            if ctx.should_stop is not None and ctx.should_stop():
                break
            ingest(ctx.store, tenant_id=tenant, mapping=mapping, engine=ctx.engine, items=batch, run_id=ctx.run_id,
                   report=report)
    elif source.mode == "webhook":
        if ctx.inbox is None:
            raise PluginError(f"source '{source.name}' reads webhooks but no inbox is configured")
        records, acknowledge = ctx.inbox(tenant, plugin, source.name)
        for batch in _batches(records, BATCH_SIZE):
            result = await instance.plugin.transform_data(ExternalData(tenant, source.name, batch))
            store_result(ctx.store, tenant_id=tenant, plugin=plugin, source=source.name, result=result,
                         precedence=mapping.spec.precedence, raw_records=batch, run_id=ctx.run_id, report=report)
        acknowledge()  # only after the events are committed: at least once
    else:  # poll
        request = DataRequest(tenant_id=tenant, source=source.name,
                              watermarks=ctx.store.get_watermarks(tenant, plugin, source.name),
                              since=ctx.since, until=ctx.until)
        try:
            async for page in instance.fetch(request):
                if ctx.should_stop is not None and ctx.should_stop():
                    break  # not stored, its watermark not moved: the next run fetches it again
                result = await instance.plugin.transform_data(ExternalData(tenant, source.name, page.records))
                store_result(ctx.store, tenant_id=tenant, plugin=plugin, source=source.name, result=result,
                             precedence=mapping.spec.precedence, raw_records=page.records, run_id=ctx.run_id,
                             watermarks=page.watermarks, report=report)
                request.watermarks.update(page.watermarks)
        except PluginError as err:
            cause = err.__cause__
            if isinstance(cause, (RetriesExhaustedError, CircuitOpenError)):
                # The work outlasted its retries: keep the request so a later run or `dlq replay` redoes it.
                described = {"tenant_id": tenant, "plugin": plugin, "source": source.name,
                             "watermarks": dict(request.watermarks), "request": "fetch_data"}
                ctx.store.add_dead_letters(tenant, plugin, source.name, [dead_letter_item(described, cause)],
                                           kind="fetch", run_id=ctx.run_id)
            raise
    report.status = "partial" if report.rejected else "ok"
    return report


async def run_integration(ctx: RunContext, config: PluginConfiguration) -> list[SourceReport]:
    """Every enabled source of one tenant's integration; failures are reported, never raised."""
    reports: list[SourceReport] = []
    sources = [s for s in config.sources if s.enabled]
    try:
        plugin_cls = ctx.registry.resolve(config.plugin_name, config.version)
        limits = RateLimitConfig.from_config(config.rate_limits.model_dump(exclude_none=True))
        if ctx.health.rate_limit_for(config.tenant_id, config.plugin_name) != limits:
            # configure() rebuilds the pair's breaker: only when the tenant's limits really changed.
            ctx.health.configure(config.tenant_id, config.plugin_name, rate_limit=limits)
        if not ctx.health.is_available(config.tenant_id, config.plugin_name):
            breaker = ctx.health.breaker(config.tenant_id, config.plugin_name)
            raise _breaker_open_error(config, breaker)
        instance = ctx.manager.instance(config.tenant_id, plugin_cls, config.timeout_seconds)
        instance.plugin.guard = ctx.health.guard(config.tenant_id, config.plugin_name)
        if instance.state.value in ("created", "stopped", "failed"):
            if instance.state.value == "failed":
                await instance.shutdown()
            await instance.initialize(config)
        if any(s.mode == "poll" for s in sources) and instance.state.value != "authenticated":
            # A credential that cannot be decrypted or is of the wrong type fails this integration only.
            credentials = ctx.credentials(config) if ctx.credentials else PluginCredentials(config.tenant_id)
            auth = await instance.authenticate(credentials)
            if not auth.ok:
                raise PluginError(f"plugin '{config.plugin_name}' needs credentials: {auth.message}")
    except IntegrationsError as err:
        failed = [_failed(ctx, config, s, err) for s in sources] or [_failed(ctx, config, SourceConfig(name="*"), err)]
        for report in failed:
            _record(ctx, report, utcnow())
            if ctx.progress is not None:
                ctx.progress(report)
        return failed
    for source in sources:
        started, started_at = time.perf_counter(), utcnow()
        try:
            report = await _run_source(ctx, instance, config, source)
        except IntegrationsError as err:
            report = _failed(ctx, config, source, err)
        except Exception as err:  # a plugin bug must not stop the other sources or tenants
            report = _failed(ctx, config, source, PluginError(f"{type(err).__name__}: {err}"))
        report.duration_s = time.perf_counter() - started
        report.extra["state"] = instance.state.value
        _record(ctx, report, started_at)
        reports.append(report)
        if ctx.progress is not None:
            ctx.progress(report)
    return reports


def _breaker_open_error(config: PluginConfiguration, breaker) -> PluginError:
    """An integration whose breaker is open is skipped this run: degraded, not a crash."""
    return PluginError(f"plugin '{config.plugin_name}' is down for tenant '{config.tenant_id}': circuit breaker open",
                       hint="it is retried after the breaker's cool-down; see `integrations health`")


def _failed(ctx: RunContext, config: PluginConfiguration, source: SourceConfig, err: IntegrationsError) -> SourceReport:
    report = _source_report(ctx, config, source)
    report.status = "failed"
    report.error = str(err) + (f" ({err.hint})" if err.hint else "")
    return report


def _record(ctx: RunContext, report: SourceReport, started_at) -> None:
    ctx.store.record_run({**report.as_dict(), "run_id": ctx.run_id, "started_at": started_at,
                          "finished_at": utcnow(), "engine": ctx.engine.name})


async def run_tenant(ctx: RunContext, configs: list[PluginConfiguration]) -> list[SourceReport]:
    """A tenant's integrations side by side; each one's failure stays its own. Health is saved at the end."""
    enabled = [c for c in configs if c.enabled]
    results = await asyncio.gather(*(run_integration(ctx, c) for c in enabled))
    reports = [report for reports in results for report in reports]
    for config in enabled:
        ctx.health.figures(config.tenant_id, config.plugin_name)  # every configured pair shows in `health`
    ctx.health.save(ctx.store, tenant=enabled[0].tenant_id if enabled else None)
    return reports
