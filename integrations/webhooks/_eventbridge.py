"""What the receiver needs to know about AWS EventBridge deliveries (API destinations).

An EventBridge rule with an API destination as its target POSTs each matching event, unchanged,
as the JSON body. The destination's connection authorizes it; we use API-key authorization: the
connection sends the header `x-api-key` with the tenant's secret (EventBridge keeps the value in
Secrets Manager and never shows it again). There is no signature over the body, so the key is
compared in constant time and the endpoint must be served over TLS.

EventBridge retries a delivery answered 429 or 5xx (up to 24 hours, with the same event `id`) and
sends other failures to the rule's dead-letter queue, so a 400 here is the right answer to an
event no source reads: it lands in the user's DLQ with our reason, instead of being retried.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from integrations.errors import RecordError

API_KEY_HEADER = "x-api-key"
ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"


def cloudwatch_source(payload: dict[str, Any]) -> str:
    """The cloudwatch source whose mapping reads this event, as the inbox files it.

    `alarm_state_change`: "CloudWatch Alarm State Change" events, and the `alarmData` event a
    Lambda alarm action receives (forwarded by such a function). `cloudtrail`: the "... via
    CloudTrail" detail-types ("AWS API Call via CloudTrail", "AWS Console Sign In via CloudTrail").
    """
    detail_type = payload.get("detail-type")
    if detail_type == ALARM_DETAIL_TYPE or isinstance(payload.get("alarmData"), dict):
        return "alarm_state_change"
    if isinstance(detail_type, str) and detail_type.endswith(" via CloudTrail"):
        return "cloudtrail"
    shown = repr(detail_type)[:120] if detail_type is not None else "none"
    raise RecordError(f"no cloudwatch source reads EventBridge events of detail-type {shown}",
                      field="detail-type",
                      hint=f"route only '{ALARM_DETAIL_TYPE}' and '... via CloudTrail' events to this endpoint")


def delivery_id(payload: dict[str, Any], body: bytes) -> str:
    """EventBridge's event `id` (a retry carries the same one); without one, the body's SHA-256."""
    event_id = payload.get("id")
    if isinstance(event_id, str) and 0 < len(event_id) <= 128:
        return event_id
    return "sha256:" + hashlib.sha256(body).hexdigest()


def api_key_matches(secret: bytes, presented: str | None) -> bool:
    """Constant-time comparison of the connection's API key with the tenant's secret."""
    if not presented:
        return False
    return hmac.compare_digest(secret, presented.encode("utf-8"))
