"""One way through: records -> engine -> events and rejections -> store, with nothing lost.

Every step names its tenant. A batch is written in one transaction: its events, its dead
letters, its raw records and (when given) the source's new watermarks commit together, so a run
that fails half-way moves no cursor and loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from integrations.errors import RecordError
from integrations.mapping import CompiledMapping, MappingEngine, MapResult, Rejection
from integrations.store import EventStore, UpsertCounts


@dataclass
class SourceReport:
    """What one (tenant, plugin, source) did in one run."""

    tenant_id: str
    plugin: str
    source: str
    read: int = 0
    mapped: int = 0
    filtered: int = 0
    rejected: int = 0
    events: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duration_s: float = 0.0
    status: str = "ok"
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def add_map_result(self, result: MapResult) -> None:
        self.read += result.read
        self.mapped += result.mapped
        self.filtered += result.filtered
        self.rejected += result.rejected
        self.events += len(result.events)

    def add_upsert(self, counts: UpsertCounts) -> None:
        self.inserted += counts.inserted
        self.updated += counts.updated
        self.unchanged += counts.unchanged

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def map_items(engine: MappingEngine, mapping: CompiledMapping, items: Iterable[tuple[int, Any]],
              tenant_id: str) -> MapResult:
    """Map (position, record) pairs; unparseable inputs (RecordError in place) become rejections."""
    records: list[Any] = []
    positions: list[int] = []
    broken: list[Rejection] = []
    for position, item in items:
        if isinstance(item, RecordError):
            broken.append(Rejection(record_index=position, record={"unparsed_line": item.expression},
                                    reason=item.message))
        else:
            records.append(item)
            positions.append(position)
    result = engine.map(mapping, records, tenant_id=tenant_id)
    # Engines number records 0..n-1; put back the positions the records had in the input.
    for rejection in result.rejections:
        rejection.record_index = positions[rejection.record_index]
    result.rejections.extend(broken)
    result.rejections.sort(key=lambda r: r.record_index)
    result.read += len(broken)
    return result


def dead_letter_items(result: MapResult) -> list[dict[str, Any]]:
    return [r.as_dict() for r in result.rejections]


def store_result(store: EventStore, *, tenant_id: str, plugin: str, source: str, result: MapResult,
                 precedence: int = 100, raw_records: list[Any] | None = None, run_id: str | None = None,
                 watermarks: dict[str, str] | None = None, report: SourceReport | None = None) -> SourceReport:
    """Write one mapped batch (events, dead letters, raw records, watermarks) in one transaction."""
    started = time.perf_counter()
    report = report or SourceReport(tenant_id=tenant_id, plugin=plugin, source=source)
    with store.transaction() as conn:
        if raw_records:
            store.add_raw_records(tenant_id, plugin, source, raw_records, run_id=run_id, conn=conn)
        counts = store.upsert_events(result.events, source=source, precedence=precedence, run_id=run_id, conn=conn)
        store.add_dead_letters(tenant_id, plugin, source, dead_letter_items(result), kind="mapping",
                               run_id=run_id, conn=conn)
        if watermarks:
            store.set_watermarks(tenant_id, plugin, source, watermarks, conn=conn)
    report.add_map_result(result)
    report.add_upsert(counts)
    report.duration_s += time.perf_counter() - started
    return report


def ingest(store: EventStore, *, tenant_id: str, mapping: CompiledMapping, engine: MappingEngine,
           items: Iterable[tuple[int, Any]], run_id: str | None = None, keep_raw: bool = True,
           watermarks: dict[str, str] | None = None, report: SourceReport | None = None) -> SourceReport:
    """Map one batch of (position, record) pairs and store it in one transaction."""
    items = list(items)
    result = map_items(engine, mapping, items, tenant_id)
    raw = [item for _pos, item in items if not isinstance(item, RecordError)] if keep_raw else None
    return store_result(store, tenant_id=tenant_id, plugin=mapping.plugin, source=mapping.source, result=result,
                        precedence=mapping.spec.precedence, raw_records=raw, run_id=run_id, watermarks=watermarks,
                        report=report)
