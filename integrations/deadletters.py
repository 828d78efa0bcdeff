"""Replaying dead letters: records that failed to map are mapped again with today's mapping.

A record that now maps is upserted and its dead letter marked `replayed`; one that still fails
stays open with the new reason and one more attempt. Requests that failed to fetch (`kind:
fetch`) are handed to the plugin framework's replay hook when one is registered.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from integrations.errors import IntegrationsError
from integrations.mapping import Rejection, get_engine, load_mapping
from integrations.paths import mapping_path
from integrations.store import EventStore

# (store, tenant, dead letter rows) -> ids that succeeded; the runner provides one.
FetchReplayer = Callable[[EventStore, str, list[dict[str, Any]]], list[str]]


def _records_of(items: list[dict[str, Any]]) -> tuple[list[Any], set[int]]:
    """The records to map again; a line that was not JSON is parsed again, and stays failing if it still is not."""
    records: list[Any] = []
    unparsable: set[int] = set()
    for i, row in enumerate(items):
        record = row["record"]
        if isinstance(record, dict) and set(record) == {"unparsed_line"}:
            try:
                record = json.loads(record["unparsed_line"] or "")
            except ValueError:
                unparsable.add(i)
                record = None
        records.append(record)
    return records, unparsable


def replay_dead_letters(store: EventStore, tenant_id: str, *, plugin: str | None = None, source: str | None = None,
                        engine_name: str = "auto", fetch_replayer: FetchReplayer | None = None,
                        ) -> dict[tuple[str, str, str], dict[str, int]]:
    """Replay a tenant's open dead letters; returns counts per (plugin, source, kind)."""
    rows = store.list_dead_letters(tenant_id, plugin=plugin, source=source, status="open")
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["plugin"], row["source"], row["kind"])].append(row)
    outcome: dict[tuple[str, str, str], dict[str, int]] = {}
    engine = get_engine(engine_name)
    for key, items in groups.items():
        plugin_name, source_name, kind = key
        stats = {"tried": len(items), "replayed": 0, "failing": 0}
        outcome[key] = stats
        if kind == "fetch":
            if fetch_replayer is None:
                stats["failing"] = len(items)
                continue
            done = fetch_replayer(store, tenant_id, items)
            with store.transaction() as conn:
                store.resolve_dead_letters(tenant_id, done, conn=conn)
            stats["replayed"] = len(done)
            stats["failing"] = len(items) - len(done)
            continue
        try:
            mapping = load_mapping(mapping_path(plugin_name, source_name))
        except IntegrationsError:
            stats["failing"] = len(items)
            continue
        records, unparsable = _records_of(items)
        positions = [i for i in range(len(items)) if i not in unparsable]
        result = engine.map(mapping, [records[i] for i in positions], tenant_id=tenant_id)
        for rejection in result.rejections:
            rejection.record_index = positions[rejection.record_index]
        failed = {r.record_index for r in result.rejections} | unparsable
        for i in unparsable:
            result.rejections.append(Rejection(record_index=i, record=items[i]["record"],
                                               reason=items[i]["reason"]))
        with store.transaction() as conn:
            store.upsert_events(result.events, source=source_name, precedence=mapping.spec.precedence, conn=conn)
            store.resolve_dead_letters(tenant_id, [row["dead_letter_id"] for i, row in enumerate(items)
                                                   if i not in failed], conn=conn)
            store.add_dead_letters(tenant_id, plugin_name, source_name, [r.as_dict() for r in result.rejections],
                                   kind="mapping", conn=conn)
        stats["replayed"] = len(items) - len(failed)
        stats["failing"] = len(failed)
    return outcome
