"""Client-side rate limits per (tenant, plugin), so one tenant never spends a shared quota.

The counting is pyrate-limiter's sliding-window log (`InMemoryBucket` with `Rate`s); the time is
ours: each request is stamped with the monitor's clock, and when the bucket is full we wait for
as long as the bucket says, through `clock.sleep` / `clock.asleep`. Acquiring therefore waits
instead of failing, and a fake clock makes a day of throttling testable in milliseconds.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pyrate_limiter import Duration, InMemoryBucket, Rate, RateItem

from integrations.errors import ConfigError
from integrations.health._clock import Clock, SystemClock


class RateLimitConfig(BaseModel):
    """A plugin's `rate_limits` setting: requests per second and/or per hour (unset: no limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    requests_per_second: float | None = Field(default=None, gt=0, alias="requestsPerSecond")
    requests_per_hour: int | None = Field(default=None, gt=0, alias="requestsPerHour")

    @classmethod
    def from_config(cls, value: "RateLimitConfig | Mapping[str, Any] | None") -> "RateLimitConfig":
        """Read a configuration mapping (snake_case or camelCase keys); errors name the field."""
        if value is None:
            return cls()
        if isinstance(value, RateLimitConfig):
            return value
        try:
            return cls.model_validate(dict(value))
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ())) or None
            raise ConfigError(f"rate limit setting: {first.get('msg')}", field=field,
                              hint="use requests_per_second (number > 0) and/or requests_per_hour (integer > 0)") from None

    @property
    def unlimited(self) -> bool:
        return self.requests_per_second is None and self.requests_per_hour is None

    def rates(self) -> list[Rate]:
        """pyrate-limiter rates, generous-before-tight; a limit the other one implies is dropped."""
        per_second: Rate | None = None
        if self.requests_per_second is not None:
            rps = self.requests_per_second
            per_second = Rate(int(rps), Duration.SECOND) if rps >= 1 else Rate(1, int(round(1000 / rps)))
        per_hour = Rate(self.requests_per_hour, Duration.HOUR) if self.requests_per_hour is not None else None
        if per_second is None or per_hour is None:
            return [r for r in (per_second, per_hour) if r is not None]
        if per_hour.limit <= per_second.limit:
            return [per_hour]             # the hourly cap bites before the per-second one can
        if per_hour.limit / per_hour.interval >= per_second.limit / per_second.interval:
            return [per_second]           # the per-second rate never lets an hour reach the cap
        return [per_second, per_hour]


class RateLimiter:
    """Waits (on the clock) until the next request of one (tenant, plugin) fits its limits."""

    def __init__(self, config: RateLimitConfig | Mapping[str, Any] | None = None, *, clock: Clock | None = None,
                 name: str = "requests") -> None:
        self.config = RateLimitConfig.from_config(config)
        self.clock = clock or SystemClock()
        self.name = name
        self._bucket = None if self.config.unlimited else InMemoryBucket(self.config.rates())
        self._lock = threading.Lock()
        self.waited = 0.0    # total seconds spent waiting
        self.acquired = 0

    def _try(self) -> float:
        """Take a slot now and return 0, or return the seconds to wait before trying again."""
        if self._bucket is None:
            self.acquired += 1
            return 0.0
        with self._lock:
            stamp = int(round(self.clock.now() * 1000))
            item = RateItem(self.name, stamp)
            if self._bucket.put(item):
                self._bucket.leak(stamp)
                self.acquired += 1
                return 0.0
            wait_ms = self._bucket.waiting(item)
        if wait_ms < 0:  # cannot ever fit: a configuration we reject up front, kept as a guard
            raise ConfigError(f"rate limit {self.config} can never admit a request")
        return max(wait_ms, 1) / 1000.0

    def acquire(self) -> float:
        """Block until a request may go; returns the seconds waited."""
        waited = 0.0
        while (wait := self._try()) > 0:
            self.clock.sleep(wait)
            waited += wait
        self.waited += waited
        return waited

    async def aacquire(self) -> float:
        """`acquire` for async code: waits with `clock.asleep`."""
        waited = 0.0
        while (wait := self._try()) > 0:
            await self.clock.asleep(wait)
            waited += wait
        self.waited += waited
        return waited

    def __repr__(self) -> str:
        return f"RateLimiter({self.config!r})"
