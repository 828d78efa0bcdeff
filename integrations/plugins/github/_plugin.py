"""GitHub: webhook payloads and REST polling become delivery events."""

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


class GitHubSettings(PluginSettings):
    base_url: str = Field(default="https://api.github.com", description="REST API root (GitHub Enterprise: https://HOST/api/v3)")
    repositories: list[str] = Field(default_factory=list, description="owner/name of each repository to poll")
    per_page: int = Field(default=100, ge=1, le=100)


class GitHubPlugin(IntegrationPlugin):
    """Commits, pull requests, deployments, releases and workflow runs from GitHub."""

    name = "github"
    version = "0.1.0"
    description = "GitHub webhooks and REST polling as delivery events"
    author = "Integrations workbench contributors"
    supported_events = ("commit", "pull_request", "deployment", "deployment_status", "release", "workflow_run")
    sources = ("push", "pull_request", "deployment", "deployment_status", "release", "workflow_run")
    required_credentials = ("github_pat", "github_app", "webhook_secret")
    settings_model = GitHubSettings

    async def initialize(self, config: PluginConfiguration) -> None:
        self.config = config

    async def authenticate(self, credentials: PluginCredentials) -> AuthResult:
        if not credentials.values:
            return AuthResult(ok=False, message="no GitHub credential configured", needs_credentials=True)
        return AuthResult(ok=True)

    async def fetch_data(self, request: DataRequest) -> AsyncIterator[Page]:
        raise PluginError("GitHub REST polling is not available yet; use webhook or samples sources")
        yield  # pragma: no cover  (makes this an async generator)

    async def health_check(self) -> HealthStatus:
        return HealthStatus(healthy=True, message="configured")

    async def shutdown(self) -> None:
        return None
