"""AWS CloudWatch: metric data, log events, CloudTrail records and alarm state changes.

    authenticate   the tenant's `aws_access_keys` or `aws_assume_role` credential -> a boto3 session
                   (assumed-role keys renew themselves) -> clients for logs, cloudwatch and sts;
                   STS GetCallerIdentity proves them and names the account the envelopes carry
    fetch_data     metric_data    GetMetricData for the configured queries
                   log_events     FilterLogEvents over the configured log groups
                   cloudtrail     FilterLogEvents over the log groups marked `cloudtrail: true`
                   alarm_history  DescribeAlarms + DescribeAlarmHistory + ListTagsForResource
                   (alarm_state_change is pushed by EventBridge or a Lambda alarm action: webhook
                   or samples mode only)

Every call goes through the integration's health guard (see `_api.py`). The mappings in
mappings/cloudwatch/ turn the records into events; docs/cloudwatch.md is the guide.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from integrations.credentials import AwsAccessKeysCredential, AwsAssumeRoleCredential, provider_for
from integrations.errors import CredentialError, PluginError
from integrations.plugins._interface import (
    AuthResult,
    DataRequest,
    HealthStatus,
    IntegrationPlugin,
    Page,
    PluginConfiguration,
    PluginCredentials,
)
from integrations.plugins.cloudwatch._api import AwsApi
from integrations.plugins.cloudwatch._polling import PollWindow, alarm_history_pages, log_pages, metric_pages
from integrations.plugins.cloudwatch._settings import CloudWatchSettings

PUSHED_SOURCES = ("alarm_state_change",)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class CloudWatchPlugin(IntegrationPlugin):
    """Metrics, logs (with CloudTrail records) and alarms from AWS CloudWatch."""

    name = "cloudwatch"
    version = "0.2.0"
    description = "AWS CloudWatch metrics, logs, CloudTrail records and alarms as system and security events"
    author = "Integrations workbench contributors"
    supported_events = ("metric", "log", "audit", "alarm")
    sources = ("metric_data", "log_events", "cloudtrail", "alarm_history", "alarm_state_change")
    required_credentials = ("aws_access_keys", "aws_assume_role")
    dependencies = ("boto3>=1.34",)
    settings_model = CloudWatchSettings

    #: the time windows are measured against this (tests may replace it)
    clock: Callable[[], datetime] = staticmethod(utcnow)

    def __init__(self) -> None:
        super().__init__()
        self.api: AwsApi | None = None
        self.account_id: str | None = None
        self.caller_arn: str | None = None

    @property
    def cw_settings(self) -> CloudWatchSettings:
        if not isinstance(self.settings, CloudWatchSettings):
            raise PluginError("the cloudwatch plugin was not initialized with its settings")
        return self.settings

    async def initialize(self, config: PluginConfiguration) -> None:
        self.config = config
        self.api = None
        self.account_id = self.caller_arn = None

    async def authenticate(self, credentials: PluginCredentials) -> AuthResult:
        credential = _aws_credential(credentials)
        if credential is None:
            return AuthResult(ok=False, needs_credentials=True,
                              message="no AWS credential: store an aws_access_keys or aws_assume_role credential "
                                      "and name it under `credentials:` in the tenant file")
        settings = self.cw_settings
        sts_endpoint = None
        if isinstance(credential, AwsAssumeRoleCredential):
            sts_endpoint = credential.sts_endpoint_url or settings.endpoint_url
        provider = provider_for(credential, sts_endpoint_url=sts_endpoint)
        api = await asyncio.to_thread(lambda: AwsApi.connect(provider.session(), settings, self.guard))
        try:
            identity = await api.call("sts", "get_caller_identity")
        except CredentialError as err:  # NeedsCredentialsError (AccessDenied, ExpiredToken...) or AssumeRole refused
            api.close()
            return AuthResult(ok=False, needs_credentials=True, message=err.message)
        except BaseException:
            api.close()
            raise
        self.api, self.account_id, self.caller_arn = api, identity.get("Account"), identity.get("Arn")
        return AuthResult(ok=True, message=f"AWS account {self.account_id} as {self.caller_arn}",
                          expires_at=getattr(provider, "expires_at", None))

    async def fetch_data(self, request: DataRequest) -> AsyncIterator[Page]:
        if request.source in PUSHED_SOURCES:
            raise PluginError(f"source '{request.source}' is pushed by AWS (EventBridge or a Lambda alarm action), "
                              "not polled", field="sources",
                              hint="give it mode webhook or samples, and poll alarm_history for the same changes")
        pollers = {"metric_data": metric_pages, "log_events": log_pages, "cloudtrail": log_pages,
                   "alarm_history": alarm_history_pages}
        poller = pollers.get(request.source)
        if poller is None:
            raise PluginError(f"the cloudwatch plugin has no source '{request.source}'", field="sources",
                              hint="sources: " + ", ".join(self.sources))
        if self.api is None:
            raise PluginError("the cloudwatch plugin is not authenticated")
        settings = self.cw_settings
        until = request.until or self.clock()
        since = request.since or until - timedelta(minutes=settings.lookback_minutes)
        window = PollWindow(api=self.api, settings=settings, account_id=self.account_id, since=since, until=until,
                            backfill=request.since is not None)
        async for page in poller(window, request.source, dict(request.watermarks)):
            yield page

    async def health_check(self) -> HealthStatus:
        if self.api is None:
            return HealthStatus(healthy=False, message="not authenticated")
        identity = await self.api.call("sts", "get_caller_identity")
        return HealthStatus(healthy=True, message=f"AWS account {identity.get('Account')}",
                            details={"region": self.cw_settings.region, "endpoint_url": self.cw_settings.endpoint_url})

    async def shutdown(self) -> None:
        if self.api is not None:
            self.api.close()
        self.api = None


def _aws_credential(credentials: PluginCredentials) -> AwsAccessKeysCredential | AwsAssumeRoleCredential | None:
    """The AWS credential among the tenant's roles (the first one, by role name)."""
    for role in sorted(credentials.values):
        value: Any = credentials.values[role]
        if isinstance(value, (AwsAccessKeysCredential, AwsAssumeRoleCredential)):
            return value
    return None
