"""Export canonical events as CloudEvents 1.0 (structured JSON mode)."""

from __future__ import annotations

from typing import Any

from integrations.events._model import CanonicalEvent, format_rfc3339

CLOUDEVENTS_TYPE_PREFIX = "dev.integrations"


def to_cloudevent(event: CanonicalEvent) -> dict[str, Any]:
    """One CloudEvent whose `data` is the canonical event; `id` lets receivers drop repeats."""
    ctx = event.integration_context
    return {
        "specversion": "1.0",
        "id": event.event_id,
        "source": f"/integrations/{event.tenant_id}/{ctx.source_integration}",
        "type": f"{CLOUDEVENTS_TYPE_PREFIX}.{event.event_type}.{event.kind}",
        "time": format_rfc3339(event.occurred_at),
        "subject": ctx.external_id,
        "datacontenttype": "application/json",
        "data": event.to_json_dict(),
    }
