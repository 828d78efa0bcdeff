"""AWS CloudWatch: metric data, log events, CloudTrail records and alarm state changes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import Field

from integrations.errors import PluginError
from integrations.plugins._interface import (
    AuthResult,
    DataRequest,
    HealthStatus,
    IntegrationPlugin,
    Page,
    PluginConfiguration,
    PluginCredentials,
    PluginSettings,
)


class CloudWatchSettings(PluginSettings):
    region: str = Field(default="us-east-1")
    endpoint_url: str | None = Field(default=None, description="for emulators and VPC endpoints")
    log_groups: list[str] = Field(default_factory=list)


class CloudWatchPlugin(IntegrationPlugin):
    """Metrics, logs and alarms from AWS CloudWatch."""

    name = "cloudwatch"
    version = "0.1.0"
    description = "AWS CloudWatch metrics, logs, CloudTrail records and alarms as system and security events"
    author = "Integrations workbench contributors"
    supported_events = ("metric", "log", "audit", "alarm")
    sources = ("metric_data", "log_events", "cloudtrail", "alarm_history", "alarm_state_change")
    required_credentials = ("aws_access_keys", "aws_assume_role")
    dependencies = ("boto3>=1.34",)
    settings_model = CloudWatchSettings

    async def initialize(self, config: PluginConfiguration) -> None:
        self.config = config

    async def authenticate(self, credentials: PluginCredentials) -> AuthResult:
        if not credentials.values:
            return AuthResult(ok=False, message="no AWS credential configured", needs_credentials=True)
        return AuthResult(ok=True)

    async def fetch_data(self, request: DataRequest) -> AsyncIterator[Page]:
        raise PluginError("CloudWatch polling is not available yet; use samples sources")
        yield  # pragma: no cover

    async def health_check(self) -> HealthStatus:
        return HealthStatus(healthy=True, message="configured")

    async def shutdown(self) -> None:
        return None
