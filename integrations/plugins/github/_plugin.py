"""GitHub: webhook payloads and REST polling become delivery events.

Webhook sources are named after the event GitHub sends (`push`, `pull_request`, `deployment`,
`deployment_status`, `release`, `workflow_run`): the receiver files deliveries under that name and
the run loop maps them. Polled sources are named after the REST resource (`commits`, `pulls`,
`deployments`, `deployment_statuses`, `releases`); `fetch_data` reads them (see `_polling`). Both
kinds of mapping give a fact the same external id, so a webhook and a poll of the same thing are
one event.

Credentials (by role, any role name): a `github_pat` (checked with `GET /user`) or a `github_app`
(installation tokens from `GitHubAppTokenProvider`, renewed before they expire; checked with
`GET /installation/repositories`). A `webhook_secret` is the receiver's and is ignored here.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from integrations.credentials import (
    GitHubAppCredential,
    GitHubAppTokenProvider,
    GitHubPatCredential,
    StaticTokenProvider,
)
from integrations.errors import CredentialError, PluginError
from integrations.health import NeedsCredentialsError
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
from integrations.plugins.github._client import GitHubClient
from integrations.plugins.github._polling import POLLED_SOURCES, Poller, PollWindow, Repository, parse_time
from integrations.plugins.github._reconcile import ReconcileReport, redeliver_failed

PolledResource = Literal["commits", "pulls", "deployments", "deployment_statuses", "releases"]
WEBHOOK_SOURCES = ("push", "pull_request", "deployment", "deployment_status", "release", "workflow_run")
_FULL_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_DEFAULT_API = "https://api.github.com"


def _check_full_name(value: str) -> str:
    if not _FULL_NAME.match(value):
        raise ValueError(f"'{value}' is not a repository full name like 'octo/app'")
    return value


class RepositorySettings(BaseModel):
    """One repository with its own choice of resources (or branch for commits)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="owner/name")
    resources: list[PolledResource] | None = Field(default=None, description="overrides settings.resources")
    branch: str | None = Field(default=None, description="commits of this branch (default: the default branch)")

    @field_validator("name")
    @classmethod
    def _full_name(cls, value: str) -> str:
        return _check_full_name(value)


