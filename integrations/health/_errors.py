"""The errors the health monitor raises, in the project's one hierarchy.

    IntegrationsError
    ├── CircuitOpenError        (the breaker is open: failing fast, says when it will try again)
    ├── RetriesExhaustedError   (a retryable failure outlasted the retry policy; dead-letter the work)
    ├── PluginError
    │   └── RequestFailedError  (the service refused the request for good: 4xx, validation)
    └── CredentialError
        └── NeedsCredentialsError (the service refused the credential: 401, 403, AWS AccessDenied...)

Each names its tenant and plugin. The live cause stays on `__cause__` (and `cause`) for the
caller; only plain, secret-free facts about it (`cause_type`, `cause_message`, `status`) are
fields, so the errors pickle across process pools and print safely.
"""

from __future__ import annotations

from typing import Any

from integrations.errors import CredentialError, IntegrationsError, PluginError


class _HealthErrorMixin:
    """Shared fields: which integration, and a safe summary of the cause."""

    tenant: str | None = None
    plugin: str | None = None
    status: int | None = None
    cause_type: str | None = None
    cause_message: str | None = None

    def _set_common(self, tenant: str | None, plugin: str | None, cause: BaseException | None,
                    status: int | None) -> None:
        self.tenant = tenant
        self.plugin = plugin
        self.status = status
        if cause is not None:
            from integrations.health._classify import safe_error_message

            self.cause_type = type(cause).__name__
            self.cause_message = safe_error_message(cause)
            self.__cause__ = cause  # type: ignore[attr-defined]

    @property
    def cause(self) -> BaseException | None:
        """The exception behind this one, when still at hand (not kept across pickling)."""
        return self.__cause__  # type: ignore[attr-defined]

    def attrs(self) -> dict[str, Any]:
        out = super().attrs()  # type: ignore[misc]
        for name in ("tenant", "plugin", "status", "cause_type", "cause_message"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def _who(tenant: str | None, plugin: str | None) -> str:
    if plugin and tenant:
        return f"{plugin} (tenant {tenant})"
    return plugin or tenant or "the integration"


class CircuitOpenError(_HealthErrorMixin, IntegrationsError):
    """The breaker for (tenant, plugin) is open, or its half-open trial calls are all taken."""

    hint = "the service looks unavailable; `integrations health` shows the breaker, which retries by itself"

    def __init__(self, tenant: str | None, plugin: str | None, *, retry_in: float, retry_at: str | None = None,
                 half_open: bool = False, **place: Any) -> None:
        when = f"next try in {retry_in:.1f}s" + (f" (at {retry_at})" if retry_at else "")
        why = ("half-open, all trial calls are in flight" if half_open
               else "circuit open after repeated failures")
        super().__init__(f"{_who(tenant, plugin)} is failing fast: {why}; {when}", **place)
        self._set_common(tenant, plugin, None, None)
        self.retry_in = retry_in
        self.retry_at = retry_at
        self.half_open = half_open

    def attrs(self) -> dict[str, Any]:
        out = super().attrs()
        out["retry_in"] = self.retry_in
        if self.retry_at:
            out["retry_at"] = self.retry_at
        return out


class RetriesExhaustedError(_HealthErrorMixin, IntegrationsError):
    """A retryable failure persisted through every attempt (or the deadline); the work goes to dead letters."""

    hint = "the runner keeps the request as a dead letter of kind 'fetch'; `integrations dlq` lists and replays it"

    def __init__(self, tenant: str | None, plugin: str | None, *, attempts: int, cause: BaseException | None,
                 elapsed: float | None = None, status: int | None = None, **place: Any) -> None:
        self._set_common(tenant, plugin, cause, status)
        took = f" over {elapsed:.1f}s" if elapsed is not None else ""
        what = f": {self.cause_message}" if self.cause_message else ""
        super().__init__(f"{_who(tenant, plugin)}: gave up after {attempts} attempt(s){took}{what}", **place)
        self.attempts = attempts
        self.elapsed = elapsed

    def attrs(self) -> dict[str, Any]:
        out = super().attrs()
        out["attempts"] = self.attempts
        return out


class RequestFailedError(_HealthErrorMixin, PluginError):
    """The service refused the request for good (a 4xx other than auth, a validation error): no retry helps."""

    def __init__(self, tenant: str | None, plugin: str | None, *, cause: BaseException, status: int | None = None,
                 **place: Any) -> None:
        self._set_common(tenant, plugin, cause, status)
        super().__init__(f"{_who(tenant, plugin)}: request refused: {self.cause_message}", **place)


class NeedsCredentialsError(_HealthErrorMixin, CredentialError):
    """The service refused the credential (401, a 403 that is no rate limit, AWS AccessDenied/ExpiredToken...)."""

    def __init__(self, tenant: str | None, plugin: str | None, *, cause: BaseException | None = None,
                 status: int | None = None, **place: Any) -> None:
        self._set_common(tenant, plugin, cause, status)
        what = f": {self.cause_message}" if self.cause_message else ""
        super().__init__(f"{_who(tenant, plugin)} refused the credential{what}", **place)
        self.hint = ("renew or replace the credential (`integrations credentials set` or `rotate`), "
                     "then check it with `integrations credentials test`")
