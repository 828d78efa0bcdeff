"""Polling the REST API: commits, pull requests, deployments, deployment statuses, releases.

One source per REST resource; each repository has its own watermark in the source's cursor table:

    key "octo/app"        the newest item time stored so far (ISO 8601 UTC, GitHub's own format)
    key "octo/app:etag"   {"url": <first page URL>, "etag": <its ETag>} as JSON

A walk over one repository asks for the first page with `If-None-Match` when it asks for the very
same URL as last time; a 304 ends the walk at no cost (GitHub does not count 304s against the
rate limit). Otherwise it follows `Link: rel="next"` until it reaches items older than the
watermark. Lists come newest first, so the watermark (and the ETag) are handed over with the
*last* page of a walk only: a walk that fails half-way stores what it read but moves no cursor,
and the next run reads the same range again (events are idempotent by `event_id`).

    source               request                                              cursor (item time)
    commits              GET /repos/{r}/commits?since=<watermark>[&sha=branch]  commit.committer.date
    pulls                GET /repos/{r}/pulls?state=all&sort=updated&direction=desc  updated_at
    deployments          GET /repos/{r}/deployments                           created_at
    deployment_statuses  GET /repos/{r}/deployments, then each one's statuses  status created_at
    releases             GET /repos/{r}/releases                              max(created_at, published_at)

Records keep the REST item's own shape inside a small envelope that adds what the item does not
say by itself (docs/envelopes.md):

    {"repository": {"full_name": "octo/app", "owner": "octo", "name": "app",
                    "html_url": "https://github.com/octo/app"},
     "<pull_request|commit|deployment|release>": <REST item>}
    deployment_statuses: {"repository": ..., "deployment": <REST deployment>, "deployment_status": <REST status>}

A repository the API refuses for good (404, 410, 422) does not stop the others: its failure is
raised once every other repository has been read. Rate limits, outages (retries exhausted, breaker
open) and refused credentials stop the walk at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from integrations.errors import PluginError
from integrations.health import RequestFailedError
from integrations.plugins._interface import DataRequest, Page
from integrations.plugins.github._client import GitHubClient

POLLED_SOURCES = ("commits", "pulls", "deployments", "deployment_statuses", "releases")
WEBHOOK_FOR = {"commits": "push", "pulls": "pull_request", "deployments": "deployment",
               "deployment_statuses": "deployment_status", "releases": "release"}
POLL_FOR = {webhook: polled for polled, webhook in WEBHOOK_FOR.items()}


def parse_time(value: Any) -> datetime | None:
    """GitHub's ISO 8601 (`2024-05-01T12:00:00Z`) as an aware UTC datetime; None for nothing."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def format_time(moment: datetime) -> str:
    """GitHub's own format: `2024-05-01T12:00:00Z` (whole seconds, as the API gives them)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_API_REPO = re.compile(r"/repos/([^/?#]+/[^/?#]+)")


def _spelled_by_github(configured: str, *items: Any) -> str:
    """The repository name as GitHub writes it in the item's API URL (settings may differ in case).

    Webhook payloads carry GitHub's spelling; external ids are built from it, so polled records must
    use the same one for both to meet on one event id.
    """
    for item in items:
        if not isinstance(item, dict):
            continue
        for key in ("url", "repository_url"):
            match = _API_REPO.search(str(item.get(key) or ""))
            if match and match.group(1).lower() == configured.lower():
                return match.group(1)
    return configured


def _commit_time(item: dict) -> Any:
    commit = item.get("commit") or {}
    return (commit.get("committer") or {}).get("date") or (commit.get("author") or {}).get("date")


def _release_time(item: dict) -> Any:
    times = [t for t in (parse_time(item.get("created_at")), parse_time(item.get("published_at"))) if t]
    return max(times) if times else None


@dataclass(frozen=True)
class ListResource:
    """A newest-first list endpoint of a repository and how to read its items."""

    source: str
    path: str                                  # under /repos/{owner}/{name}/
    key: str                                   # the envelope key of the REST item
    cursor: Callable[[dict], Any]              # the item's time
    params: dict[str, str] = field(default_factory=dict)
    since_param: bool = False                  # the server filters by `since` (no early stop)


LIST_RESOURCES = {
    "commits": ListResource("commits", "commits", "commit", _commit_time, since_param=True),
    "pulls": ListResource("pulls", "pulls", "pull_request", lambda i: i.get("updated_at"),
                          {"state": "all", "sort": "updated", "direction": "desc"}),
    "deployments": ListResource("deployments", "deployments", "deployment", lambda i: i.get("created_at")),
    "releases": ListResource("releases", "releases", "release", _release_time),
}


@dataclass(frozen=True)
class Repository:
    """One repository to poll, as the settings name it."""

    full_name: str
    resources: tuple[str, ...]
    branch: str | None = None

    @property
    def owner(self) -> str:
        return self.full_name.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/", 1)[1]


@dataclass
class PollWindow:
    """Where a first run starts, where every run stops, and how far back statuses are looked for."""

    start: datetime                     # used when a repository has no watermark yet
    until: datetime | None = None
    status_lookback: timedelta = timedelta(hours=72)


class Poller:
    """The pages of one source over every configured repository."""

    def __init__(self, client: GitHubClient, *, repositories: list[Repository], request: DataRequest,
                 window: PollWindow, per_page: int, web_url: str) -> None:
        if request.source not in POLLED_SOURCES:
            hint = (f"poll '{POLL_FOR[request.source]}' instead, or receive '{request.source}' with mode: webhook"
                    if request.source in POLL_FOR else f"polled sources: {', '.join(POLLED_SOURCES)}")
            raise PluginError(f"GitHub source '{request.source}' cannot be polled", field="sources", hint=hint)
        self.client = client
        self.repositories = repositories
        self.request = request
        self.window = window
        self.per_page = per_page
        self.web_url = web_url.rstrip("/")
        self.watermarks = request.watermarks

    async def pages(self) -> AsyncIterator[Page]:
        refused: list[tuple[str, RequestFailedError]] = []
        for repo in self.repositories:
            if self.request.source not in repo.resources:
                continue
            try:
                if self.request.source == "deployment_statuses":
                    async for page in self._statuses(repo):
                        yield page
                else:
                    async for page in self._list(repo, LIST_RESOURCES[self.request.source]):
                        yield page
            except RequestFailedError as err:
                if err.status is None:  # not GitHub's answer about this repository: a fault of ours
                    raise
                refused.append((repo.full_name, err))  # 404, 410, 422...: this repository only
        if refused:
            names = ", ".join(f"{name} ({err.cause_message})" for name, err in refused)
            raise PluginError(f"GitHub refused {len(refused)} repositor{'y' if len(refused) == 1 else 'ies'} "
                              f"of source '{self.request.source}': {names}",
                              hint="check the repository names in settings.repositories and the token's access"
                              ) from refused[0][1]

    # -- helpers -----------------------------------------------------------------------------------

    def _envelope(self, repo: Repository, **items: Any) -> dict[str, Any]:
        full_name = _spelled_by_github(repo.full_name, *items.values())
        owner, name = full_name.split("/", 1)
        return {"repository": {"full_name": full_name, "owner": owner, "name": name,
                               "html_url": f"{self.web_url}/{full_name}"}, **items}

    def _start(self, repo: Repository) -> datetime:
        stored = parse_time(self.watermarks.get(repo.full_name))
        return stored or self.window.start

    def _stored_etag(self, repo: Repository, url: str) -> str | None:
        try:
            stored = json.loads(self.watermarks.get(f"{repo.full_name}:etag") or "null")
        except ValueError:
            return None
        if isinstance(stored, dict) and stored.get("url") == url:
            return stored.get("etag")
        return None

    def _final(self, repo: Repository, newest: datetime | None, first_url: str | None,
               first_etag: str | None) -> dict[str, str]:
        marks: dict[str, str] = {}
        if newest is not None:
            marks[repo.full_name] = format_time(newest)
        if first_url and first_etag and self.window.until is None:
            # an `until` run leaves items out: its ETag must not stand for the whole first page
            marks[f"{repo.full_name}:etag"] = json.dumps({"url": first_url, "etag": first_etag}, sort_keys=True)
        return {key: value for key, value in marks.items() if self.watermarks.get(key) != value}  # only moves

    def _in_window(self, moment: datetime | None, start: datetime) -> bool:
        if moment is None or moment < start:
            return False
        return self.window.until is None or moment <= self.window.until

    # -- newest-first lists ------------------------------------------------------------------------

    async def _list(self, repo: Repository, res: ListResource) -> AsyncIterator[Page]:
        start = self._start(repo)
        params = {**res.params, "per_page": str(self.per_page)}
        if res.since_param:
            params["since"] = format_time(start)
            if repo.branch:
                params["sha"] = repo.branch
        path = f"repos/{repo.full_name}/{res.path}"
        first_url = f"{path}?{urlencode(sorted(params.items()))}"
        url: str | None = path
        query: dict[str, str] | None = params
        etag = self._stored_etag(repo, first_url)
        newest: datetime | None = parse_time(self.watermarks.get(repo.full_name))
        first_etag: str | None = None
        first = True
        while url is not None:
            page = await self.client.get_page(url, query, etag=etag if first else None)
            if page is None:
                return  # 304: the first page is what it was, so nothing is new
            if first:
                first_etag, first = page.etag, False
            items = page.items if isinstance(page.items, list) else []
            records, reached_older = [], False
            for item in items:
                moment = parse_time(res.cursor(item)) if isinstance(item, dict) else None
                if moment is not None and moment < start:
                    reached_older = True
                if res.since_param:  # the server already left out what is older than `since`
                    keep = moment is None or self.window.until is None or moment <= self.window.until
                else:
                    keep = self._in_window(moment, start)
                if not keep:
                    continue
                records.append(self._envelope(repo, **{res.key: item}))
                if moment is not None and (newest is None or moment > newest):
                    newest = moment
            url, query = page.next_url, None
            done = url is None or (reached_older and not res.since_param)
            marks = self._final(repo, newest, first_url, first_etag) if done else {}
            if records or marks:
                yield Page(source=self.request.source, records=records, watermarks=marks)
            if done:
                return

    # -- deployment statuses -----------------------------------------------------------------------

    async def _statuses(self, repo: Repository) -> AsyncIterator[Page]:
        """Statuses of the deployments made since (watermark - lookback) or updated since the watermark."""
        start = self._start(repo)
        horizon = start - self.window.status_lookback
        newest: datetime | None = parse_time(self.watermarks.get(repo.full_name))
        url: str | None = f"repos/{repo.full_name}/deployments"
        query: dict[str, str] | None = {"per_page": str(self.per_page)}
        while url is not None:
            page = await self.client.get_page(url, query)
            assert page is not None  # no If-None-Match was sent
            records, reached_horizon = [], False
            for deployment in page.items if isinstance(page.items, list) else []:
                created = parse_time(deployment.get("created_at"))
                updated = parse_time(deployment.get("updated_at")) or created
                if created is not None and created < horizon:
                    reached_horizon = True
                    if updated is None or updated < start:
                        continue
                async for status in self._statuses_of(repo, deployment):
                    moment = parse_time(status.get("created_at"))
                    if not self._in_window(moment, start):
                        continue
                    records.append(self._envelope(repo, deployment=deployment, deployment_status=status))
                    if moment is not None and (newest is None or moment > newest):
                        newest = moment
            url, query = page.next_url, None
            done = url is None or reached_horizon
            marks = self._final(repo, newest, None, None) if done else {}
            if records or marks:
                yield Page(source=self.request.source, records=records, watermarks=marks)
            if done:
                return

    async def _statuses_of(self, repo: Repository, deployment: dict) -> AsyncIterator[dict]:
        deployment_id = deployment.get("id")
        if deployment_id is None:
            return
        url: str | None = f"repos/{repo.full_name}/deployments/{deployment_id}/statuses"
        query: dict[str, str] | None = {"per_page": str(self.per_page)}
        while url is not None:
            page = await self.client.get_page(url, query)
            assert page is not None
            for status in page.items if isinstance(page.items, list) else []:
                if isinstance(status, dict):
                    yield status
            url, query = page.next_url, None
