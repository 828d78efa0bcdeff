"""Time as the health monitor sees it: one seam, so back-off and cool-downs are testable.

Every breaker, retry policy and rate limiter takes a `Clock`. `SystemClock` is the real one;
`FakeClock` moves only when told to (or when something sleeps on it), so a test can run an
hour of cool-downs and Retry-After waits in microseconds and then read back every sleep.
`now()` is monotonic seconds for measuring intervals; `wall()` is the UTC date shown to people.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What the health monitor needs of time."""

    def now(self) -> float:
        """Monotonic seconds: only differences mean anything."""

    def wall(self) -> datetime:
        """The current UTC date and time (timezone-aware)."""

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for `seconds`."""

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for `seconds`."""


class SystemClock:
    """The real clock: `time.monotonic`, `datetime.now(UTC)`, `time.sleep`, `asyncio.sleep`."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


_EPOCH_2024 = datetime(2024, 1, 1, tzinfo=timezone.utc)


class FakeClock:
    """A clock that only moves when told to; sleeping advances it at once and is recorded.

    `sleeps` lists every sleep asked for, in order, so tests can check back-off bounds exactly.
    Wall time moves in step with monotonic time from `wall_start`.
    """

    def __init__(self, start: float = 1000.0, wall_start: datetime = _EPOCH_2024) -> None:
        if wall_start.tzinfo is None:
            raise ValueError("wall_start must be timezone-aware")
        self._start = float(start)
        self._now = float(start)
        self._wall_start = wall_start.astimezone(timezone.utc)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def wall(self) -> datetime:
        with self._lock:
            return self._wall_start + timedelta(seconds=self._now - self._start)

    def advance(self, seconds: float) -> None:
        """Move time forward without recording a sleep (a call taking time, say)."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        seconds = max(0.0, float(seconds))
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)  # still yield to the loop, as a real sleep would

    @property
    def elapsed(self) -> float:
        """Seconds since the clock was made."""
        return self.now() - self._start

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now():.3f}, sleeps={len(self.sleeps)})"
