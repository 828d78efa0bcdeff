"""The engine interface (mapping + records in, events and rejections out) and the Python engine.

Every caller (CLI, runner, workbench, notebooks) goes through `MappingEngine.map`. The Python
engine is the reference: any other engine must give exactly the same events and rejections.
Counting is per record: `read = mapped + filtered + rejected` always holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from jmespath import exceptions as jmes_exc
from pydantic import ValidationError

from integrations.errors import IntegrationsError, RecordError
from integrations.events import CanonicalEvent, event_id_for
from integrations.mapping._compile import CompiledExpression, CompiledMapping, CompiledOutput
from integrations.mapping._values import as_text, as_text_list, is_truthy, parse_timestamp, set_path


@dataclass
class Rejection:
    """A record that could not be mapped: what went wrong, where, and the record itself."""

    record_index: int
    record: Any
    reason: str
    field: str | None = None
    output: str | None = None
    expression: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"record_index": self.record_index, "reason": self.reason, "field": self.field,
                "output": self.output, "expression": self.expression, "record": self.record}


@dataclass
class MapResult:
    """What one call to an engine produced. Records are counted apart from events."""

    events: list[CanonicalEvent] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    read: int = 0
    mapped: int = 0
    filtered: int = 0

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    def extend(self, other: "MapResult") -> None:
        self.events.extend(other.events)
        self.rejections.extend(other.rejections)
        self.read += other.read
        self.mapped += other.mapped
        self.filtered += other.filtered

    def summary(self) -> dict[str, int]:
        return {"read": self.read, "mapped": self.mapped, "filtered": self.filtered,
                "rejected": self.rejected, "events": len(self.events)}


@runtime_checkable
class MappingEngine(Protocol):
    """The one seam between mappings and everything that runs them."""

    name: str

    def map(self, mapping: CompiledMapping, records: Iterable[Any], *, tenant_id: str,
            start_index: int = 0) -> MapResult:
        """Map records (numbered from `start_index`) for a tenant."""
        ...


def _search(expr: CompiledExpression, data: Any, field: str) -> Any:
    try:
        return expr.search(data)
    except RecordError as err:
        err.field = err.field or field
        err.expression = err.expression or expr.text
        raise
    except jmes_exc.JMESPathError as err:
        raise RecordError(str(err).replace("\n", " "), field=field, expression=expr.text) from None
    except (TypeError, ValueError, OverflowError) as err:
        raise RecordError(f"{type(err).__name__}: {err}", field=field, expression=expr.text) from None


def _build_event(out: CompiledOutput, scope: Any, tenant_id: str, plugin: str) -> CanonicalEvent:
    """One event from one scope (the record, or {item, record} inside for_each)."""
    values: dict[str, Any] = {name: _search(expr, scope, name) for name, expr in out.fields.items()}
    parts = field_parts(out, values)
    severity = "info"
    for cond, level in out.severity:
        if cond is None or is_truthy(_search(cond, scope, "severity")):
            severity = level
            break
    hints = [hint for hint_type, expr, confidence in out.hints
             for hint in hint_entries(hint_type, _search(expr, scope, "correlation_hints"), confidence)]
    links = []
    for link_type, url_expr, desc_expr, meta in out.links:
        url = _search(url_expr, scope, "evidence_links")
        if url is None or url == "":
            continue
        description = _search(desc_expr, scope, "evidence_links") if desc_expr is not None else None
        metadata = {k: v for k, e in meta.items() if (v := _search(e, scope, "evidence_links")) is not None}
        links.append(link_entry(link_type, url, description, metadata))
    data = event_data(out, tenant_id, plugin, severity=severity,
                      resource_ids=as_text_list(values.get("resource_ids"), "resource_ids"),
                      hints=hints, links=links, **parts)
    try:
        return CanonicalEvent.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise RecordError(f"invalid event: {loc}: {first['msg']}", field=loc) from None


# -- the event rules, on evaluated values: every engine applies these, so rejections agree -----------


def field_parts(out: CompiledOutput, values: dict[str, Any]) -> dict[str, Any]:
    """external_id, occurred_at, original_timestamp, title and attributes from the fields' values."""
    for name in out.spec.required:
        if values.get(name) is None and not (name.startswith("attributes.") and _nested(values.get("attributes"), name)):
            raise RecordError(f"required field '{name}' is missing (the expression gave null)", field=name,
                              expression=out.fields[name].text if name in out.fields else None)
    external_id = as_text(values.get("external_id"), "external_id")
    if external_id == "":
        raise RecordError("external_id is empty", field="external_id")
    raw_time = values.get("occurred_at")
    occurred_at = parse_timestamp(raw_time, "occurred_at")
    original = values.get("original_timestamp", raw_time)
    original_timestamp = as_text(original, "original_timestamp") if original is not None else as_text(raw_time, "occurred_at")
    title = as_text(values.get("title"), "title")
    attributes: dict[str, Any] = {}
    whole = values.get("attributes")
    if whole is not None:
        if not isinstance(whole, dict):
            raise RecordError("expected an object for 'attributes'", field="attributes")
        attributes.update({k: v for k, v in whole.items() if v is not None})
    for name, value in values.items():
        if name.startswith("attributes.") and value is not None:
            set_path(attributes, name[len("attributes."):], value)
    return {"external_id": external_id, "occurred_at": occurred_at, "original_timestamp": original_timestamp,
            "title": title, "attributes": attributes}


