"""A GitHub-shaped REST API on 127.0.0.1 (starlette under uvicorn) for the GitHub plugin tests.

It serves what the plugin reads, the way GitHub does it:

* newest-first lists of commits (`since` filter), pull requests (`state=all&sort=updated`),
  deployments, deployment statuses and releases, `per_page`/`page` pagination with `Link` headers;
* weak ETags on every list page and `304 Not Modified` for a matching `If-None-Match`;
* `X-RateLimit-*` headers on every answer (a 304 does not spend the quota);
* bearer-token checks: personal access tokens, and GitHub App installation tokens issued at
  `POST /app/installations/{id}/access_tokens` for an RS256 app JWT it verifies with the app's
  public key (keys are made at test time);
* the App's webhook deliveries (`GET /app/hook/deliveries`, cursor pagination, JWT only) and
  redelivery requests (`POST /app/hook/deliveries/{id}/attempts`);
* scripted faults per path (`fail(path, [(status, headers, body), ...])`) served before the real
  answer: a burst of 502s, a 403 rate limit with its reset, a secondary-limit 403 with Retry-After.

Every request is recorded in `hits` as (method, path?query, headers).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


API_PREFIX = "/api/v3"  # served like GitHub Enterprise Server: https://HOST/api/v3


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Repo:
    commits: list[dict] = field(default_factory=list)
    pulls: list[dict] = field(default_factory=list)
    deployments: list[dict] = field(default_factory=list)
    statuses: dict[int, list[dict]] = field(default_factory=dict)
    releases: list[dict] = field(default_factory=list)


@dataclass
class FakeGitHubState:
    """What the fake knows and what it saw. A fresh one per test."""

    wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc)   # for rate-limit resets
    jwt_wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc)  # for app JWT and token times
    repos: dict[str, Repo] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)                         # accepted bearer tokens
    app_public_keys: dict[str, str] = field(default_factory=dict)         # app id -> public PEM
    installations: dict[int, str] = field(default_factory=dict)           # installation id -> app id
    installation_token_lifetime: timedelta = timedelta(hours=1)
    issued_installation_tokens: list[str] = field(default_factory=list)
    deliveries: list[dict] = field(default_factory=list)                  # newest first
    redelivery_requests: list[int] = field(default_factory=list)
    faults: dict[str, list[Any]] = field(default_factory=dict)  # path -> answers, or "serve" for a real one
    rate_limit: int = 5000
    remaining: int = 5000
    reset_in: float = 3600.0                 # length of a rate-limit window
    window_reset: float | None = None        # epoch seconds when the current window ends
    rate_limited: int = 0                    # 403s sent because the quota was spent
    hits: list[tuple[str, str, dict]] = field(default_factory=list)
    not_modified: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, path: str, answers: list[Any]) -> None:
        """Answer the next requests to `path` (no query) with these (status, headers, body); "serve" passes one."""
        with self.lock:
            self.faults.setdefault(path, []).extend(answers)

    def repo(self, full_name: str) -> Repo:
        return self.repos.setdefault(full_name, Repo())

    def reset_epoch(self) -> int:
        now = self.wall().timestamp()
        if self.window_reset is None:
            self.window_reset = now + self.reset_in
        elif now >= self.window_reset:  # a new window: the quota is back
            self.window_reset = now + self.reset_in
            self.remaining = self.rate_limit
        return int(self.window_reset)

    def requests_to(self, prefix: str, method: str = "GET") -> list[tuple[str, str, dict]]:
        return [h for h in self.hits if h[0] == method and h[1].startswith(prefix)]


def _etag(body: Any) -> str:
    return 'W/"' + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32] + '"'


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"message": message, "documentation_url": "https://docs.github.com/rest"},
                        status_code=status, headers=headers)


def build_app(box: list[FakeGitHubState]) -> Starlette:
    def state() -> FakeGitHubState:
        return box[0]

    def rate_headers(spend: bool) -> dict[str, str]:
        st = state()
        with st.lock:
            st.reset_epoch()
            if spend and st.remaining > 0:
                st.remaining -= 1
            return {"X-RateLimit-Limit": str(st.rate_limit), "X-RateLimit-Remaining": str(st.remaining),
                    "X-RateLimit-Used": str(st.rate_limit - st.remaining), "X-RateLimit-Reset": str(st.reset_epoch()),
                    "X-RateLimit-Resource": "core"}

    def bearer(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        for scheme in ("Bearer ", "token "):
            if auth.startswith(scheme):
                return auth[len(scheme):]
        return None

    def app_id_of_jwt(request: Request) -> str | None:
        token = bearer(request)
        if token is None:
            return None
        st = state()
        try:
            app_id = str(jwt.decode(token, options={"verify_signature": False})["iss"])
            claims = jwt.decode(token, st.app_public_keys[app_id], algorithms=["RS256"],
                                options={"verify_exp": False, "verify_iat": False, "require": ["iat", "exp", "iss"]})
        except (jwt.PyJWTError, KeyError):
            return None
        now = st.jwt_wall().timestamp()
        if not (claims["iat"] <= now < claims["exp"]) or claims["exp"] - claims["iat"] > 600:
            return None
        return app_id

    def page_of(request: Request, items: list, extra: dict[str, str]) -> Response:
        per_page = int(request.query_params.get("per_page", "30"))
        page = int(request.query_params.get("page", "1"))
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = rate_headers(spend=False)
        etag = _etag(chunk)
        if request.headers.get("if-none-match") == etag:
            with state().lock:
                state().not_modified += 1
            return Response(status_code=304, headers={**headers, "ETag": etag})
        headers.update(rate_headers(spend=True))
        headers["ETag"] = etag
        base = str(request.url.replace(query=""))
        query = {**extra, "per_page": str(per_page)}
        links = []
        if page * per_page < len(items):
            links.append(f'<{base}?{urlencode({**query, "page": page + 1})}>; rel="next"')
            last = (len(items) + per_page - 1) // per_page
            links.append(f'<{base}?{urlencode({**query, "page": last})}>; rel="last"')
        if links:
            headers["Link"] = ", ".join(links)
        return JSONResponse(chunk, headers=headers)

    async def handle(request: Request) -> Response:
        st = state()
        path = request.url.path.removeprefix(API_PREFIX)
        with st.lock:
            st.hits.append((request.method, path + (f"?{request.url.query}" if request.url.query else ""),
                            dict(request.headers)))
            queue = st.faults.get(path)
            fault = queue.pop(0) if queue else None
        if fault is not None and fault != "serve":
            status, headers, body = fault
            return JSONResponse(body, status_code=status, headers=headers)
        with st.lock:
            st.reset_epoch()
            spent = st.remaining == 0 and not path.startswith("/app/installations/") and path != "/rate_limit"
            if spent:
                st.rate_limited += 1
        if spent:
            return _error(403, "API rate limit exceeded for installation ID 777.", rate_headers(spend=False))
        parts = path.strip("/").split("/")
        if request.method == "POST" and parts[:2] == ["app", "installations"] and parts[3:] == ["access_tokens"]:
            return installation_token(request, int(parts[2]))
        if parts[:3] == ["app", "hook", "deliveries"]:
            return deliveries(request, parts[3:])
        token = bearer(request)
        if token is None or token not in st.tokens:
            return _error(401, "Bad credentials")
        if path == "/user":
            return JSONResponse({"login": "octocat", "id": 1}, headers=rate_headers(spend=True))
        if path == "/rate_limit":
            core = {"limit": st.rate_limit, "remaining": st.remaining, "reset": st.reset_epoch(), "used": 0}
            return JSONResponse({"resources": {"core": core}, "rate": core})
        if path == "/installation/repositories":
            return JSONResponse({"total_count": len(st.repos), "repositories": []}, headers=rate_headers(spend=True))
        if parts[0] == "repos" and len(parts) >= 4:
            return repo_resource(request, f"{parts[1]}/{parts[2]}", parts[3:])
        return _error(404, "Not Found")

    def installation_token(request: Request, installation: int) -> Response:
        st = state()
        app_id = app_id_of_jwt(request)
        if app_id is None:
            return _error(401, "A JSON web token could not be decoded")
        if st.installations.get(installation) != app_id:
            return _error(404, "Not Found")
        value = "ghs_" + secrets.token_urlsafe(27)
        with st.lock:
            st.tokens.add(value)
            st.issued_installation_tokens.append(value)
        expires = st.jwt_wall() + st.installation_token_lifetime
        return JSONResponse({"token": value, "expires_at": iso(expires), "permissions": {"contents": "read"}},
                            status_code=201)

    def deliveries(request: Request, rest: list[str]) -> Response:
        st = state()
        if app_id_of_jwt(request) is None:
            return _error(401, "A JSON web token could not be decoded")
        if request.method == "POST" and len(rest) == 2 and rest[1] == "attempts":
            delivery_id = int(rest[0])
            if not any(d["id"] == delivery_id for d in st.deliveries):
                return _error(404, "Not Found")
            with st.lock:
                st.redelivery_requests.append(delivery_id)
            return JSONResponse({}, status_code=202)
        per_page = int(request.query_params.get("per_page", "30"))
        start = int(request.query_params.get("cursor", "0") or 0)
        chunk = st.deliveries[start:start + per_page]
        headers = rate_headers(spend=True)
        if start + per_page < len(st.deliveries):
            base = str(request.url.replace(query=""))
            headers["Link"] = f'<{base}?{urlencode({"per_page": per_page, "cursor": start + per_page})}>; rel="next"'
        return JSONResponse(chunk, headers=headers)

    def repo_resource(request: Request, full_name: str, rest: list[str]) -> Response:
        st = state()
        if full_name not in st.repos:
            return _error(404, "Not Found", rate_headers(spend=True))
        repo = st.repos[full_name]
        q = request.query_params
        if rest == ["commits"]:
            items = sorted(repo.commits, key=lambda c: c["commit"]["committer"]["date"], reverse=True)
            if q.get("since"):
                items = [c for c in items if parse(c["commit"]["committer"]["date"]) >= parse(q["since"])]
            extra = {k: q[k] for k in ("since", "sha") if k in q}
            return page_of(request, items, extra)
        if rest == ["pulls"]:
            items = sorted(repo.pulls, key=lambda p: p["updated_at"], reverse=True)
            return page_of(request, items, {"state": "all", "sort": "updated", "direction": "desc"})
        if rest == ["deployments"]:
            items = sorted(repo.deployments, key=lambda d: (d["created_at"], d["id"]), reverse=True)
            return page_of(request, items, {})
        if len(rest) == 3 and rest[0] == "deployments" and rest[2] == "statuses":
            items = sorted(repo.statuses.get(int(rest[1]), []), key=lambda s: (s["created_at"], s["id"]), reverse=True)
            return page_of(request, items, {})
        if rest == ["releases"]:
            items = sorted(repo.releases, key=lambda r: r["created_at"], reverse=True)
            return page_of(request, items, {})
        return _error(404, "Not Found")

    return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])


# -- GitHub-shaped items --------------------------------------------------------------------------

WEB = "https://github.com"


def commit_item(api: str, repo: str, sha: str, at: datetime, message: str = "Fix all the bugs") -> dict:
    return {
        "url": f"{api}/repos/{repo}/commits/{sha}", "sha": sha, "node_id": "C_" + sha[:8],
        "html_url": f"{WEB}/{repo}/commit/{sha}",
        "comments_url": f"{api}/repos/{repo}/commits/{sha}/comments",
        "commit": {"url": f"{api}/repos/{repo}/git/commits/{sha}",
                   "author": {"name": "Mona", "email": "mona@example.com", "date": iso(at)},
                   "committer": {"name": "Mona", "email": "mona@example.com", "date": iso(at)},
                   "message": message, "tree": {"sha": sha, "url": f"{api}/repos/{repo}/git/trees/{sha}"},
                   "comment_count": 0, "verification": {"verified": False, "reason": "unsigned"}},
        "author": {"login": "mona", "id": 2}, "committer": {"login": "mona", "id": 2},
        "parents": [],
    }


def pull_item(api: str, repo: str, number: int, created: datetime, *, merged: datetime | None = None,
              closed: datetime | None = None, updated: datetime | None = None, title: str = "A change") -> dict:
    closed = closed or merged
    last = max(t for t in (created, merged, closed, updated) if t is not None)
    return {
        "url": f"{api}/repos/{repo}/pulls/{number}", "id": 1000 + number, "number": number,
        "html_url": f"{WEB}/{repo}/pull/{number}", "diff_url": f"{WEB}/{repo}/pull/{number}.diff",
        "review_comments_url": f"{api}/repos/{repo}/pulls/{number}/comments",
        "state": "closed" if closed else "open", "title": title, "user": {"login": "mona"},
        "created_at": iso(created), "updated_at": iso(last),
        "closed_at": iso(closed) if closed else None, "merged_at": iso(merged) if merged else None,
        "merge_commit_sha": f"{number:040x}", "draft": False, "labels": [],
        "head": {"ref": f"topic-{number}", "sha": f"{number + 7:040x}",
                 "repo": {"full_name": repo}},
        "base": {"ref": "main", "sha": f"{number + 9:040x}", "repo": {"full_name": repo}},
    }


def deployment_item(api: str, repo: str, deployment_id: int, created: datetime, *, environment: str = "production",
                    sha: str | None = None) -> dict:
    sha = sha or f"{deployment_id:040x}"
    return {
        "url": f"{api}/repos/{repo}/deployments/{deployment_id}", "id": deployment_id, "sha": sha, "ref": "main",
        "task": "deploy", "payload": {}, "environment": environment, "original_environment": environment,
        "description": None, "creator": {"login": "mona"}, "created_at": iso(created), "updated_at": iso(created),
        "statuses_url": f"{api}/repos/{repo}/deployments/{deployment_id}/statuses",
        "repository_url": f"{api}/repos/{repo}", "transient_environment": False, "production_environment": True,
    }


def status_item(api: str, repo: str, deployment_id: int, status_id: int, at: datetime, state: str = "success",
                environment: str = "production") -> dict:
    return {
        "url": f"{api}/repos/{repo}/deployments/{deployment_id}/statuses/{status_id}", "id": status_id,
        "state": state, "creator": {"login": "mona"}, "description": "", "environment": environment,
        "target_url": f"https://ci.example.com/runs/{status_id}", "log_url": f"https://ci.example.com/runs/{status_id}",
        "environment_url": f"https://{environment}.example.com", "created_at": iso(at), "updated_at": iso(at),
        "deployment_url": f"{api}/repos/{repo}/deployments/{deployment_id}", "repository_url": f"{api}/repos/{repo}",
    }


def release_item(api: str, repo: str, release_id: int, tag: str, created: datetime,
                 published: datetime | None = None, draft: bool = False) -> dict:
    return {
        "url": f"{api}/repos/{repo}/releases/{release_id}", "id": release_id,
        "html_url": f"{WEB}/{repo}/releases/{tag}", "tag_name": tag, "target_commitish": "main", "name": tag,
        "body": "notes", "draft": draft, "prerelease": False, "author": {"login": "mona"},
        "created_at": iso(created), "published_at": iso(published) if published else None,
        "assets": [{"name": "app.tar.gz", "browser_download_url": f"{WEB}/{repo}/releases/download/{tag}/app.tar.gz",
                    "size": 10, "content_type": "application/gzip"}],
        "tarball_url": f"{api}/repos/{repo}/tarball/{tag}", "zipball_url": f"{api}/repos/{repo}/zipball/{tag}",
    }
