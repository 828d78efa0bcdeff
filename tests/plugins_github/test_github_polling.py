"""Polling GitHub end to end: the real plugin and run loop against a GitHub-shaped server on 127.0.0.1.

Pages follow `Link` headers, a second run asks with `If-None-Match` and gets 304s, a 403 rate
limit waits for its reset, a burst of 502s is retried, watermarks move only when a walk completes,
and events land in a DuckDB store in tmp.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from integrations.health import RetryPolicy
from tests.plugins_github.fake_github import (
    commit_item,
    deployment_item,
    iso,
    pull_item,
    release_item,
    status_item,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
REPO = "octo/app"
ALL = ["commits", "pulls", "deployments", "deployment_statuses", "releases"]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def seed(github, repo: str = REPO) -> None:
    """A repository with a little of everything, in amounts that need several pages of 2."""
    api = github.api_url
    r = github.state.repo(repo)
    r.commits = [commit_item(api, repo, f"{i:040x}", at(i), f"change {i}") for i in range(1, 6)]
    r.pulls = [
        pull_item(api, repo, 1, at(1), merged=at(20)),
        pull_item(api, repo, 2, at(2), closed=at(21)),
        pull_item(api, repo, 3, at(3)),
        pull_item(api, repo, 4, at(4), updated=at(30)),
        pull_item(api, repo, 5, at(5), merged=at(25)),
    ]
    r.deployments = [deployment_item(api, repo, i, at(10 * i)) for i in (1, 2, 3)]
    r.statuses = {1: [status_item(api, repo, 1, 11, at(11), "in_progress"), status_item(api, repo, 1, 12, at(12))],
                  2: [status_item(api, repo, 2, 21, at(21), "failure")],
                  3: [status_item(api, repo, 3, 31, at(31)), status_item(api, repo, 3, 32, at(32), "inactive")]}
    r.releases = [release_item(api, repo, 1, "v1.0.0", at(40), at(41)),
                  release_item(api, repo, 2, "v1.1.0", at(50), at(52)),
                  release_item(api, repo, 3, "v2.0.0-draft", at(60), draft=True)]


def settings(github, **more) -> dict:
    return {"base_url": github.api_url, "repositories": [REPO], "per_page": 2,
            "since": "2024-04-01T00:00:00Z", **more}


def events_by_kind(store, tenant: str = "acme") -> dict[str, list]:
    out: dict[str, list] = {}
    for event in store.query_events(tenant):
        out.setdefault(event.kind, []).append(event)
    return out


def test_polling_follows_link_pages_and_a_second_run_gets_304s(github, poll_run):
    seed(github)
    run = poll_run()
    reports = run(settings(github), ALL)
    assert {s: r.status for s, r in reports.items()} == {s: "ok" for s in ALL}, {s: r.error for s, r in reports.items()}

    kinds = events_by_kind(run.store)
    assert len(kinds["commit"]) == 5
    # opened for all five, closed_merged for 1 and 5, closed_unmerged for 2
    steps = sorted(e.attributes["step"] for e in kinds["pull_request"])
    assert steps == ["closed_merged", "closed_merged", "closed_unmerged"] + ["opened"] * 5
    assert len(kinds["deployment"]) == 3
    assert sorted(e.attributes["state"] for e in kinds["deployment_status"]) == [
        "failure", "in_progress", "inactive", "success", "success"]
    assert [e.severity for e in kinds["deployment_status"] if e.attributes["state"] == "failure"] == ["high"]
    assert sorted(e.attributes["action"] for e in kinds["release"]) == ["created", "created", "created",
                                                                         "published", "published"]
    # Link pagination was followed (pages of 2)
    assert any("page=3" in path for _, path, _ in github.state.requests_to(f"/repos/{REPO}/commits"))
    assert any("page=2" in path for _, path, _ in github.state.requests_to(f"/repos/{REPO}/releases"))

    marks = run.store.get_watermarks("acme", "github", "pulls")
    assert marks[REPO] == iso(at(30))
    assert json.loads(marks[f"{REPO}:etag"])["etag"].startswith('W/"')
    assert run.store.get_watermarks("acme", "github", "commits")[REPO] == iso(at(5))
    assert run.store.get_watermarks("acme", "github", "deployment_statuses")[REPO] == iso(at(32))

    # second run: the first pages are asked for with If-None-Match and nothing new comes back
    github.state.hits.clear()
    before = run.store.count_events("acme")
    reports = run(settings(github), ALL)
    assert all(r.status == "ok" for r in reports.values())
    for source in ("pulls", "deployments", "releases"):
        hits = github.state.requests_to(f"/repos/{REPO}/{source}?")
        assert len([h for h in hits if "if-none-match" in h[2]]) == 1, source
        if source != "deployments":  # deployment_statuses walks the deployments too (unconditionally)
            assert len(hits) == 1, source
        assert reports[source].read == 0
    assert github.state.not_modified >= 3
    assert run.store.count_events("acme") == before

    # the commits URL carries `since`; from the run where the watermark stays put, it is a 304 too
    run(settings(github), ["commits"])
    github.state.not_modified = 0
    run(settings(github), ["commits"])
    assert github.state.not_modified == 1

    # something new: a pull request merged; the walk stops at the page that reaches older items
    # (page 1: #6 and #4, updated at the watermark itself; page 2 reaches #5, older: the last of 3 pages is not read)
    github.state.repo(REPO).pulls.append(pull_item(github.api_url, REPO, 6, at(70), merged=at(80)))
    github.state.hits.clear()
    reports = run(settings(github), ["pulls"])
    assert len(github.state.requests_to(f"/repos/{REPO}/pulls")) == 2
    assert run.store.get_watermarks("acme", "github", "pulls")[REPO] == iso(at(80))
    assert reports["pulls"].inserted == 2  # opened and closed_merged of #6


def test_a_burst_of_502s_is_retried_and_shows_in_health(github, poll_run):
    seed(github)
    run = poll_run()
    github.state.fail(f"/repos/{REPO}/pulls", [(502, {}, {"message": "Server Error"})] * 3)
    reports = run(settings(github), ["pulls"])
    assert reports["pulls"].status == "ok" and reports["pulls"].events == 8
    figures = run.health.figures("acme", "github").to_dict()
    assert figures["failures_by_class"] == {"retryable": 3}
    assert len(run.clock.sleeps) == 3 and all(s <= 30 for s in run.clock.sleeps)  # jittered back-off, capped


def test_a_403_rate_limit_waits_for_its_reset(github, poll_run):
    seed(github)
    run = poll_run()
    state = github.state
    state.remaining, state.window_reset = 0, run.clock.wall().timestamp() + 40  # quota spent, back in 40 s
    reports = run(settings(github), ["releases"])
    assert reports["releases"].status == "ok", reports["releases"].error
    assert state.rate_limited >= 1
    assert max(run.clock.sleeps) >= 40 - 1  # the guard waited for X-RateLimit-Reset, not just its back-off
    assert run.health.figures("acme", "github").to_dict()["failures_by_class"] == {"retryable": 1}


def test_a_secondary_rate_limit_honours_retry_after(github, poll_run):
    seed(github)
    run = poll_run()
    github.state.fail(f"/repos/{REPO}/deployments", [
        (403, {"Retry-After": "61"}, {"message": "You have exceeded a secondary rate limit. Please wait."})])
    reports = run(settings(github), ["deployments"])
    assert reports["deployments"].status == "ok"
    assert any(s >= 61 for s in run.clock.sleeps)


def test_a_spent_quota_is_waited_out_before_the_next_request(github, poll_run):
    seed(github)
    run = poll_run()
    state = github.state
    state.remaining, state.reset_in = 2, 30.0   # /user and the first page spend it; the window ends in 30 s
    reports = run(settings(github), ["commits"])
    assert reports["commits"].status == "ok" and reports["commits"].events == 5
    assert state.rate_limited == 0           # no request earned a 403
    assert any(29 <= s <= 31 for s in run.clock.sleeps)


def test_a_failed_walk_stores_what_it_read_and_moves_no_cursor(github, poll_run):
    seed(github)
    run = poll_run(retry=RetryPolicy(max_attempts=3, base_seconds=0.1, cap_seconds=1, deadline_seconds=60))
    github.state.fail(f"/repos/{REPO}/commits", ["serve"] + [(502, {}, {"message": "bad gateway"})] * 3)
    reports = run(settings(github), ["commits"])
    assert reports["commits"].status == "failed" and "gave up after 3 attempt" in reports["commits"].error
    assert run.store.count_events("acme") == 2                   # page 1 is stored...
    assert run.store.get_watermarks("acme", "github", "commits") == {}   # ...but the cursor did not move
    letters = run.store.list_dead_letters("acme", plugin="github", source="commits")
    assert len(letters) == 1 and letters[0]["kind"] == "fetch"

    reports = run(settings(github), ["commits"])   # the service is back: the same range again
    assert reports["commits"].status == "ok" and reports["commits"].inserted == 3
    assert run.store.get_watermarks("acme", "github", "commits")[REPO] == iso(at(5))


def test_a_missing_repository_does_not_stop_the_others(github, poll_run):
    seed(github)
    run = poll_run()
    reports = run(settings(github, repositories=["octo/gone", REPO]), ["releases"])
    report = reports["releases"]
    assert report.status == "failed" and "octo/gone" in report.error and "404" in report.error
    assert len(run.store.query_events("acme", kind="release")) == 5
    assert REPO in run.store.get_watermarks("acme", "github", "releases")


def test_repositories_choose_their_resources_and_names_follow_github_spelling(github, poll_run):
    seed(github)
    run = poll_run()
    s = settings(github, repositories=[{"name": "OCTO/App", "resources": ["releases"]}])
    github.state.repos["OCTO/App"] = github.state.repos[REPO]  # GitHub is case-insensitive about names
    reports = run(s, ["releases", "pulls"])
    assert reports["pulls"].read == 0 and reports["releases"].events == 5
    ids = {e.integration_context.external_id for e in run.store.query_events("acme", kind="release")}
    assert "octo/app#release-1:published" in ids  # spelled as the items' own URLs spell it


def test_a_webhook_source_cannot_be_polled(github, poll_run):
    run = poll_run()
    reports = run(settings(github), ["push"])
    assert reports["push"].status == "failed"
    assert "cannot be polled" in reports["push"].error and "commits" in reports["push"].error


def test_health_check_reports_the_rate_limit(github):
    import asyncio

    from integrations.credentials import GitHubPatCredential
    from integrations.plugins import PluginConfiguration, PluginCredentials
    from integrations.plugins.github import GitHubPlugin, GitHubSettings
    from tests.plugins_github.conftest import PAT

    async def scenario():
        plugin = GitHubPlugin()
        config = PluginConfiguration(tenant_id="acme", plugin_name="github", settings=settings(github))
        plugin.settings = GitHubSettings.model_validate(config.settings)
        await plugin.initialize(config)
        assert (await plugin.health_check()).healthy is False  # not authenticated yet
        auth = await plugin.authenticate(PluginCredentials("acme", {"token": GitHubPatCredential(token=PAT)}))
        assert auth.ok and "octocat" in auth.message
        status = await plugin.health_check()
        await plugin.shutdown()
        return status

    status = asyncio.run(scenario())
    assert status.healthy and status.details["rate_limit"]["limit"] == 5000
    assert status.details["auth"] == "github_pat" and "requests left" in status.message


def test_the_runner_polls_a_tenant_file_with_a_stored_token(github, tmp_path, monkeypatch):
    """The whole way: tenants/<tenant>.yaml picks `mode: poll`, the token is stored encrypted, `run` polls."""
    from integrations.credentials import CredentialManager, EnvironmentMasterKeys, MasterKey, parse_credential
    from integrations.health import FakeClock, HealthMonitor
    from integrations.plugins import PluginRegistry
    from integrations.plugins.github import GitHubPlugin
    from integrations.store import EventStore
    from runner import RunOptions, run
    from tests.plugins_github.conftest import PAT

    seed(github)
    monkeypatch.setenv("INTEGRATIONS_MASTER_KEY", MasterKey.generate().to_text())
    store_path = tmp_path / "runner.duckdb"
    CredentialManager(EventStore(store_path), EnvironmentMasterKeys()).set(
        "acme", "github", "gh-token", parse_credential("github_pat", {"token": PAT}))
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "acme.yaml").write_text(
        "tenant: acme\nintegrations:\n  github:\n"
        f"    settings: {{base_url: '{github.api_url}', repositories: [{REPO}], since: '2024-04-01T00:00:00Z'}}\n"
        "    credentials: {token: gh-token}\n"
        "    sources:\n      - {name: pulls, mode: poll}\n      - {name: releases, mode: poll}\n")
    registry = PluginRegistry()
    registry.register(GitHubPlugin)
    report = run(RunOptions(store_path=store_path, tenants=["acme"], tenants_dir=tenants, registry=registry,
                            engine="python", health=HealthMonitor(clock=FakeClock())))
    assert [(s.source, s.status) for s in report.sources] == [("pulls", "ok"), ("releases", "ok")]
    assert EventStore(store_path).count_events("acme") == 8 + 5
    assert PAT not in str([s.as_dict() for s in report.sources])
