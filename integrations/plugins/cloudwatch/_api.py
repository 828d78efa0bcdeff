"""The AWS calls the plugin makes: boto3 clients from the tenant's credential, each call guarded.

boto3 blocks, so every call runs in a worker thread (`asyncio.to_thread`) inside the health guard
(`await guard.acall(...)`): the integration's circuit breaker, rate limit, retries with back-off and
health figures apply to it, and the error classes (`integrations/health/_classify.py`) know AWS's
throttling codes (retried) and AccessDenied/ExpiredToken (the integration needs credentials).
botocore's own retries are turned off (`total_max_attempts=1`), so one policy decides, not two
stacked ones: with botocore's default (3 attempts, "legacy" or "standard" mode) each of our
attempts would itself be up to three requests, hidden from the breaker and the figures.
"""

from __future__ import annotations

import asyncio
from typing import Any

from botocore.config import Config

from integrations.plugins.cloudwatch._settings import CloudWatchSettings

SERVICES = ("logs", "cloudwatch", "sts")
USER_AGENT = "integrations-workbench/cloudwatch"


def client_config(settings: CloudWatchSettings) -> Config:
    """botocore settings: the tenant's region and time-outs, and no retries of botocore's own."""
    return Config(region_name=settings.region, connect_timeout=settings.connect_timeout,
                  read_timeout=settings.read_timeout, retries={"total_max_attempts": 1, "mode": "standard"},
                  user_agent_extra=USER_AGENT)


class AwsApi:
    """boto3 clients for logs, cloudwatch and sts, and one way to call them: `await api.call(...)`."""

    def __init__(self, clients: dict[str, Any], guard: Any = None) -> None:
        self.clients = clients
        self.guard = guard

    @classmethod
    def connect(cls, session: Any, settings: CloudWatchSettings, guard: Any = None) -> "AwsApi":
        """Clients from a boto3 session (blocking: loads service models; call it in a thread)."""
        config = client_config(settings)
        clients = {name: session.client(name, region_name=settings.region, endpoint_url=settings.endpoint_url,
                                        config=config)
                   for name in SERVICES}
        return cls(clients, guard)

    async def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        """`client.<operation>(**params)` in a thread, under the guard when there is one."""
        method = getattr(self.clients[service], operation)
        if self.guard is None:
            return await asyncio.to_thread(method, **params)
        return await self.guard.acall(asyncio.to_thread, method, **params)

    def close(self) -> None:
        for client in self.clients.values():
            close = getattr(client, "close", None)
            if close is not None:
                close()
