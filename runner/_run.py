"""`integrations run`: for each tenant, run its configured integrations through the plugin loop.

A tenant's configuration comes from `tenants/<tenant>.yaml`; a tenant without one runs its bundled
sample files. A source that fails is reported and the others go on; the run fails only when every
source failed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from integrations.mapping import get_engine
from integrations.paths import mappings_dir, samples_dir
from integrations.pipeline import SourceReport
from integrations.plugins import LifecycleManager, RunContext, load_registry, run_tenant
from integrations.store import EventStore
from integrations.tenants import load_tenant_config, samples_config, tenants_dir


@dataclass
class RunOptions:
    store_path: Path
    tenants: list[str] = field(default_factory=lambda: ["demo"])
    samples: Path = field(default_factory=samples_dir)
    mappings: Path = field(default_factory=mappings_dir)
    tenants_dir: Path = field(default_factory=tenants_dir)
    engine: str = "auto"


@dataclass
class RunReport:
    run_id: str
    sources: list[SourceReport] = field(default_factory=list)

    @property
    def all_failed(self) -> bool:
        return bool(self.sources) and all(s.status == "failed" for s in self.sources)


async def _run_all(ctx: RunContext, options: RunOptions) -> list[SourceReport]:
    reports: list[SourceReport] = []
    try:
        for tenant in options.tenants:
            config = load_tenant_config(tenant, options.tenants_dir) or samples_config(tenant, options.samples)
            reports.extend(await run_tenant(ctx, config.plugin_configurations()))
    finally:
        await ctx.manager.shutdown_all()
    return reports


def run(options: RunOptions) -> RunReport:
    """One run over every tenant's integrations."""
    store = EventStore(options.store_path)
    store.initialize()
    report = RunReport(run_id=store.new_run_id())
    ctx = RunContext(store=store, registry=load_registry(), manager=LifecycleManager(),
                     engine=get_engine(options.engine), samples=options.samples, mappings=options.mappings,
                     run_id=report.run_id)
    report.sources = asyncio.run(_run_all(ctx, options))
    return report
