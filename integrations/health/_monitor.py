"""The health monitor: breakers, rate limiters and figures for many (tenant, plugin) pairs.

One monitor lives in the runner (or any process that calls services). `guard(tenant, plugin)`
hands out the object that wraps that integration's calls; the monitor keeps what the calls
taught it and `save()`s it to the store, where `integrations health` (another process) reads it.
Nothing is shared between pairs: one tenant's failing or throttled integration never opens
another's breaker or spends another's quota.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from integrations.health._breaker import CLOSED, OPEN, BreakerConfig, BreakerTransition, CircuitBreaker
from integrations.health._clock import Clock, SystemClock
from integrations.health._figures import HealthFigures, integration_state
from integrations.health._guard import Guard
from integrations.health._ratelimit import RateLimitConfig, RateLimiter
from integrations.health._retry import RetryPolicy

log = logging.getLogger(__name__)

Pair = tuple[str, str]
RateLimitTable = Mapping[Any, RateLimitConfig | Mapping[str, Any] | None]


@dataclass
class _Settings:
    retry: RetryPolicy | None = None
    breaker: BreakerConfig | None = None
    rate_limit: RateLimitConfig | None = None


@dataclass
class _Entry:
    guard: Guard
    breaker: CircuitBreaker
    limiter: RateLimiter
    figures: HealthFigures
    last_transition: dict[str, Any] | None = None


class HealthMonitor:
    """Owns the health machinery of every (tenant, plugin) pair it is asked about."""

    def __init__(self, *, clock: Clock | None = None, retry: RetryPolicy | None = None,
                 breaker: BreakerConfig | None = None, rate_limits: RateLimitTable | None = None,
                 latency_window: int = 200, listener: Callable[[BreakerTransition], None] | None = None) -> None:
        """`rate_limits` maps a plugin name, or a (tenant, plugin) pair, to its limits; pairs win."""
        self.clock = clock or SystemClock()
        self.retry = retry or RetryPolicy()
        self.breaker_config = breaker or BreakerConfig()
        self.latency_window = latency_window
        self.listener = listener
        self._rate_limits = {key: RateLimitConfig.from_config(value) for key, value in (rate_limits or {}).items()}
        self._settings: dict[Pair, _Settings] = {}
        self._entries: dict[Pair, _Entry] = {}
        self._restored: dict[Pair, Mapping[str, Any]] = {}   # saved by an earlier process, not yet used
        self._kept: dict[Pair, tuple[HealthFigures, int, dict[str, Any] | None]] = {}  # across configure()
        self._lock = threading.RLock()

    # -- configuration ---------------------------------------------------------------------------

    def configure(self, tenant: str, plugin: str, *, retry: RetryPolicy | None = None,
                  breaker: BreakerConfig | None = None,
                  rate_limit: RateLimitConfig | Mapping[str, Any] | None = None) -> None:
        """Settings for one pair (e.g. from its plugin configuration); resets its breaker and limiter."""
        with self._lock:
            settings = self._settings.setdefault((tenant, plugin), _Settings())
            if retry is not None:
                settings.retry = retry
            if breaker is not None:
                settings.breaker = breaker
            if rate_limit is not None:
                settings.rate_limit = RateLimitConfig.from_config(rate_limit)
            entry = self._entries.pop((tenant, plugin), None)
            if entry is not None:  # keep what was learnt; rebuild the machinery with the new settings
                self._kept[(tenant, plugin)] = (entry.figures, entry.breaker.opens, entry.last_transition)
                self._entry(tenant, plugin)

    def rate_limit_for(self, tenant: str, plugin: str) -> RateLimitConfig:
        settings = self._settings.get((tenant, plugin))
        if settings is not None and settings.rate_limit is not None:
            return settings.rate_limit
        for key in ((tenant, plugin), f"{tenant}/{plugin}", plugin):
            if key in self._rate_limits:
                return self._rate_limits[key]
        return RateLimitConfig()

    # -- the machinery of one pair ---------------------------------------------------------------

    def guard(self, tenant: str, plugin: str) -> Guard:
        """What wraps every call of `plugin` for `tenant` (breaker + rate limit + retry + figures)."""
        return self._entry(tenant, plugin).guard

    def breaker(self, tenant: str, plugin: str) -> CircuitBreaker:
        return self._entry(tenant, plugin).breaker

    def limiter(self, tenant: str, plugin: str) -> RateLimiter:
        return self._entry(tenant, plugin).limiter

    def figures(self, tenant: str, plugin: str) -> HealthFigures:
        return self._entry(tenant, plugin).figures

    def pairs(self) -> list[Pair]:
        with self._lock:
            return sorted(self._entries)

    def _entry(self, tenant: str, plugin: str) -> _Entry:
        key = (tenant, plugin)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                return entry
            settings = self._settings.get(key, _Settings())
            breaker = CircuitBreaker(settings.breaker or self.breaker_config, clock=self.clock, tenant=tenant,
                                     plugin=plugin, listener=self._on_transition)
            last_transition = None
            if key in self._kept:
                figures, breaker.opens, last_transition = self._kept.pop(key)
            else:
                figures = HealthFigures(tenant, plugin, latency_window=self.latency_window)
            saved = self._restored.pop(key, None)
            if saved is not None:
                figures.restore(saved)
                if isinstance(saved.get("breaker_opens"), int):
                    breaker.opens = saved["breaker_opens"]
            limiter = RateLimiter(self.rate_limit_for(tenant, plugin), clock=self.clock, name=f"{tenant}/{plugin}")
            guard = Guard(tenant, plugin, policy=settings.retry or self.retry, clock=self.clock, breaker=breaker,
                          limiter=limiter, figures=figures)
            entry = _Entry(guard, breaker, limiter, figures, last_transition)
            self._entries[key] = entry
            return entry

    def _on_transition(self, transition: BreakerTransition) -> None:
        key = (transition.tenant or "", transition.plugin or "")
        entry = self._entries.get(key)
        if entry is not None:
            entry.last_transition = {"from": transition.old, "to": transition.new, "at": transition.wall.isoformat()}
        level = logging.WARNING if transition.new == OPEN else logging.INFO
        log.log(level, "breaker of %s (tenant %s): %s -> %s", transition.plugin, transition.tenant,
                transition.old, transition.new)
        if self.listener is not None:
            self.listener(transition)

    # -- figures out -----------------------------------------------------------------------------

    def report(self, tenant: str, plugin: str) -> dict[str, Any]:
        """Everything known about one pair, JSON-ready: figures, breaker, state, limits."""
        entry = self._entry(tenant, plugin)
        out = entry.figures.to_dict()
        breaker = entry.breaker.snapshot()
        out.update(breaker)
        out["state"] = integration_state(
            breaker_state=str(breaker["breaker_state"]), consecutive_failures=out["consecutive_failures"],
            recent_failures=int(breaker["breaker_recent_failures"] or 0), last_error_class=out["last_error_class"])
        out["breaker_last_transition"] = entry.last_transition
        limits = entry.limiter.config
        out["rate_limit"] = {"requests_per_second": limits.requests_per_second,
                             "requests_per_hour": limits.requests_per_hour}
        out["rate_limit_waited_s"] = round(entry.limiter.waited, 3)
        out["updated_at"] = self.clock.wall().isoformat()
        return out

    def snapshot(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Reports of every pair seen (of one tenant, when given), sorted by tenant and plugin."""
        return [self.report(t, p) for t, p in self.pairs() if tenant is None or t == tenant]

    def save(self, store: Any, tenant: str | None = None) -> int:
        """Write every pair's report to the store's `integration_health` table; returns how many."""
        from integrations.store._health import save_health_many

        reports = self.snapshot(tenant)
        save_health_many(store, reports)
        return len(reports)

    def restore(self, store: Any, tenant: str | None = None) -> int:
        """Carry counts over from the figures a previous process saved (breakers start closed)."""
        from integrations.store._health import load_health

        rows = load_health(store, tenant=tenant)
        with self._lock:
            for row in rows:
                key = (row["tenant"], row["plugin"])
                entry = self._entries.get(key)
                if entry is not None:
                    entry.figures.restore(row)
                else:
                    self._restored[key] = row
        return len(rows)

    def states(self, pairs: Iterable[Pair] | None = None) -> dict[Pair, str]:
        """The integration state of each pair: healthy, degraded, down or needs_credentials."""
        return {pair: self.report(*pair)["state"] for pair in (pairs if pairs is not None else self.pairs())}

    def is_available(self, tenant: str, plugin: str) -> bool:
        """False while the pair's breaker is open: callers can skip it and degrade gracefully."""
        return self.breaker(tenant, plugin).state != OPEN

    def __repr__(self) -> str:
        closed = sum(1 for e in self._entries.values() if e.breaker.state == CLOSED)
        return f"HealthMonitor(pairs={len(self._entries)}, closed={closed})"
