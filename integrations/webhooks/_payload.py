"""Turning a delivery's raw body into its JSON payload.

GitHub sends either `application/json` (the body is the payload) or
`application/x-www-form-urlencoded` (the payload is the URL-encoded `payload=` field). The receiver
checks this before storing a delivery, and the inbox decodes the stored raw body the same way when
the runner drains it, so the two can never disagree.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from integrations.errors import RecordError

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_payload(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The JSON object a delivery carries; RecordError (field `body`) when there is none."""
    if media_type(content_type) == FORM_CONTENT_TYPE:
        try:
            fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise RecordError("form body is not URL-encoded UTF-8", field="body") from None
        values = fields.get("payload")
        if not values:
            raise RecordError("form body has no 'payload' field", field="body",
                              hint="GitHub's form content type sends the JSON in a field named 'payload'")
        text: str | bytes = values[0]
    else:
        text = body
    try:
        payload = json.loads(text)
    except (UnicodeDecodeError, ValueError) as err:
        raise RecordError(f"body is not JSON: {err}", field="body") from None
    if not isinstance(payload, dict):
        raise RecordError(f"body is JSON but not an object (got {type(payload).__name__})", field="body")
    return payload