def hint_entries(hint_type: str, value: Any, confidence: float) -> list[dict[str, Any]]:
    """The correlation hints of one template's value (a text or a list of texts; empty ones dropped)."""
    return [{"type": hint_type, "value": text, "confidence": confidence}
            for text in as_text_list(value, "correlation_hints") if text]


def link_entry(link_type: str, url: Any, description: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    """One evidence link (the caller skips a null or empty url)."""
    return {"type": link_type, "url": as_text(url, "evidence_links"),
            "description": "" if description is None else as_text(description, "evidence_links"),
            "metadata": metadata}


def event_data(out: CompiledOutput, tenant_id: str, plugin: str, *, external_id: str, occurred_at: Any,
               original_timestamp: str, title: str, severity: str, resource_ids: list[str],
               attributes: dict[str, Any], hints: list[dict[str, Any]], links: list[dict[str, Any]]) -> dict[str, Any]:
    """The canonical event's data from its evaluated parts: one shape for every engine."""
    kind = out.spec.kind
    return {
        "event_id": event_id_for(tenant_id, plugin, kind, external_id),
        "tenant_id": tenant_id,
        "event_type": out.spec.event_type,
        "kind": kind,
        "severity": severity,
        "title": title,
        "occurred_at": occurred_at,
        "resource_ids": resource_ids,
        "attributes": attributes,
        "integration_context": {
            "source_integration": plugin,
            "external_id": external_id,
            "original_timestamp": original_timestamp,
            "correlation_hints": hints,
            "evidence_links": links,
            "enrichment_metadata": {},
        },
    }


def _nested(attributes: Any, dotted: str) -> bool:
    node = attributes
    for part in dotted.split(".")[1:]:
        if not isinstance(node, dict) or node.get(part) is None:
            return False
        node = node[part]
    return True


def output_scopes(out: CompiledOutput, record: Any) -> list[Any]:
    """The scopes an output makes events from: none (filtered), the record, or one per element."""
    if out.when is not None and not is_truthy(_search(out.when, record, "when")):
        return []
    if out.for_each is None:
        return [record]
    items = _search(out.for_each, record, "for_each")
    if items is None:
        return []
    if not isinstance(items, list):
        raise RecordError(f"for_each must give a list, got {type(items).__name__}", field="for_each",
                          expression=out.for_each.text)
    return [{"item": item, "record": record} for item in items]


def map_record(mapping: CompiledMapping, record: Any, tenant_id: str) -> list[CanonicalEvent]:
    """The events of one record, or a RecordError naming the output and field that failed."""
    events: list[CanonicalEvent] = []
    for out in mapping.outputs:
        try:
            for scope in output_scopes(out, record):
                events.append(_build_event(out, scope, tenant_id, mapping.plugin))
        except RecordError as err:
            err.output = err.output or out.name
            raise
    return events


class PythonEngine:
    """The reference engine: record by record through jmespath."""

    name = "python"

    def map(self, mapping: CompiledMapping, records: Iterable[Any], *, tenant_id: str,
            start_index: int = 0) -> MapResult:
        result = MapResult()
        for index, record in enumerate(records, start=start_index):
            result.read += 1
            try:
                events = map_record(mapping, record, tenant_id)
            except IntegrationsError as err:
                result.rejections.append(Rejection(
                    record_index=index, record=record, reason=err.message, field=err.field,
                    output=getattr(err, "output", None),
                    expression=err.expression))
                continue
            except RecursionError:
                result.rejections.append(Rejection(index, record, "record is nested too deeply to map"))
                continue
            if events:
                result.mapped += 1
                result.events.extend(events)
            else:
                result.filtered += 1
        return result
