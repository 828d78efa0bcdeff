"""HTTP to the GitHub REST API: auth headers, conditional requests, `Link` pages, rate limits.

    client = GitHubClient("https://api.github.com", guard=plugin.guard, auth=headers_fn)
    page = await client.get_page("/repos/octo/app/pulls", {"state": "all"}, etag='W/"abc"')
    page is None                 # 304 Not Modified: nothing changed since that ETag
    page.items, page.etag, page.next_url

Every request goes through the integration's guard (`Guard.acall`), so the breaker, the client-side
rate limit, retries with back-off and the health figures apply to each one. GitHub's own limits are
read from every answer:

* an error answer (403 with `X-RateLimit-Remaining: 0`, 403/429 with `Retry-After`, a "secondary
  rate limit" message, 5xx) is classified by `integrations.health.classify` and retried after the
  server's own hint (`Retry-After`, or `X-RateLimit-Reset`), within the retry policy's deadline;
* a successful answer that spent the last request of the window (`X-RateLimit-Remaining: 0`) makes
  the next request wait on the guard's clock until `X-RateLimit-Reset`, instead of earning a 403.

`rate_limit` keeps the latest figures GitHub sent (limit, remaining, reset, resource) for
`health_check`. Auth headers are asked for on every attempt, so a renewed installation token is
used by the retry that follows its renewal. `next` links are followed only on the API's own origin:
a token is never sent elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from integrations.errors import PluginError
from integrations.health import Guard

API_VERSION = "2022-11-28"
USER_AGENT = "integrations-workbench (github plugin)"
AuthHeaders = Callable[[], Awaitable[dict[str, str]]]


@dataclass
class RateLimitState:
    """The primary rate limit as GitHub last reported it (`X-RateLimit-*` headers)."""

    limit: int | None = None
    remaining: int | None = None
    reset: int | None = None          # epoch seconds
    used: int | None = None
    resource: str | None = None
    waits: list[float] = field(default_factory=list)  # seconds waited before a request for a reset

    def observe(self, headers: Mapping[str, str]) -> None:
        def number(name: str) -> int | None:
            value = headers.get(name)
            try:
                return int(value) if value is not None else None
            except ValueError:
                return None

        if headers.get("x-ratelimit-remaining") is None:
            return
        self.limit = number("x-ratelimit-limit")
        self.remaining = number("x-ratelimit-remaining")
        self.reset = number("x-ratelimit-reset")
        self.used = number("x-ratelimit-used")
        self.resource = headers.get("x-ratelimit-resource")

    def as_dict(self) -> dict[str, Any]:
        try:
            reset_at = (datetime.fromtimestamp(self.reset, timezone.utc).isoformat()
                        if self.reset is not None else None)
        except (OverflowError, OSError, ValueError):  # a header no date can hold: reported as is, without a date
            reset_at = None
        return {"limit": self.limit, "remaining": self.remaining, "reset": self.reset, "reset_at": reset_at,
                "used": self.used, "resource": self.resource, "waited_s": round(sum(self.waits), 3)}


@dataclass
class GitHubPage:
    """One answer of a list endpoint."""

    url: str                     # the URL asked for, query included
    items: Any                   # the parsed JSON body
    etag: str | None
    next_url: str | None
    headers: Mapping[str, str]


class GitHubClient:
    """An `httpx.AsyncClient` for one API root, wrapped in the integration's guard."""

    def __init__(self, base_url: str, *, guard: Guard | None = None, auth: AuthHeaders | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, timeout: float = 30.0) -> None:
        self.guard = guard or Guard("-", "github")
        self.auth = auth
        self.rate_limit = RateLimitState()
        self.requests = 0
        self._base = httpx.URL(base_url.rstrip("/") + "/")
        self._transport = transport
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def base_url(self) -> str:
        return str(self._base).rstrip("/")

    @base_url.setter
    def base_url(self, value: str) -> None:
        self._base = httpx.URL(value.rstrip("/") + "/")
        if self._http is not None:
            self._http.base_url = self._base

    def _client(self) -> httpx.AsyncClient:
        """The connection pool of the running event loop (a pool cannot outlive the loop it was made in)."""
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            self._http = httpx.AsyncClient(
                base_url=self._base, transport=self._transport, timeout=self._timeout, follow_redirects=False,
                headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                         "User-Agent": USER_AGENT})
            self._loop = loop
        return self._http

    # -- requests ----------------------------------------------------------------------------------

    async def request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                      headers: Mapping[str, str] | None = None,
                      auth: AuthHeaders | None = None, json: Any = None) -> httpx.Response:
        """One request under the guard; error answers raise the guard's errors (see integrations.health)."""
        target = self._target(url)
        await self._wait_for_reset()
        return await self.guard.acall(self._send, method, target, params, headers, auth or self.auth, json)

    async def _send(self, method: str, url: str, params: Mapping[str, Any] | None,
                    headers: Mapping[str, str] | None, auth: AuthHeaders | None, body: Any) -> httpx.Response:
        sent = dict(headers or {})
        if auth is not None:
            sent.update(await auth())
        kwargs: dict[str, Any] = {"params": dict(params) if params else None, "headers": sent}
        if body is not None:
            kwargs["json"] = body
        response = await self._client().request(method, url, **kwargs)
        self.requests += 1
        self.rate_limit.observe(response.headers)
        return response

    async def _wait_for_reset(self) -> None:
        """When the last answer spent the window, wait for its reset (unless past the retry deadline)."""
        state = self.rate_limit
        if state.remaining != 0 or state.reset is None:
            return
        clock = self.guard.clock
        wait = state.reset - clock.wall().timestamp()
        if wait <= 0:
            return
        if wait > self.guard.policy.deadline_seconds:
            return  # the request earns its 403; the guard's deadline turns it into a dead letter
        state.waits.append(wait)
        await clock.asleep(wait)
        state.remaining = None

    def _target(self, url: str) -> str:
        """A path under the API root, or an absolute URL on the API's own origin (never elsewhere)."""
        if not url.startswith(("http://", "https://")):
            return url.lstrip("/")
        wanted, base = httpx.URL(url), self._base
        if (wanted.scheme, wanted.host, wanted.port) != (base.scheme, base.host, base.port):
            raise PluginError(f"GitHub sent a link to another origin ({wanted.scheme}://{wanted.host}); "
                              f"not following it with this integration's token",
                              hint="check settings.base_url: it must be the API root GitHub links to")
        return url

    async def get_json(self, url: str, params: Mapping[str, Any] | None = None, *,
                       auth: AuthHeaders | None = None) -> Any:
        response = await self.request("GET", url, params=params, auth=auth)
        return _json(response)

    async def get_page(self, url: str, params: Mapping[str, Any] | None = None, *, etag: str | None = None,
                       auth: AuthHeaders | None = None) -> GitHubPage | None:
        """One page of a list; None when GitHub answers 304 to `If-None-Match: etag`."""
        headers = {"If-None-Match": etag} if etag else None
        response = await self.request("GET", url, params=params, headers=headers, auth=auth)
        if response.status_code == 304:
            return None
        nxt = response.links.get("next", {}).get("url")
        return GitHubPage(url=str(response.request.url), items=_json(response), etag=response.headers.get("etag"),
                          next_url=nxt, headers=response.headers)

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None and self._loop is asyncio.get_running_loop():
            await http.aclose()


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise PluginError(f"GitHub answered {response.request.method} {response.request.url.path} with "
                          f"HTTP {response.status_code} but the body is not JSON") from None
