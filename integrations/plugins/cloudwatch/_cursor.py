"""Cursors: how far a log group, a metric query or an alarm's history has been read.

AWS filters these APIs by time, inclusively (`startTime`, `StartTime`, `StartDate`), so the next run
asks again from the last time it saw and must not take twice what sat exactly at that time. A cursor
is that time plus the ids already taken at it:

    {"at": "2024-05-01T12:00:00.123Z", "seen": ["3857...", "3858..."]}

It is stored as a watermark (text) in the same transaction as the events it accounts for, so a run
that fails never moves it past what was stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from integrations.errors import PluginError


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware (or UTC-naive) datetime."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(round(moment.timestamp() * 1000))


def from_ms(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc)


def iso_ms(millis: int) -> str:
    """`2024-05-01T12:00:00.123Z`: readable in `integrations` output, exact to the millisecond."""
    return from_ms(millis).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Cursor:
    """The last time read (epoch ms) and the keys of the items already taken at exactly that time."""

    at_ms: int
    seen: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, text: str | None, *, key: str = "") -> "Cursor | None":
        """The cursor stored as `text`, or None when there is none yet."""
        if not text:
            return None
        try:
            data = json.loads(text)
            at = datetime.fromisoformat(str(data["at"]).replace("Z", "+00:00"))
            return cls(to_ms(at), frozenset(str(s) for s in data.get("seen", [])))
        except (ValueError, KeyError, TypeError):
            raise PluginError(f"the cloudwatch watermark '{key}' is unreadable: {text[:120]!r}", field=key,
                              hint="it is written by the plugin; delete the watermark to read from the lookback again"
                              ) from None

    def to_text(self) -> str:
        return json.dumps({"at": iso_ms(self.at_ms), "seen": sorted(self.seen)}, separators=(",", ":"))

    def admits(self, at_ms: int, key: str) -> bool:
        """Whether an item at `at_ms` with `key` is new to this cursor."""
        return at_ms > self.at_ms or (at_ms == self.at_ms and key not in self.seen)


def advance(cursor: Cursor | None, items: Iterable[tuple[int, str]]) -> Cursor | None:
    """The cursor after taking `items` ((epoch ms, key) pairs, in any order)."""
    latest = cursor
    for at_ms, key in items:
        if latest is None or at_ms > latest.at_ms:
            latest = Cursor(at_ms, frozenset({key}))
        elif at_ms == latest.at_ms and key not in latest.seen:
            latest = Cursor(at_ms, latest.seen | {key})
    return latest
