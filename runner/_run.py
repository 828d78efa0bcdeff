"""`integrations run`: for each tenant and source, read records, map them, store the events.

Sources today are the bundled sample files (`data/samples/<tenant>/<plugin>/<source>.jsonl`);
the plugin framework adds polling and webhook inboxes behind the same loop. A source that fails
is reported and the others go on; the run fails only when every source failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from integrations.errors import IntegrationsError
from integrations.mapping import get_engine, load_mapping
from integrations.paths import mapping_path, mappings_dir, samples_dir
from integrations.pipeline import SourceReport, ingest
from integrations.records import iter_records
from integrations.store import EventStore, utcnow

BATCH_SIZE = 5_000


@dataclass
class RunOptions:
    store_path: Path
    tenants: list[str] = field(default_factory=lambda: ["demo"])
    samples: Path = field(default_factory=samples_dir)
    mappings: Path = field(default_factory=mappings_dir)
    engine: str = "auto"


@dataclass
class RunReport:
    run_id: str
    sources: list[SourceReport] = field(default_factory=list)

    @property
    def all_failed(self) -> bool:
        return bool(self.sources) and all(s.status == "failed" for s in self.sources)


def _batches(items, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _run_sample_source(store: EventStore, options: RunOptions, tenant: str, path: Path, run_id: str) -> SourceReport:
    plugin, source = path.parent.name, path.stem
    report = SourceReport(tenant_id=tenant, plugin=plugin, source=source)
    started_at = utcnow()
    started = time.perf_counter()
    engine = get_engine(options.engine)
    try:
        mapping = load_mapping(mapping_path(plugin, source, options.mappings))
        for batch in _batches(iter_records(path), BATCH_SIZE):
            ingest(store, tenant_id=tenant, mapping=mapping, engine=engine, items=batch, run_id=run_id, report=report)
        report.status = "partial" if report.rejected else "ok"
    except IntegrationsError as err:
        report.status = "failed"
        report.error = str(err)
    report.duration_s = time.perf_counter() - started
    store.record_run({**report.as_dict(), "run_id": run_id, "started_at": started_at, "finished_at": utcnow(),
                      "engine": engine.name})
    return report


def run(options: RunOptions) -> RunReport:
    """One run over every tenant's sources."""
    store = EventStore(options.store_path)
    store.initialize()
    report = RunReport(run_id=store.new_run_id())
    for tenant in options.tenants:
        folder = options.samples / tenant
        for path in sorted(folder.glob("*/*.jsonl")):
            report.sources.append(_run_sample_source(store, options, tenant, path, report.run_id))
    return report
