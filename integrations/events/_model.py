"""The canonical event: the one format every integration produces.

The JSON names are the public contract (snake_case versions of the seed design's names). The
`event_id` is a UUIDv5 of tenant, source integration, kind and external id, so the same fact
seen twice (a re-run, or a webhook and a poll of the same thing) is the same row.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

# Fixed namespace for event ids: changing it would re-key every stored event.
EVENT_NAMESPACE = uuid.UUID("5b0c2f52-8a53-4d8e-9f6b-2f3d6d7a9c11")

EventType = Literal["system", "security", "delivery"]
Severity = Literal["info", "low", "medium", "high", "critical"]
HintType = Literal["resource_id", "temporal", "metadata"]
LinkType = Literal["commit", "pr", "deployment", "release", "metric", "log", "alarm"]

EVENT_TYPES: tuple[str, ...] = ("system", "security", "delivery")
SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
HINT_TYPES: tuple[str, ...] = ("resource_id", "temporal", "metadata")
LINK_TYPES: tuple[str, ...] = ("commit", "pr", "deployment", "release", "metric", "log", "alarm")
KNOWN_KINDS: tuple[str, ...] = (
    "commit", "pull_request", "deployment", "deployment_status", "release", "workflow_run",
    "metric", "log", "alarm", "audit",
)


class SeverityLevel(int, Enum):
    """Severities in order, for comparisons ("at least high")."""

    info = 0
    low = 1
    medium = 2
    high = 3
    critical = 4


def event_id_for(tenant_id: str, source_integration: str, kind: str, external_id: str) -> str:
    """The deterministic id: same tenant, source, kind and external id give the same event."""
    name = "\x1f".join((tenant_id, source_integration, kind, external_id))
    return str(uuid.uuid5(EVENT_NAMESPACE, name))


def to_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def format_rfc3339(value: datetime) -> str:
    """UTC with a `Z`, milliseconds only when present: `2024-05-01T12:00:00Z`."""
    value = to_utc(value)
    if value.microsecond:
        text = value.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0")
        return f"{text}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class CorrelationHint(_Model):
    """A value other events may share (a resource id, a time, a tag) and how sure we are."""

    type: HintType
    value: str = Field(min_length=1)
    confidence: float = Field(ge=0.0, le=1.0)


class EvidenceLink(_Model):
    """A URL a person can open to see the thing the event is about."""

    type: LinkType
    url: str = Field(min_length=1)
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class IntegrationContext(_Model):
    """Where the event came from and how it relates to others (the seed's IntegrationContext)."""

    source_integration: str = Field(min_length=1)
    external_id: str = Field(min_length=1)
    original_timestamp: str
    correlation_hints: list[CorrelationHint] = Field(default_factory=list)
    evidence_links: list[EvidenceLink] = Field(default_factory=list)
    enrichment_metadata: dict[str, Any] = Field(default_factory=dict)


class CanonicalEvent(_Model):
    """A system, security or delivery event with its integration context."""

    event_id: str
    tenant_id: str = Field(min_length=1)
    event_type: EventType
    kind: str = Field(min_length=1)
    severity: Severity = "info"
    title: str
    occurred_at: datetime
    ingested_at: datetime | None = None
    resource_ids: list[str] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(default_factory=dict)
    integration_context: IntegrationContext

    @field_validator("occurred_at", "ingested_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else to_utc(value)

    @field_serializer("occurred_at", "ingested_at")
    def _rfc3339(self, value: datetime | None) -> str | None:
        return None if value is None else format_rfc3339(value)

    def to_json_dict(self, *, with_ingested_at: bool = True) -> dict[str, Any]:
        """The public JSON shape; golden files leave `ingested_at` out."""
        data = self.model_dump(mode="json")
        if not with_ingested_at or data.get("ingested_at") is None:
            data.pop("ingested_at", None)
        return data
