"""The canonical event model and its CloudEvents export."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from integrations.events import CanonicalEvent, event_id_for, format_rfc3339, to_cloudevent


def make_event(**overrides) -> CanonicalEvent:
    data = {
        "event_id": event_id_for("demo", "github", "commit", "abc"),
        "tenant_id": "demo", "event_type": "delivery", "kind": "commit", "severity": "info", "title": "t",
        "occurred_at": datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
        "integration_context": {"source_integration": "github", "external_id": "abc",
                                "original_timestamp": "2024-05-01T14:00:00+02:00",
                                "correlation_hints": [{"type": "resource_id", "value": "o/r", "confidence": 0.5}],
                                "evidence_links": [{"type": "commit", "url": "https://x", "description": "d"}]},
    }
    data.update(overrides)
    return CanonicalEvent.model_validate(data)


def test_event_id_is_deterministic_and_separates_its_parts():
    a = event_id_for("demo", "github", "commit", "abc")
    assert a == event_id_for("demo", "github", "commit", "abc")
    assert len({a, event_id_for("acme", "github", "commit", "abc"), event_id_for("demo", "gitlab", "commit", "abc"),
                event_id_for("demo", "github", "release", "abc"), event_id_for("demo", "github", "commit", "abd")}) == 5
    # No ambiguity from joining: ("a/b", "c") and ("a", "b/c") differ.
    assert event_id_for("a", "b/c", "k", "x") != event_id_for("a/b", "c", "k", "x")


def test_times_are_utc_rfc3339():
    data = make_event().to_json_dict()
    assert data["occurred_at"] == "2024-05-01T12:00:00Z"
    assert "ingested_at" not in data
    assert format_rfc3339(datetime(2024, 1, 1, 0, 0, 0, 120000, tzinfo=timezone.utc)) == "2024-01-01T00:00:00.12Z"


@pytest.mark.parametrize("field,value", [("event_type", "other"), ("severity", "urgent"), ("tenant_id", ""),
                                         ("unknown", 1)])
def test_invalid_events_are_refused(field, value):
    with pytest.raises(ValidationError):
        make_event(**{field: value})


def test_confidence_is_between_0_and_1():
    ctx = make_event().integration_context.model_dump()
    ctx["correlation_hints"][0]["confidence"] = 1.5
    with pytest.raises(ValidationError):
        make_event(integration_context=ctx)


def test_cloudevent_export_is_valid(cloudevents_validator):
    event = make_event()
    ce = to_cloudevent(event)
    cloudevents_validator.validate(ce)
    assert ce["id"] == event.event_id and ce["specversion"] == "1.0" and ce["time"] == "2024-05-01T12:00:00Z"
    assert ce["type"] == "dev.integrations.delivery.commit" and ce["subject"] == "abc"
    assert ce["data"]["integration_context"]["external_id"] == "abc"
