"""Durations in rule files (`30m`, `2h`, `7d`) and in explanations ("12 minutes").

Every correlation window is bounded: a rule without one, or with one that is zero, negative,
infinite or longer than MAX_WINDOW, is refused when the rules are loaded.
"""

from __future__ import annotations

import math
import re

MAX_WINDOW_SECONDS = 31 * 86400.0
_UNITS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60, "minutes": 60,
          "h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400,
          "w": 604800, "week": 604800, "weeks": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
_UNBOUNDED = {"inf", "infinity", "unbounded", "none", "null", "forever", "all", "any", "-1"}
BOUNDED_HINT = "windows are always bounded: give a duration such as 90s, 30m, 2h or 7d (at most 31d)"


def parse_duration(value: object) -> float:
    """Seconds in a duration: a number of seconds, or `<number><unit>` with unit s, m, h, d or w."""
    if value is None or isinstance(value, bool):
        raise ValueError(f"a window is required; {BOUNDED_HINT}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        if text.lower() in _UNBOUNDED:
            raise ValueError(f"'{text}' is an unbounded window; {BOUNDED_HINT}")
        match = _DURATION.match(text)
        if not match or match.group(2).lower() not in ({""} | set(_UNITS)):
            raise ValueError(f"'{text}' is not a duration; {BOUNDED_HINT}")
        seconds = float(match.group(1)) * _UNITS.get(match.group(2).lower(), 1)
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"an infinite window is unbounded; {BOUNDED_HINT}")
    if seconds <= 0:
        raise ValueError(f"a window must be longer than zero; {BOUNDED_HINT}")
    if seconds > MAX_WINDOW_SECONDS:
        raise ValueError(f"{format_duration(seconds)} is longer than the longest window (31 days); {BOUNDED_HINT}")
    return seconds


def short_duration(seconds: float) -> str:
    """The compact form used in rule files: `30m`, `2h`, `7d`, `90s`."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def format_duration(seconds: float) -> str:
    """A person's reading of a length of time: `45 seconds`, `12 minutes`, `1 hour 5 minutes`, `3 days`."""
    seconds = abs(seconds)
    if seconds < 60:
        value = round(seconds, 1)
        return f"{value:g} second{'s' if value != 1 else ''}"
    parts = []
    remaining = int(round(seconds))
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
        if len(parts) == 2:
            break
    if not parts or (len(parts) == 1 and remaining and seconds < 3600):
        if remaining:
            parts.append(f"{remaining} second{'s' if remaining != 1 else ''}")
    return " ".join(parts[:2])


def format_delta(seconds: float) -> str:
    """Signed reading of related-minus-event: `16 minutes after`, `2 hours before`, `at the same time`."""
    if seconds == 0:
        return "at the same time"
    return f"{format_duration(seconds)} {'after' if seconds > 0 else 'before'}"
