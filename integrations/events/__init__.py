"""The canonical event model and its exports."""

from integrations.events._cloudevents import to_cloudevent
from integrations.events._formats import EXPORT_FORMATS, export_events
from integrations.events._model import (
    EVENT_TYPES,
    HINT_TYPES,
    KNOWN_KINDS,
    LINK_TYPES,
    SEVERITIES,
    CanonicalEvent,
    CorrelationHint,
    EvidenceLink,
    IntegrationContext,
    SeverityLevel,
    event_id_for,
    format_rfc3339,
    to_utc,
)

__all__ = [
    "EXPORT_FORMATS",
    "export_events",
    "EVENT_TYPES",
    "HINT_TYPES",
    "KNOWN_KINDS",
    "LINK_TYPES",
    "SEVERITIES",
    "CanonicalEvent",
    "CorrelationHint",
    "EvidenceLink",
    "IntegrationContext",
    "SeverityLevel",
    "event_id_for",
    "format_rfc3339",
    "to_cloudevent",
    "to_utc",
]
