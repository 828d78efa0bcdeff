"""`integrations remap`: re-apply today's mappings to the raw records kept per source.

No fetching: the raw layer already holds what each source received. Events whose content
changes are updated in place (same ids); unchanged ones are left alone; nothing else is touched.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from integrations.errors import IntegrationsError
from integrations.mapping import get_engine, load_mapping
from integrations.paths import mapping_path
from integrations.pipeline import SourceReport, store_result
from integrations.store import EventStore


def raw_sources(store: EventStore, *, tenant: str | None = None, plugin: str | None = None,
                source: str | None = None) -> list[tuple[str, str, str]]:
    """(tenant, plugin, source) triples that have raw records."""
    if not store.path.exists():
        return []
    sql = "SELECT DISTINCT tenant_id, plugin, source FROM raw_records WHERE 1 = 1"
    params: list = []
    for column, value in (("tenant_id", tenant), ("plugin", plugin), ("source", source)):
        if value is not None:
            sql += f" AND {column} = ?"
            params.append(value)
    with store.reader() as conn:
        return [tuple(r) for r in conn.execute(sql + " ORDER BY 1, 2, 3", params).fetchall()]


def remap(store: EventStore, *, mappings: Path, tenant: str | None = None, plugin: str | None = None,
          source: str | None = None, since: datetime | None = None, engine_name: str = "auto",
          run_id: str | None = None) -> list[SourceReport]:
    """Map the kept raw records again; one report per (tenant, plugin, source)."""
    engine = get_engine(engine_name)
    reports = []
    for tenant_id, plugin_name, source_name in raw_sources(store, tenant=tenant, plugin=plugin, source=source):
        report = SourceReport(tenant_id=tenant_id, plugin=plugin_name, source=source_name, extra={"mode": "remap"})
        try:
            mapping = load_mapping(mapping_path(plugin_name, source_name, mappings))
            batches = list(store.iter_raw_records(tenant_id, plugin_name, source_name, since=since))
            for batch in batches:
                result = engine.map(mapping, batch, tenant_id=tenant_id)
                store_result(store, tenant_id=tenant_id, plugin=plugin_name, source=source_name, result=result,
                             precedence=mapping.spec.precedence, run_id=run_id, report=report)
            report.status = "partial" if report.rejected else "ok"
        except IntegrationsError as err:
            report.status = "failed"
            report.error = str(err)
        reports.append(report)
    return reports
