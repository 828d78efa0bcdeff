"""Small canonical events for enrichment tests, shaped like the shipped mappings make them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from integrations.events import CanonicalEvent, event_id_for

T0 = datetime(2024, 5, 6, 10, 0, tzinfo=timezone.utc)
SOURCES = {"alarm": "cloudwatch", "log": "cloudwatch", "audit": "cloudwatch", "metric": "cloudwatch"}
TYPES = {"alarm": "system", "log": "system", "metric": "system", "audit": "security"}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def make_event(tenant: str, kind: str, name: str, minutes: float, *, service: str | None = None,
               sha: str | None = None, severity: str = "info", hints: list[str] | None = None,
               source: str | None = None, title: str | None = None, **attributes: Any) -> CanonicalEvent:
    """An event of `kind` at T0 + minutes; `service` becomes a `service:` hint and `attributes.service`."""
    values = list(hints or [])
    if service is not None:
        values.append(f"service:{service}")
        attributes.setdefault("service", service)
    if sha is not None:
        values.append(sha)
        attributes.setdefault("sha", sha)
    integration = source or SOURCES.get(kind, "github")
    return CanonicalEvent(
        event_id=event_id_for(tenant, integration, kind, name), tenant_id=tenant,
        event_type=TYPES.get(kind, "delivery"), kind=kind, severity=severity,
        title=title or f"{kind} {name}", occurred_at=at(minutes), resource_ids=[],
        attributes=attributes,
        integration_context={
            "source_integration": integration, "external_id": name, "original_timestamp": at(minutes).isoformat(),
            "correlation_hints": [{"type": "resource_id", "value": v, "confidence": 0.8} for v in dict.fromkeys(values)],
        })


def deployment(tenant: str, name: str, minutes: float, service: str, *, sha: str | None = None,
               environment: str = "production", ref: str = "main") -> CanonicalEvent:
    return make_event(tenant, "deployment", name, minutes, service=service, sha=sha, environment=environment, ref=ref)


def alarm(tenant: str, name: str, minutes: float, service: str, *, severity: str = "high") -> CanonicalEvent:
    return make_event(tenant, "alarm", name, minutes, service=service, severity=severity,
                      new_state="ALARM" if severity in ("high", "critical") else "OK")
