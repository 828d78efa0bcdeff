"""Where the receiver gets each tenant's webhook secret.

The app takes any `SecretLookup` (tenant id -> secret bytes, or None when the tenant has none), so
the caller chooses the source: environment variables, the credential manager, a dict in tests.
A tenant without a secret is unknown to the receiver; an empty secret counts as none, since anyone
could sign with it.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Mapping

SecretLookup = Callable[[str], "bytes | None"]

SECRET_ENV_PREFIX = "INTEGRATIONS_WEBHOOK_SECRET_"  # GitHub's (the first webhook sender)
CLOUDWATCH_SECRET_ENV_PREFIX = "INTEGRATIONS_CLOUDWATCH_WEBHOOK_SECRET_"  # the EventBridge connection's API key


def secret_env_name(tenant_id: str, prefix: str = SECRET_ENV_PREFIX) -> str:
    """`acme-prod` -> `INTEGRATIONS_WEBHOOK_SECRET_ACME_PROD` (upper case, other characters to `_`)."""
    return prefix + re.sub(r"[^A-Z0-9]", "_", tenant_id.upper())


def env_secret_lookup(environ: Mapping[str, str] | None = None, *, prefix: str = SECRET_ENV_PREFIX) -> SecretLookup:
    """Secrets from `<prefix><TENANT>` (read at each call unless `environ` is given)."""

    def lookup(tenant_id: str) -> bytes | None:
        env = os.environ if environ is None else environ
        value = env.get(secret_env_name(tenant_id, prefix))
        return value.encode("utf-8") if value else None

    return lookup


def first_secret(*lookups: SecretLookup) -> SecretLookup:
    """The first secret any of `lookups` has for the tenant, asked in order."""

    def lookup(tenant_id: str) -> bytes | None:
        for one in lookups:
            secret = one(tenant_id)
            if secret:
                return secret
        return None

    return lookup


def cached_secret(lookup: SecretLookup, ttl_seconds: float = 60.0, *, max_entries: int = 10_000,
                  clock: Callable[[], float] = time.monotonic) -> SecretLookup:
    """Remember answers (found or not) for `ttl_seconds`, so a slow source is not asked per delivery.

    A rotated or newly added secret is picked up within `ttl_seconds`. When the source fails (say
    the credential store is busy), the last answer is used again, so a short outage of the source
    does not turn away deliveries. At most `max_entries` answers are kept, so probing random tenant
    names cannot grow the cache without bound.
    """
    answers: dict[str, tuple[float, bytes | None]] = {}
    lock = threading.Lock()

    def cached(tenant_id: str) -> bytes | None:
        now = clock()
        with lock:
            hit = answers.get(tenant_id)
        if hit is not None and now - hit[0] < ttl_seconds:
            return hit[1]
        try:
            secret = lookup(tenant_id)
        except Exception:
            if hit is not None:
                return hit[1]
            raise
        with lock:
            if len(answers) >= max_entries:
                answers.clear()
            answers[tenant_id] = (now, secret)
        return secret

    return cached
