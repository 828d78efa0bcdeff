"""The REST client's own rules, on httpx's MockTransport (pure request/response logic)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from integrations.errors import PluginError
from integrations.health import FakeClock, Guard
from integrations.plugins.github import GitHubClient, web_root


def run(coro):
    return asyncio.run(coro)


def test_next_links_to_another_origin_are_not_followed_with_the_token():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[{"id": 1}],
                              headers={"Link": '<https://evil.example/repos/o/r/pulls?page=2>; rel="next"'})

    async def scenario():
        client = GitHubClient("https://ghe.example/api/v3", transport=httpx.MockTransport(handler))
        page = await client.get_page("repos/o/r/pulls", {"per_page": 1})
        with pytest.raises(PluginError, match="another origin"):
            await client.get_page(page.next_url)
        same = await client.get_page("https://ghe.example/api/v3/repos/o/r/pulls?page=2")
        await client.aclose()
        return page, same

    page, same = run(scenario())
    assert page.next_url.startswith("https://evil.example") and same.items == [{"id": 1}]
    assert [str(r.url) for r in seen] == ["https://ghe.example/api/v3/repos/o/r/pulls?per_page=1",
                                          "https://ghe.example/api/v3/repos/o/r/pulls?page=2"]
    assert seen[0].headers["X-GitHub-Api-Version"] == "2022-11-28"


def test_304_is_none_and_rate_limit_headers_are_kept():
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "59", "X-RateLimit-Reset": "1714564800",
                   "X-RateLimit-Resource": "core", "ETag": 'W/"x"'}
        if request.headers.get("If-None-Match") == 'W/"x"':
            return httpx.Response(304, headers=headers)
        return httpx.Response(200, json=[], headers=headers)

    async def scenario():
        client = GitHubClient("https://api.github.com", guard=Guard("t", "github", clock=FakeClock()),
                              transport=httpx.MockTransport(handler))
        first = await client.get_page("repos/o/r/releases")
        second = await client.get_page("repos/o/r/releases", etag=first.etag)
        await client.aclose()
        return client, first, second

    client, first, second = run(scenario())
    assert first.etag == 'W/"x"' and second is None
    assert client.rate_limit.as_dict()["remaining"] == 59 and client.rate_limit.resource == "core"


def test_web_root_of_api_roots():
    assert web_root("https://api.github.com") == "https://github.com"
    assert web_root("https://ghe.example/api/v3/") == "https://ghe.example"
    assert web_root("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
