"""Export formats for canonical events: one function per format name.

`integrations map --format` and `integrations events export --format` offer exactly these. An
exporter takes a list of events and returns the JSON documents to write (one per line) and the
number of events it skipped because the format has no counterpart for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from integrations.events._cdevents import export_cdevents
from integrations.events._cloudevents import to_cloudevent
from integrations.events._model import CanonicalEvent
from integrations.events._ocsf import export_ocsf

Exporter = Callable[[Sequence[CanonicalEvent]], tuple[list[dict[str, Any]], int]]


def _jsonl(events: Sequence[CanonicalEvent]) -> tuple[list[dict[str, Any]], int]:
    return [e.to_json_dict() for e in events], 0


def _cloudevents(events: Sequence[CanonicalEvent]) -> tuple[list[dict[str, Any]], int]:
    return [to_cloudevent(e) for e in events], 0


EXPORT_FORMATS: dict[str, Exporter] = {
    "jsonl": _jsonl,
    "cloudevents": _cloudevents,
    "cdevents": export_cdevents,
    "ocsf": export_ocsf,
}


def export_events(fmt: str, events: Sequence[CanonicalEvent]) -> tuple[list[dict[str, Any]], int]:
    """Documents of `events` in format `fmt`, and how many events had no counterpart in it."""
    return EXPORT_FORMATS[fmt](events)
