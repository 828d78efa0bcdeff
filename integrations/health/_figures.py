"""Health figures of one (tenant, plugin): what its calls did, and the state that follows.

Counts run since the figures were made (or restored from the store); latency percentiles are
over a bounded window of the most recent calls, linear between ranks (the method numpy calls
"linear", via `statistics.quantiles(..., method="inclusive")`). The last error keeps its safe
message only. `integration_state()` turns figures plus breaker state into what people read:

    needs_credentials   the latest failure was AUTH and nothing has succeeded since
    down                the breaker is open
    degraded            the breaker is half-open, or there were recent failures
    healthy             otherwise
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from integrations.health._breaker import HALF_OPEN, OPEN
from integrations.health._classify import ErrorClass, safe_error_message, utc_iso

HEALTHY = "healthy"
DEGRADED = "degraded"
DOWN = "down"
NEEDS_CREDENTIALS = "needs_credentials"
INTEGRATION_STATES = (HEALTHY, DEGRADED, DOWN, NEEDS_CREDENTIALS)


def percentile(values: Sequence[float], p: int) -> float | None:
    """The p-th percentile (whole p, 0-100), linear between closest ranks; None for no values."""
    if not 0 <= p <= 100 or int(p) != p:
        raise ValueError(f"percentile must be a whole number from 0 to 100, not {p}")
    if not values:
        return None
    if len(values) == 1 or p == 0:
        return float(min(values))
    if p == 100:
        return float(max(values))
    return float(statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1])


def integration_state(*, breaker_state: str, consecutive_failures: int, recent_failures: int = 0,
                      last_error_class: str | None = None) -> str:
    """The one word a person reads first; see the module docstring for the rules."""
    if last_error_class == ErrorClass.AUTH.value and consecutive_failures > 0:
        return NEEDS_CREDENTIALS
    if breaker_state == OPEN:
        return DOWN
    if breaker_state == HALF_OPEN or consecutive_failures > 0 or recent_failures > 0:
        return DEGRADED
    return HEALTHY


class HealthFigures:
    """Counters and recent latencies of one (tenant, plugin). Thread-safe."""

    def __init__(self, tenant: str, plugin: str, *, latency_window: int = 200) -> None:
        if latency_window < 1:
            raise ValueError("latency_window must be at least 1")
        self.tenant = tenant
        self.plugin = plugin
        self._lock = threading.Lock()
        self.calls = 0
        self.successes = 0
        self.failures = 0
        self.consecutive_failures = 0
        self.rejected = 0                     # calls refused by an open breaker (never sent)
        self.latencies_ms: deque[float] = deque(maxlen=latency_window)
        self.last_success: datetime | None = None
        self.last_failure: datetime | None = None
        self.last_error: str | None = None
        self.last_error_class: str | None = None
        self.failures_by_class: dict[str, int] = {}

    def record_success(self, latency_s: float, at: datetime) -> None:
        with self._lock:
            self.calls += 1
            self.successes += 1
            self.consecutive_failures = 0
            self.latencies_ms.append(latency_s * 1000.0)
            self.last_success = at

    def record_failure(self, latency_s: float, at: datetime, error: BaseException, error_class: ErrorClass) -> None:
        with self._lock:
            self.calls += 1
            self.failures += 1
            self.consecutive_failures += 1
            self.latencies_ms.append(latency_s * 1000.0)
            self.last_failure = at
            self.last_error = safe_error_message(error)
            self.last_error_class = error_class.value
            self.failures_by_class[error_class.value] = self.failures_by_class.get(error_class.value, 0) + 1

    def record_rejected(self) -> None:
        with self._lock:
            self.rejected += 1

    def to_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready values (dates as ISO 8601 UTC, latencies in ms)."""
        with self._lock:
            latencies = list(self.latencies_ms)
            return {
                "tenant": self.tenant, "plugin": self.plugin,
                "calls": self.calls, "successes": self.successes, "failures": self.failures,
                "consecutive_failures": self.consecutive_failures, "rejected": self.rejected,
                "failures_by_class": dict(self.failures_by_class),
                "latency_p50_ms": _round(percentile(latencies, 50)),
                "latency_p95_ms": _round(percentile(latencies, 95)),
                "latency_samples": len(latencies),
                "last_success": utc_iso(self.last_success), "last_failure": utc_iso(self.last_failure),
                "last_error": self.last_error, "last_error_class": self.last_error_class,
            }

    def restore(self, saved: Mapping[str, Any]) -> None:
        """Carry counts and last times over from figures saved by an earlier process."""
        with self._lock:
            for name in ("calls", "successes", "failures", "consecutive_failures", "rejected"):
                value = saved.get(name)
                if isinstance(value, int):
                    setattr(self, name, value)
            self.failures_by_class = {str(k): int(v) for k, v in (saved.get("failures_by_class") or {}).items()}
            self.last_success = _parse_dt(saved.get("last_success"))
            self.last_failure = _parse_dt(saved.get("last_failure"))
            self.last_error = saved.get("last_error")
            self.last_error_class = saved.get("last_error_class")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _parse_dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None
