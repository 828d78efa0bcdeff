"""Authentication (personal access tokens, GitHub App installation tokens with renewal) and the
reconciliation of failed webhook deliveries, against real servers on 127.0.0.1.

The fake GitHub verifies the App's RS256 JWT with the public key of a key pair made for this run
and issues installation tokens that expire after an hour; the plugin's token clock is moved by hand.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from integrations.credentials import GitHubAppCredential, GitHubPatCredential
from integrations.plugins import PluginConfiguration, PluginCredentials
from integrations.plugins.github import GitHubClient, GitHubPlugin, GitHubSettings, delivery_failed, redeliver_failed
from tests.credentials.conftest import FakeClock as WallClock
from tests.plugins_github.fake_github import iso, release_item

APP_ID, INSTALLATION = "12345", 777
REPO = "octo/app"


def app_setup(github, app_key, clock: WallClock) -> GitHubAppCredential:
    state = github.state
    state.app_public_keys[APP_ID] = app_key.public_pem
    state.installations[INSTALLATION] = APP_ID
    state.jwt_wall = clock
    state.repo(REPO).releases = [release_item(github.api_url, REPO, 1, "v1.0.0",
                                              datetime(2024, 5, 1, tzinfo=timezone.utc))]
    return GitHubAppCredential(app_id=APP_ID, installation_id=INSTALLATION, private_key=app_key.private_pem,
                               base_url=github.api_url)


def clocked_plugin(clock: WallClock) -> type[GitHubPlugin]:
    class ClockedGitHub(GitHubPlugin):
        def __init__(self) -> None:
            super().__init__(token_clock=clock)

    return ClockedGitHub


def auth_headers_of(github, prefix: str) -> list[str]:
    return [h[2].get("authorization", "") for h in github.state.requests_to(prefix)]


def test_a_github_app_polls_with_installation_tokens_renewed_before_expiry(github, poll_run, app_key):
    clock = WallClock()
    credential = app_setup(github, app_key, clock)
    run = poll_run(clocked_plugin(clock))
    run.credentials = {"app": credential}
    settings = {"repositories": [REPO], "since": "2024-01-01T00:00:00Z"}  # base_url: the credential's

    reports = run(settings, ["releases"])
    assert reports["releases"].status == "ok", reports["releases"].error
    first = github.state.issued_installation_tokens
    assert len(first) == 1
    assert set(auth_headers_of(github, f"/repos/{REPO}/releases")) == {f"Bearer {first[0]}"}

    clock.advance(minutes=56)  # under 5 minutes left: the provider renews before using it
    github.state.hits.clear()
    github.state.repo(REPO).releases.append(
        release_item(github.api_url, REPO, 2, "v1.1.0", datetime(2024, 6, 1, tzinfo=timezone.utc)))
    reports = run(settings, ["releases"])
    assert reports["releases"].status == "ok", reports["releases"].error
    tokens = github.state.issued_installation_tokens
    assert len(tokens) == 2 and tokens[0] != tokens[1]
    assert set(auth_headers_of(github, f"/repos/{REPO}/releases")) == {f"Bearer {tokens[1]}"}


def test_an_app_key_that_is_not_the_apps_needs_credentials(github, poll_run, app_key):
    from tests.credentials.conftest import make_rsa_key

    clock = WallClock()
    credential = app_setup(github, app_key, clock)
    wrong = credential.model_copy(update={"private_key": GitHubAppCredential(
        app_id=APP_ID, installation_id=INSTALLATION, private_key=make_rsa_key().private_pem).private_key})
    run = poll_run(clocked_plugin(clock))
    run.credentials = {"app": wrong}
    reports = run({"repositories": [REPO]}, ["releases"])
    assert reports["releases"].status == "failed"
    assert "needs credentials" in reports["releases"].error and "401" in reports["releases"].error
    assert "PRIVATE KEY" not in reports["releases"].error


def test_a_refused_personal_access_token_needs_credentials(github, poll_run):
    run = poll_run()
    run.credentials = {"token": GitHubPatCredential(token="ghp_" + "W" * 36)}
    reports = run({"base_url": github.api_url, "repositories": [REPO]}, ["releases"])
    assert reports["releases"].status == "failed" and "needs credentials" in reports["releases"].error
    assert "W" * 36 not in reports["releases"].error
    assert run.health.report("acme", "github")["state"] == "needs_credentials"


def test_no_github_credential_is_reported_by_role(github, poll_run):
    run = poll_run()
    run.credentials = {}
    reports = run({"base_url": github.api_url, "repositories": [REPO]}, ["releases"])
    assert "no github_pat or github_app credential" in reports["releases"].error


# -- reconciliation ------------------------------------------------------------------------------

NOW = datetime(2024, 5, 2, 12, 0, tzinfo=timezone.utc)


def delivery(delivery_id: int, guid: str, minutes_ago: float, status: str = "OK", code: int = 200,
             installation: int = INSTALLATION, redelivery: bool = False) -> dict:
    """A hook delivery as `GET /app/hook/deliveries` lists it (the REST reference's example shape)."""
    return {"id": delivery_id, "guid": guid, "delivered_at": iso(NOW - timedelta(minutes=minutes_ago)),
            "redelivery": redelivery, "duration": 0.27, "status": status, "status_code": code, "event": "push",
            "action": None, "installation_id": installation, "repository_id": 456, "throttled_at": None}


DELIVERIES = [  # newest first, as GitHub lists them
    delivery(10, "a", 5, redelivery=True),                          # a: failed, then redelivered fine
    delivery(9, "b", 10, "Invalid HTTP Response: 502", 502, redelivery=True),  # b: failed twice
    delivery(8, "c", 20),                                            # c: fine
    delivery(7, "d", 30, "timed out", 0, installation=999),          # d: another tenant's installation
    delivery(6, "b", 40, "Invalid HTTP Response: 503", 503),
    delivery(5, "a", 50, "failed to connect to host", 0),
    delivery(4, "e", 60 * 30, "failed to connect to host", 0),       # e: outside the 24 h window
    delivery(3, "f", 60 * 31, "failed to connect to host", 0),
]


def test_delivery_failed_reads_status_and_code():
    assert not delivery_failed({"status": "OK", "status_code": 200})
    assert delivery_failed({"status": "OK", "status_code": 500})
    assert delivery_failed({"status": "Invalid HTTP Response: 404", "status_code": 404})
    assert delivery_failed({"status": "failed to connect to host", "status_code": 0})


def test_redeliver_failed_against_the_scripted_server(http_server):
    """The reconciliation walk on its own: cursor pages, failed guids, one redelivery each."""
    page1, page2 = DELIVERIES[:3], DELIVERIES[3:]
    next_link = f'<{http_server.base_url}/app/hook/deliveries?per_page=3&cursor=MTIz>; rel="next"'
    http_server.script("/app/hook/deliveries", [(200, {"Link": next_link}, page1), (200, {}, page2)])
    http_server.script("/app/hook/deliveries/9/attempts", [(202, {}, {})])

    async def app_auth():
        return {"Authorization": "Bearer app.jwt.value"}

    async def scenario():
        client = GitHubClient(http_server.base_url)
        try:
            return await redeliver_failed(client, app_auth=app_auth, since=NOW - timedelta(hours=24),
                                          installation_id=INSTALLATION, per_page=3)
        finally:
            await client.aclose()

    report = asyncio.run(scenario())
    assert report.redelivered == [9] and report.failed_guids == 1 and report.errors == []
    assert report.listed == 5  # a, b, c (x2 for a and b), not d (other installation), not e or f (too old)
    posts = [h for h in http_server.hits if h[0] == "POST"]
    assert [p[1] for p in posts] == ["/app/hook/deliveries/9/attempts"]
    gets = [h[1] for h in http_server.hits if h[0] == "GET"]
    assert gets == ["/app/hook/deliveries?per_page=3", "/app/hook/deliveries?per_page=3&cursor=MTIz"]
    assert all(h[2]["authorization"] == "Bearer app.jwt.value" for h in http_server.hits)


def test_the_plugin_reconciles_with_the_apps_jwt(github, app_key):
    clock = WallClock(NOW)
    credential = app_setup(github, app_key, clock)
    github.state.deliveries = list(DELIVERIES)

    async def scenario():
        plugin = GitHubPlugin(token_clock=clock)
        config = PluginConfiguration(tenant_id="acme", plugin_name="github",
                                     settings={"repositories": [REPO], "reconcile_window_hours": 24})
        plugin.settings = GitHubSettings.model_validate(config.settings)
        await plugin.initialize(config)
        auth = await plugin.authenticate(PluginCredentials("acme", {"app": credential}))
        assert auth.ok, auth.message
        try:
            return await plugin.reconcile(now=NOW)
        finally:
            await plugin.shutdown()

    report = asyncio.run(scenario())
    assert report.redelivered == [9]
    assert github.state.redelivery_requests == [9]
    # the deliveries endpoints were called with the JWT, not with the installation token
    tokens = set(github.state.issued_installation_tokens)
    for _, path, headers in github.state.hits:
        if path.startswith("/app/hook/deliveries"):
            assert headers["authorization"].removeprefix("Bearer ") not in tokens


def test_reconcile_needs_an_app(github):
    async def scenario():
        plugin = GitHubPlugin()
        config = PluginConfiguration(tenant_id="acme", plugin_name="github", settings={"base_url": github.api_url})
        plugin.settings = GitHubSettings.model_validate(config.settings)
        await plugin.initialize(config)
        from tests.plugins_github.conftest import PAT

        await plugin.authenticate(PluginCredentials("acme", {"token": GitHubPatCredential(token=PAT)}))
        try:
            await plugin.reconcile()
        finally:
            await plugin.shutdown()

    from integrations.errors import PluginError

    with pytest.raises(PluginError, match="github_app"):
        asyncio.run(scenario())
