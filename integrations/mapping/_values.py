"""How expression results become event values: the rules both engines must share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from integrations.errors import RecordError


def is_truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, '', [] and {} are false; 0 is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict)) and len(value) == 0:
        return False
    return True


def parse_timestamp(value: Any, field: str) -> datetime:
    """An ISO-8601 string as an aware datetime; anything else is a clear rejection."""
    if isinstance(value, bool) or not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        hint = " (use from_epoch() or from_epoch_ms() for epoch numbers)" if isinstance(value, (int, float)) else ""
        raise RecordError(f"expected an ISO-8601 timestamp string, got {kind}{hint}", field=field)
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            from dateutil.parser import isoparse

            moment = isoparse(text)
        except (ValueError, OverflowError):
            raise RecordError(f"timestamp {value!r} is not ISO-8601", field=field) from None
    if moment.tzinfo is None:
        # A timestamp without an offset is taken as UTC, as AWS and GitHub write UTC.
        from datetime import timezone

        moment = moment.replace(tzinfo=timezone.utc)
    return moment


def as_text(value: Any, field: str) -> str:
    """Scalars as strings (GitHub ids are numbers); objects, lists and null are rejected."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    kind = "null" if value is None else ("object" if isinstance(value, dict) else "list")
    raise RecordError(f"expected a string, got {kind}", field=field)


def as_text_list(value: Any, field: str) -> list[str]:
    """A string or a list of scalars as a list of strings; nulls inside are dropped."""
    if value is None:
        return []
    if not isinstance(value, list):
        return [as_text(value, field)]
    return [as_text(v, field) for v in value if v is not None]


def set_path(target: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in nested dicts, creating the dicts on the way."""
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value