class GitHubSettings(PluginSettings):
    base_url: str = Field(default=_DEFAULT_API,
                          description="REST API root (GitHub Enterprise Server: https://HOST/api/v3); "
                                      "when left out, the credential's base_url is used")
    web_url: str | None = Field(default=None, description="web root for links (default: derived from base_url)")
    repositories: list[str | RepositorySettings] = Field(default_factory=list,
                                                         description="owner/name of each repository to poll")
    resources: list[PolledResource] = Field(default_factory=lambda: list(POLLED_SOURCES),
                                            description="which polled sources apply to every repository")
    per_page: int = Field(default=100, ge=1, le=100)
    since: datetime | None = Field(default=None, description="where a repository's first poll starts")
    lookback_days: float = Field(default=30, gt=0, description="first poll start when `since` is not set")
    status_lookback_hours: float = Field(default=72, ge=0,
                                         description="deployments this much older than the watermark are still "
                                                     "checked for new statuses")
    app_installation_id: int | None = Field(default=None,
                                            description="installation whose webhook deliveries are reconciled "
                                                        "(default: the github_app credential's)")
    reconcile_window_hours: float = Field(default=24, gt=0, le=72,
                                          description="how far back failed deliveries are redelivered")
    request_timeout_seconds: float = Field(default=30, gt=0)

    @field_validator("repositories")
    @classmethod
    def _names(cls, value: list[str | RepositorySettings]) -> list[str | RepositorySettings]:
        for entry in value:
            if isinstance(entry, str):
                _check_full_name(entry)
        return value

    @field_validator("base_url", "web_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if value else value

    def repository_list(self) -> list[Repository]:
        out = []
        for entry in self.repositories:
            if isinstance(entry, str):
                out.append(Repository(entry, tuple(self.resources)))
            else:
                out.append(Repository(entry.name, tuple(entry.resources if entry.resources is not None
                                                        else self.resources), entry.branch))
        return out


def web_root(api_url: str) -> str:
    """Where people open what the API describes: github.com for api.github.com, HOST for HOST/api/v3."""
    url = api_url.rstrip("/")
    if url == _DEFAULT_API:
        return "https://github.com"
    if url.endswith("/api/v3"):
        return url[: -len("/api/v3")]
    return url


class GitHubPlugin(IntegrationPlugin):
    """Commits, pull requests, deployments, releases and workflow runs from GitHub."""

    name = "github"
    version = "0.1.0"
    description = "GitHub webhooks and REST polling as delivery events"
    author = "Integrations workbench contributors"
    supported_events = ("commit", "pull_request", "deployment", "deployment_status", "release", "workflow_run")
    sources = WEBHOOK_SOURCES + POLLED_SOURCES
    required_credentials = ("github_pat", "github_app", "webhook_secret")
    settings_model = GitHubSettings

    def __init__(self, *, transport: httpx.AsyncBaseTransport | None = None,
                 token_transport: httpx.BaseTransport | None = None,
                 token_clock: Callable[[], datetime] | None = None) -> None:
        """Seams for tests and proxies: `transport` carries REST calls, `token_transport` App token
        exchanges (default: the network), `token_clock` dates App JWTs and token renewals."""
        super().__init__()
        self.transport = transport
        self.token_transport = token_transport
        self.token_clock = token_clock
        self.client: GitHubClient | None = None
        self.app_provider: GitHubAppTokenProvider | None = None
        self.auth_kind: str | None = None
        self._token_http: httpx.Client | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def github_settings(self) -> GitHubSettings:
        if not isinstance(self.settings, GitHubSettings):
            settings = self.config.settings if self.config is not None else {}
            self.settings = GitHubSettings.model_validate(settings)
        return self.settings  # type: ignore[return-value]

    async def initialize(self, config: PluginConfiguration) -> None:
        self.config = config
        settings = self.github_settings
        await self._close()
        self.client = GitHubClient(settings.base_url, guard=self.guard, transport=self.transport,
                                   timeout=settings.request_timeout_seconds)

    async def authenticate(self, credentials: PluginCredentials) -> AuthResult:
        client = self._client()
        credential = _pick_credential(credentials)
        if credential is None:
            return AuthResult(ok=False, needs_credentials=True,
                              message="no github_pat or github_app credential among the roles "
                                      f"{sorted(credentials.values) or '[]'}")
        settings = self.github_settings
        base = settings.base_url if "base_url" in settings.model_fields_set else credential.base_url.rstrip("/")
        client.base_url = base
        self.app_provider = None
        if isinstance(credential, GitHubPatCredential):
            return await self._authenticate_pat(client, credential)
        return await self._authenticate_app(client, credential, base)

    async def _authenticate_pat(self, client: GitHubClient, credential: GitHubPatCredential) -> AuthResult:
        provider = StaticTokenProvider(credential.token)

        async def headers() -> dict[str, str]:
            return provider.headers()

        client.auth = headers
        try:
            user = await client.get_json("user")
        except NeedsCredentialsError as err:
            client.auth = None
            return AuthResult(ok=False, needs_credentials=True,
                              message=f"GitHub refused the personal access token ({err.cause_message})")
        self.auth_kind = "github_pat"
        login = user.get("login") if isinstance(user, dict) else None
        return AuthResult(ok=True, message=f"personal access token of {login or 'an unnamed user'}",
                          expires_at=credential.expires_at)

    async def _authenticate_app(self, client: GitHubClient, credential: GitHubAppCredential, base: str) -> AuthResult:
        if credential.base_url.rstrip("/") != base:
            credential = credential.model_copy(update={"base_url": base})
        if self._token_http is None:
            self._token_http = httpx.Client(transport=self.token_transport, timeout=15.0)
        if self.token_clock is not None:
            provider = GitHubAppTokenProvider(credential, http=self._token_http, clock=self.token_clock)
        else:
            provider = GitHubAppTokenProvider(credential, http=self._token_http)

        async def headers() -> dict[str, str]:
            return await asyncio.to_thread(provider.headers)  # renews the installation token when due

        try:
            token = await client.guard.acall(asyncio.to_thread, provider.token)
            client.auth = headers
            await client.get_json("installation/repositories", {"per_page": 1})
        except (NeedsCredentialsError, CredentialError) as err:
            client.auth = None
            detail = getattr(err, "cause_message", None) or err.message
            return AuthResult(ok=False, needs_credentials=True,
                              message=f"GitHub App {credential.app_id} installation {credential.installation_id}: "
                                      f"{detail}")
        self.app_provider = provider
        self.auth_kind = "github_app"
        return AuthResult(ok=True, expires_at=token.expires_at,
                          message=f"GitHub App {credential.app_id} installation {credential.installation_id}")

    async def fetch_data(self, request: DataRequest) -> AsyncIterator[Page]:
        client = self._client()
        settings = self.github_settings
        start = (parse_time(request.since) or settings.since
                 or datetime.now(timezone.utc) - timedelta(days=settings.lookback_days))
        window = PollWindow(start=parse_time(start) or start, until=parse_time(request.until),
                            status_lookback=timedelta(hours=settings.status_lookback_hours))
        poller = Poller(client, repositories=settings.repository_list(), request=request, window=window,
                        per_page=settings.per_page, web_url=settings.web_url or web_root(client.base_url))
        async for page in poller.pages():
            yield page

    async def health_check(self) -> HealthStatus:
        if self.client is None or self.client.auth is None:
            return HealthStatus(healthy=False, message="not authenticated")
        body = await self.client.get_json("rate_limit")  # free: it does not count against the limit
        core = ((body or {}).get("resources") or {}).get("core") or {}
        details: dict[str, Any] = {"auth": self.auth_kind, "base_url": self.client.base_url,
                                   "rate_limit": self.client.rate_limit.as_dict(), "core": core}
        remaining = core.get("remaining")
        return HealthStatus(healthy=True, details=details,
                            message=f"{remaining}/{core.get('limit')} requests left" if remaining is not None
                            else "reachable")

    async def shutdown(self) -> None:
        await self._close()

    # -- reconciliation ----------------------------------------------------------------------------

    async def reconcile(self, *, window: timedelta | None = None, now: datetime | None = None) -> ReconcileReport:
        """Redeliver the failed webhook deliveries of this tenant's App installation (see `_reconcile`).

        Needs a `github_app` credential and a successful `authenticate` first.
        """
        if self.app_provider is None:
            raise PluginError("reconciling webhook deliveries needs an authenticated github_app credential",
                              hint="GitHub lists deliveries only to the App itself; a personal access token "
                                   "cannot see them")
        client = self._client()
        settings = self.github_settings
        provider = self.app_provider
        since = (now or datetime.now(timezone.utc)) - (window or timedelta(hours=settings.reconcile_window_hours))

        async def app_auth() -> dict[str, str]:
            return {"Authorization": f"Bearer {provider.app_jwt()}"}

        installation = settings.app_installation_id or provider.credential.installation_id
        return await redeliver_failed(client, app_auth=app_auth, since=since, installation_id=installation)

    # -- helpers -----------------------------------------------------------------------------------

    def _client(self) -> GitHubClient:
        if self.client is None:
            raise PluginError("the GitHub plugin was not initialized", hint="call initialize(config) first")
        if self.guard is not None:
            self.client.guard = self.guard  # the framework may hand out a new guard between runs
        return self.client

    async def _close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None
        if self._token_http is not None:
            self._token_http.close()
            self._token_http = None
        self.app_provider = None


def _pick_credential(credentials: PluginCredentials) -> GitHubAppCredential | GitHubPatCredential | None:
    """The App credential when there is one (it can also reconcile deliveries), else the token."""
    values = list(credentials.values.values())
    for wanted in (GitHubAppCredential, GitHubPatCredential):
        for value in values:
            if isinstance(value, wanted):
                return value
    return None
