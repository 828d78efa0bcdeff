#!/usr/bin/env python3
"""Write the sample records under data/samples/<tenant>/<plugin>/<source>.jsonl.

Deterministic: a fixed seed and a fixed base time, no clock and no network. Run it from anywhere:

    python data/samples/generate.py            # rewrites every file
    python data/samples/generate.py --check    # exits 1 if a file on disk differs

The records are in the services' real shapes, modelled on their documented examples:

* GitHub: the webhook bodies exactly as GitHub POSTs them (octokit/webhooks payload examples, the
  docs.github.com "Webhook events and payloads" page, and the older help.github.com push format).
* CloudWatch: the plugin envelopes of docs/envelopes.md around what the AWS APIs return
  (GetMetricData MetricDataResults, FilterLogEvents events, DescribeAlarmHistory items with
  DescribeAlarms + ListTagsForResource, EventBridge "CloudWatch Alarm State Change" events) and
  CloudTrail records as a trail delivers them to CloudWatch Logs.

The story, for two tenants:

* demo (GitHub org `demo-shop`, AWS account 123456789012, us-east-1): `checkout-api` (a Lambda
  function behind an ALB) gets PR #41 (retry timeouts) opened, synchronized and squash-merged; its
  squash commit goes to staging, then production at 10:20; five minutes later its 5xx rate climbs,
  alarm `checkout-api-5xx-high` fires at 10:36; PR #42 reverts it (a merge commit), production is
  redeployed at 10:52 and the alarm is OK at 11:12; v2.14.1 is released. `payments-worker` (an ECS
  service) has a CI failure on main, a fix, a production deployment that errors (the deploy role is
  denied iam:PassRole, seen in CloudTrail) and a successful retry. CloudTrail also has failed
  console sign-ins and root activity.
* acme (GitHub Enterprise Server at github.acme-corp.example, AWS account 210987654321, eu-west-1):
  `web-frontend` (ECS behind an ALB) gets an abandoned PR, a PR without optional fields, a
  feature-branch CI failure, a staging deployment that fails its smoke test, a fix, a production
  deployment at 14:30 and then alarm `web-frontend-5xx-critical` (critical) and a latency alarm; a
  draft release is created without a name and later published. A legacy hook still posts one push
  in the 2013 format. CloudTrail has an UnauthorizedOperation, a failed sign-in, root activity and
  CloudTrail logging being stopped.

Three records are deliberately bad (see data/samples/README.md) so a default run shows rejections.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

SEED = 20240506
BASE = datetime(2024, 5, 6, 9, 0, 0, tzinfo=timezone.utc)  # a Monday, 09:00 UTC
ROOT = Path(__file__).resolve().parent
UTC = timezone.utc

rng = random.Random(SEED)


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

def at(minutes: float, seconds: int = 0, base: datetime = BASE) -> datetime:
    return base + timedelta(minutes=minutes, seconds=seconds)


def iso(moment: datetime) -> str:
    """GitHub's and the envelopes' UTC form: 2024-05-06T09:00:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_offset(moment: datetime, hours: int) -> str:
    """A commit timestamp in the author's own offset, as git records it: 2024-05-06T02:02:11-07:00."""
    local = moment.astimezone(timezone(timedelta(hours=hours)))
    text = local.strftime("%Y-%m-%dT%H:%M:%S%z")
    return text[:-2] + ":" + text[-2:]


def aws_ms(moment: datetime) -> str:
    """CloudWatch's alarm timestamp form: 2019-10-02T17:04:40.989+0000."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def boto_iso(moment: datetime) -> str:
    """How a boto3 datetime prints with isoformat(): 2024-05-06T10:36:14.523000+00:00."""
    return moment.astimezone(UTC).isoformat()


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def sha(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


def uuid_like(seed: str) -> str:
    h = hashlib.sha256(seed.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}"


def node_id(prefix: str, number: int) -> str:
    return base64.b64encode(f"{prefix}{number}".encode()).decode()


def log_event_id(moment: datetime, seq: int) -> str:
    """A FilterLogEvents eventId: a 56-digit decimal string."""
    body = f"{epoch_ms(moment):015d}{rng.randrange(10**20):020d}{seq:021d}"
    return body[:56]


# --------------------------------------------------------------------------------------------
# GitHub objects (shapes of the octokit/webhooks api.github.com payload examples)
# --------------------------------------------------------------------------------------------

class GitHost:
    """github.com or a GitHub Enterprise Server: where html and API URLs point."""

    def __init__(self, web: str, api: str, avatars: str):
        self.web, self.api, self.avatars = web, api, avatars


GITHUB_COM = GitHost("https://github.com", "https://api.github.com", "https://avatars.githubusercontent.com")
ACME_GHES = GitHost("https://github.acme-corp.example", "https://github.acme-corp.example/api/v3",
                    "https://github.acme-corp.example/avatars")


def user(host: GitHost, login: str, uid: int, kind: str = "User") -> dict:
    api = f"{host.api}/users/{login}"
    return {
        "login": login, "id": uid, "node_id": node_id("04:User", uid),
        "avatar_url": f"{host.avatars}/u/{uid}?v=4", "gravatar_id": "",
        "url": api, "html_url": f"{host.web}/{login}",
        "followers_url": f"{api}/followers", "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}", "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions", "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos", "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events", "type": kind, "site_admin": False,
    }


def organization(host: GitHost, login: str, oid: int) -> dict:
    api = f"{host.api}/orgs/{login}"
    return {
        "login": login, "id": oid, "node_id": node_id("012:Organization", oid), "url": api,
        "repos_url": f"{api}/repos", "events_url": f"{api}/events", "hooks_url": f"{api}/hooks",
        "issues_url": f"{api}/issues", "members_url": f"{api}/members{{/member}}",
        "public_members_url": f"{api}/public_members{{/member}}",
        "avatar_url": f"{host.avatars}/u/{oid}?v=4", "description": "",
    }


class Repo:
    def __init__(self, host: GitHost, org: dict, name: str, rid: int, default_branch: str = "main",
                 language: str = "Python", description: str | None = None):
        self.host, self.org, self.name, self.id = host, org, name, rid
        self.full_name = f"{org['login']}/{name}"
        self.default_branch, self.language, self.description = default_branch, language, description
        self.html_url = f"{host.web}/{self.full_name}"
        self.api_url = f"{host.api}/repos/{self.full_name}"

    def obj(self, *, push_style: bool = False) -> dict:
        """The `repository` object. Push payloads carry epoch-second created_at/pushed_at and an
        owner with name/email, as GitHub sends them."""
        h, api = self.host, self.api_url
        owner = user(h, self.org["login"], self.org["id"], "Organization")
        if push_style:
            owner = {"name": self.org["login"], "email": None, **owner}
        created = datetime(2021, 3, 1, 12, 0, tzinfo=UTC) + timedelta(days=self.id % 400)
        data = {
            "id": self.id, "node_id": node_id("010:Repository", self.id), "name": self.name,
            "full_name": self.full_name, "private": True, "owner": owner, "html_url": self.html_url,
            "description": self.description, "fork": False, "url": self.html_url if push_style else api,
            "forks_url": f"{api}/forks", "keys_url": f"{api}/keys{{/key_id}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}", "teams_url": f"{api}/teams",
            "hooks_url": f"{api}/hooks", "issue_events_url": f"{api}/issues/events{{/number}}",
            "events_url": f"{api}/events", "assignees_url": f"{api}/assignees{{/user}}",
            "branches_url": f"{api}/branches{{/branch}}", "tags_url": f"{api}/tags",
            "blobs_url": f"{api}/git/blobs{{/sha}}", "git_tags_url": f"{api}/git/tags{{/sha}}",
            "git_refs_url": f"{api}/git/refs{{/sha}}", "trees_url": f"{api}/git/trees{{/sha}}",
            "statuses_url": f"{api}/statuses/{{sha}}", "languages_url": f"{api}/languages",
            "stargazers_url": f"{api}/stargazers", "contributors_url": f"{api}/contributors",
            "subscribers_url": f"{api}/subscribers", "subscription_url": f"{api}/subscription",
            "commits_url": f"{api}/commits{{/sha}}", "git_commits_url": f"{api}/git/commits{{/sha}}",
            "comments_url": f"{api}/comments{{/number}}", "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "contents_url": f"{api}/contents/{{+path}}", "compare_url": f"{api}/compare/{{base}}...{{head}}",
            "merges_url": f"{api}/merges", "archive_url": f"{api}/{{archive_format}}{{/ref}}",
            "downloads_url": f"{api}/downloads", "issues_url": f"{api}/issues{{/number}}",
            "pulls_url": f"{api}/pulls{{/number}}", "milestones_url": f"{api}/milestones{{/number}}",
            "notifications_url": f"{api}/notifications{{?since,all,participating}}",
            "labels_url": f"{api}/labels{{/name}}", "releases_url": f"{api}/releases{{/id}}",
            "deployments_url": f"{api}/deployments",
            "created_at": int(created.timestamp()) if push_style else iso(created),
            "updated_at": iso(BASE - timedelta(days=2)),
            "pushed_at": int(BASE.timestamp()) if push_style else iso(BASE - timedelta(hours=1)),
            "git_url": f"git://{h.web.split('//')[1]}/{self.full_name}.git",
            "ssh_url": f"git@{h.web.split('//')[1]}:{self.full_name}.git",
            "clone_url": f"{self.html_url}.git", "svn_url": self.html_url, "homepage": None,
            "size": 2048 + self.id % 997, "stargazers_count": 0, "watchers_count": 0,
            "language": self.language, "has_issues": True, "has_projects": False, "has_downloads": True,
            "has_wiki": False, "has_pages": False, "has_discussions": False, "forks_count": 0,
            "mirror_url": None, "archived": False, "disabled": False, "open_issues_count": 3,
            "license": None, "allow_forking": False, "is_template": False,
            "web_commit_signoff_required": False, "topics": [], "visibility": "private",
            "forks": 0, "open_issues": 3, "watchers": 0, "default_branch": self.default_branch,
        }
        if push_style:
            data["stargazers"] = 0
            data["master_branch"] = self.default_branch
            data["organization"] = self.org["login"]
        return data


class Person:
    def __init__(self, host: GitHost, login: str, uid: int, name: str, email: str, tz: int):
        self.host, self.login, self.id, self.name, self.email, self.tz = host, login, uid, name, email, tz

    def user(self) -> dict:
        return user(self.host, self.login, self.id)

    def git(self, with_username: bool = True) -> dict:
        out = {"name": self.name, "email": self.email}
        if with_username:
            out["username"] = self.login
        return out


WEB_FLOW = {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"}


def push_commit(repo: Repo, cid: str, message: str, moment: datetime, author: Person, *,
                committer: dict | None = None, distinct: bool = True, added=(), removed=(), modified=()):
    return {
        "id": cid, "tree_id": sha("tree" + cid), "distinct": distinct, "message": message,
        "timestamp": iso_offset(moment, author.tz), "url": f"{repo.html_url}/commit/{cid}",
        "author": author.git(), "committer": committer or author.git(),
        "added": list(added), "removed": list(removed), "modified": list(modified),
    }


def push_event(repo: Repo, ref: str, before: str, after: str, commits: list, pusher: Person,
               *, created: bool = False, deleted: bool = False, forced: bool = False,
               base_ref: str | None = None, installation: dict | None = None) -> dict:
    if created:
        compare = f"{repo.html_url}/compare/{ref.split('/', 2)[-1]}" if len(commits) != 1 else f"{repo.html_url}/commit/{after}"
    else:
        compare = f"{repo.html_url}/compare/{before[:12]}...{after[:12]}"
    body = {
        "ref": ref, "before": before, "after": after,
        "repository": repo.obj(push_style=True),
        "pusher": {"name": pusher.login, "email": pusher.email},
        "organization": repo.org, "sender": pusher.user(),
    }
    if installation:
        body["installation"] = installation
    body.update({
        "created": created, "deleted": deleted, "forced": forced, "base_ref": base_ref, "compare": compare,
        "commits": commits, "head_commit": commits[-1] if commits else None,
    })
    return body


ZERO = "0" * 40


def pr_object(repo: Repo, number: int, prid: int, title: str, body: str | None, author: Person, *,
              head_ref: str, head_sha: str, base_sha: str, created: datetime, updated: datetime,
              state: str = "open", closed: datetime | None = None, merged: datetime | None = None,
              merge_commit_sha: str | None = None, merged_by: Person | None = None, draft: bool = False,
              commits: int = 1, additions: int = 10, deletions: int = 2, changed_files: int = 1,
              labels: list | None = None, optional_fields: bool = True) -> dict:
    api, web = repo.api_url, repo.html_url
    label_objs = [{"id": 5100000000 + i, "node_id": node_id("05:Label", 5100000000 + i),
                   "url": f"{api}/labels/{name}", "name": name, "color": color, "default": False,
                   "description": None} for i, (name, color) in enumerate(labels or [])]
    side = lambda ref, sha_: {  # noqa: E731
        "label": f"{repo.org['login']}:{ref}", "ref": ref, "sha": sha_,
        "user": user(repo.host, repo.org["login"], repo.org["id"], "Organization"), "repo": repo.obj(),
    }
    pr = {
        "url": f"{api}/pulls/{number}", "id": prid, "node_id": node_id("011:PullRequest", prid),
        "html_url": f"{web}/pull/{number}", "diff_url": f"{web}/pull/{number}.diff",
        "patch_url": f"{web}/pull/{number}.patch", "issue_url": f"{api}/issues/{number}",
        "number": number, "state": state, "locked": False, "title": title, "user": author.user(),
        "body": body, "created_at": iso(created), "updated_at": iso(updated),
        "closed_at": iso(closed) if closed else None, "merged_at": iso(merged) if merged else None,
        "merge_commit_sha": merge_commit_sha, "assignee": None, "assignees": [],
        "requested_reviewers": [], "requested_teams": [], "labels": label_objs, "milestone": None,
        "draft": draft,
        "commits_url": f"{api}/pulls/{number}/commits", "review_comments_url": f"{api}/pulls/{number}/comments",
        "review_comment_url": f"{api}/pulls/comments{{/number}}", "comments_url": f"{api}/issues/{number}/comments",
        "statuses_url": f"{api}/statuses/{head_sha}",
        "head": side(head_ref, head_sha), "base": side(repo.default_branch, base_sha),
        "_links": {
            "self": {"href": f"{api}/pulls/{number}"}, "html": {"href": f"{web}/pull/{number}"},
            "issue": {"href": f"{api}/issues/{number}"}, "comments": {"href": f"{api}/issues/{number}/comments"},
            "review_comments": {"href": f"{api}/pulls/{number}/comments"},
            "review_comment": {"href": f"{api}/pulls/comments{{/number}}"},
            "commits": {"href": f"{api}/pulls/{number}/commits"},
            "statuses": {"href": f"{api}/statuses/{head_sha}"},
        },
        "author_association": "MEMBER", "auto_merge": None, "active_lock_reason": None,
        "merged": merged is not None, "mergeable": None, "rebaseable": None, "mergeable_state": "unknown",
        "merged_by": merged_by.user() if merged_by else None, "comments": 0, "review_comments": 1,
        "maintainer_can_modify": False, "commits": commits, "additions": additions,
        "deletions": deletions, "changed_files": changed_files,
    }
    if not optional_fields:
        # Older deliveries and some GitHub Enterprise Server versions leave these out.
        for key in ("draft", "merged", "merge_commit_sha", "auto_merge", "active_lock_reason",
                    "mergeable", "rebaseable", "mergeable_state", "merged_by", "requested_teams"):
            pr.pop(key, None)
    return pr


def pr_event(action: str, repo: Repo, pr: dict, sender: Person, *, before: str | None = None,
             after: str | None = None, installation: dict | None = None) -> dict:
    body = {"action": action, "number": pr["number"], "pull_request": pr}
    if action == "synchronize":
        body["before"], body["after"] = before, after
    body.update({"repository": repo.obj(), "organization": repo.org, "sender": sender.user()})
    if installation:
        body["installation"] = installation
    return body


def deployment_obj(repo: Repo, did: int, sha_: str, ref: str, env: str, creator: dict, created: datetime,
                   updated: datetime, payload, *, description: str | None = None, production: bool | None = None,
                   modern: bool = True) -> dict:
    api = repo.api_url
    d = {
        "url": f"{api}/deployments/{did}", "id": did, "node_id": node_id("010:Deployment", did),
        "sha": sha_, "ref": ref, "task": "deploy", "payload": payload, "original_environment": env,
        "environment": env, "description": description, "creator": creator,
        "created_at": iso(created), "updated_at": iso(updated),
        "statuses_url": f"{api}/deployments/{did}/statuses", "repository_url": api,
    }
    if modern:
        d["transient_environment"] = False
        d["production_environment"] = production if production is not None else env == "production"
        d["performed_via_github_app"] = None
    return d


def deployment_status_obj(repo: Repo, did: int, sid: int, state: str, env: str, creator: dict, moment: datetime,
                          *, description: str = "", target_url: str = "", environment_url: str = "",
                          log_url: str | None = None, modern: bool = True) -> dict:
    api = repo.api_url
    s = {
        "url": f"{api}/deployments/{did}/statuses/{sid}", "id": sid,
        "node_id": node_id("016:DeploymentStatus", sid), "state": state, "creator": creator,
        "description": description, "environment": env, "target_url": target_url,
        "created_at": iso(moment), "updated_at": iso(moment),
        "deployment_url": f"{api}/deployments/{did}", "repository_url": api,
    }
    if modern:
        s["environment_url"] = environment_url
        s["log_url"] = log_url if log_url is not None else target_url
        s["performed_via_github_app"] = None
    return s


def workflow_objs(repo: Repo, wid: int, name: str, path: str, run_id: int, run_number: int, *,
                  event: str, status: str, conclusion: str | None, head_branch: str, head_sha: str,
                  head_message: str, head_author: Person, created: datetime, updated: datetime,
                  actor: Person, pull_requests: list | None = None, attempt: int = 1) -> tuple[dict, dict]:
    api, web = repo.api_url, repo.html_url
    workflow = {
        "badge_url": f"{web}/workflows/{name}/badge.svg", "created_at": "2023-01-10T08:00:00.000Z",
        "html_url": f"{web}/blob/{repo.default_branch}/{path}", "id": wid, "name": name,
        "node_id": f"W_kwDO{wid:08d}", "path": path, "state": "active",
        "updated_at": "2024-02-01T10:00:00.000Z", "url": f"{api}/actions/workflows/{wid}",
    }
    run = {
        "name": name, "artifacts_url": f"{api}/actions/runs/{run_id}/artifacts",
        "cancel_url": f"{api}/actions/runs/{run_id}/cancel", "check_suite_url": f"{api}/check-suites/{run_id + 7}",
        "check_suite_id": run_id + 7, "check_suite_node_id": f"CS_kwDO{run_id:010d}", "conclusion": conclusion,
        "created_at": iso(created), "event": event, "head_branch": head_branch,
        "head_commit": {"author": head_author.git(False), "committer": WEB_FLOW if event == "push" and head_branch == repo.default_branch else head_author.git(False),
                        "id": head_sha, "message": head_message, "timestamp": iso(created - timedelta(seconds=40)),
                        "tree_id": sha("tree" + head_sha)},
        "head_repository": repo.obj(), "head_sha": head_sha, "path": path, "display_title": head_message.split("\n")[0],
        "html_url": f"{web}/actions/runs/{run_id}", "id": run_id, "jobs_url": f"{api}/actions/runs/{run_id}/jobs",
        "logs_url": f"{api}/actions/runs/{run_id}/logs", "node_id": f"WFR_kwLO{run_id:010d}",
        "pull_requests": pull_requests or [], "repository": repo.obj(), "rerun_url": f"{api}/actions/runs/{run_id}/rerun",
        "run_number": run_number, "run_attempt": attempt, "run_started_at": iso(created),
        "previous_attempt_url": None, "status": status, "updated_at": iso(updated), "url": f"{api}/actions/runs/{run_id}",
        "workflow_id": wid, "workflow_url": f"{api}/actions/workflows/{wid}", "actor": actor.user(),
        "triggering_actor": actor.user(),
    }
    return workflow, run


def run_pr_ref(repo: Repo, number: int, prid: int, head_ref: str, head_sha: str, base_sha: str) -> dict:
    slim = {"id": repo.id, "url": repo.api_url, "name": repo.name}
    return {"url": f"{repo.api_url}/pulls/{number}", "id": prid, "number": number,
            "head": {"ref": head_ref, "sha": head_sha, "repo": slim},
            "base": {"ref": repo.default_branch, "sha": base_sha, "repo": slim}}


def release_obj(repo: Repo, rid: int, tag: str, name: str | None, author: Person, created: datetime,
                published: datetime | None, *, draft: bool = False, prerelease: bool = False,
                body: str | None = None, assets: list | None = None) -> dict:
    api, web = repo.api_url, repo.html_url
    asset_objs = []
    for i, (fname, size, ctype) in enumerate(assets or []):
        aid = rid * 10 + i
        asset_objs.append({
            "url": f"{api}/releases/assets/{aid}", "id": aid, "node_id": node_id("012:ReleaseAsset", aid),
            "name": fname, "label": "", "uploader": author.user(), "content_type": ctype, "state": "uploaded",
            "size": size, "download_count": 0, "created_at": iso(created), "updated_at": iso(created),
            "browser_download_url": f"{web}/releases/download/{tag}/{fname}",
        })
    return {
        "url": f"{api}/releases/{rid}", "assets_url": f"{api}/releases/{rid}/assets",
        "upload_url": f"{api.replace('api.github.com', 'uploads.github.com')}/releases/{rid}/assets{{?name,label}}",
        "html_url": f"{web}/releases/tag/{tag}", "id": rid, "node_id": node_id("07:Release", rid),
        "tag_name": tag, "target_commitish": repo.default_branch, "name": name, "draft": draft,
        "author": author.user(), "prerelease": prerelease, "created_at": iso(created),
        "published_at": iso(published) if published else None, "assets": asset_objs,
        "tarball_url": f"{api}/tarball/{tag}", "zipball_url": f"{api}/zipball/{tag}", "body": body,
    }


# --------------------------------------------------------------------------------------------
# AWS records and the plugin envelopes (docs/envelopes.md)
# --------------------------------------------------------------------------------------------

class Account:
    def __init__(self, account_id: str, region: str):
        self.id, self.region = account_id, region


def metric_record(acct: Account, qid: str, namespace: str, metric: str, dimensions: dict, stat: str,
                  period: int, unit: str, points: list[tuple[datetime, float]]) -> dict:
    """One GetMetricData MetricDataResults item in its envelope. GetMetricData returns the newest
    datapoint first (ScanBy TimestampDescending is the default)."""
    points = sorted(points, key=lambda p: p[0], reverse=True)
    return {
        "query": {"id": qid, "namespace": namespace, "metric_name": metric,
                  "dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                  "stat": stat, "period": period, "unit": unit},
        "region": acct.region, "account_id": acct.id,
        "result": {"Id": qid, "Label": metric, "Timestamps": [boto_iso(t) for t, _ in points],
                   "Values": [float(round(v, 4)) for _, v in points], "StatusCode": "Complete"},
    }


class LogWriter:
    """FilterLogEvents `events[]` items for one log group, in their envelope."""

    def __init__(self, acct: Account, group: str):
        self.acct, self.group, self.records, self.seq = acct, group, [], 0

    def add(self, stream: str, moment: datetime, message: str, ingest_delay_ms: int = 0) -> dict:
        self.seq += 1
        delay = ingest_delay_ms or rng.randint(180, 2400)
        record = {"log_group": self.group, "region": self.acct.region, "account_id": self.acct.id,
                  "event": {"logStreamName": stream, "timestamp": epoch_ms(moment), "message": message,
                            "ingestionTime": epoch_ms(moment) + delay, "eventId": log_event_id(moment, self.seq)}}
        self.records.append(record)
        return record


def lambda_stream(moment: datetime, seed: str) -> str:
    return f"{moment:%Y/%m/%d}/[$LATEST]{hashlib.md5(seed.encode()).hexdigest()}"


def lambda_invocation(logs: LogWriter, stream: str, start: datetime, *, outcome: str = "ok",
                      duration_ms: float = 84.2, lines: list[str] | None = None) -> None:
    """The lines one Lambda invocation writes (Python runtime formats)."""
    rid = uuid_like(f"{logs.group}{start.isoformat()}{rng.random()}")
    logs.add(stream, start, f"START RequestId: {rid} Version: $LATEST\n")
    t = start + timedelta(milliseconds=12)
    for line in lines or []:
        logs.add(stream, t, f"[INFO]\t{t.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z\t{rid}\t{line}\n")
        t += timedelta(milliseconds=30)
    if outcome == "error":
        t = start + timedelta(milliseconds=duration_ms - 5)
        logs.add(stream, t, f"[ERROR]\t{t.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z\t{rid}\tTimeoutError: "
                            f"payments-gateway call exceeded 2000 ms (attempt 3/3)\n")
    if outcome == "timeout":
        t = start + timedelta(milliseconds=duration_ms)
        logs.add(stream, t, f"{t.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z {rid} Task timed out after 6.01 seconds\n\n")
    end = start + timedelta(milliseconds=duration_ms + 1)
    logs.add(stream, end, f"END RequestId: {rid}\n")
    logs.add(stream, end, f"REPORT RequestId: {rid}\tDuration: {duration_ms:.2f} ms\tBilled Duration: "
                          f"{int(duration_ms) + 1} ms\tMemory Size: 512 MB\tMax Memory Used: {rng.randint(120, 190)} MB\t\n")


def ct_identity(acct: Account, kind: str, name: str, *, session: str | None = None, mfa: bool = False,
                key: str | None = None) -> dict:
    if kind == "IAMUser":
        ident = {"type": "IAMUser", "principalId": "AIDA" + sha(name)[:16].upper(),
                 "arn": f"arn:aws:iam::{acct.id}:user/{name}", "accountId": acct.id,
                 "accessKeyId": key or "", "userName": name}
        if key:
            ident["sessionContext"] = {"sessionIssuer": {}, "webIdFederationData": {},
                                       "attributes": {"creationDate": iso(BASE - timedelta(hours=1)),
                                                      "mfaAuthenticated": "true" if mfa else "false"}}
        return ident
    if kind == "AssumedRole":
        role_pid = "AROA" + sha(name)[:16].upper()
        return {"type": "AssumedRole", "principalId": f"{role_pid}:{session}",
                "arn": f"arn:aws:sts::{acct.id}:assumed-role/{name}/{session}", "accountId": acct.id,
                "accessKeyId": "ASIA" + sha(name + (session or ""))[:16].upper(),
                "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": role_pid,
                                                     "arn": f"arn:aws:iam::{acct.id}:role/{name}",
                                                     "accountId": acct.id, "userName": name},
                                   "webIdFederationData": {},
                                   "attributes": {"creationDate": iso(BASE), "mfaAuthenticated": "false"}}}
    if kind == "Root":
        return {"type": "Root", "principalId": acct.id, "arn": f"arn:aws:iam::{acct.id}:root",
                "accountId": acct.id, "accessKeyId": key or ""}
    raise ValueError(kind)


def ct_record(acct: Account, moment: datetime, source: str, name: str, identity: dict, *, ip: str,
              agent: str, request=None, response=None, error: tuple[str, str] | None = None,
              additional: dict | None = None, read_only: bool = False, resources: list | None = None,
              event_type: str = "AwsApiCall", region: str | None = None, version: str = "1.09") -> dict:
    rec = {"eventVersion": version, "userIdentity": identity, "eventTime": iso(moment), "eventSource": source,
           "eventName": name, "awsRegion": region or acct.region, "sourceIPAddress": ip, "userAgent": agent}
    if error:
        if error[0] is not None:
            rec["errorCode"] = error[0]
        rec["errorMessage"] = error[1]
    rec["requestParameters"] = request
    rec["responseElements"] = response
    if additional is not None:
        rec["additionalEventData"] = additional
    if event_type == "AwsApiCall":
        rec["requestID"] = uuid_like(f"req{moment.isoformat()}{name}")
    rec["eventID"] = uuid_like(f"evt{moment.isoformat()}{name}{identity.get('arn')}")
    if event_type == "AwsApiCall":
        rec["readOnly"] = read_only
    if resources:
        rec["resources"] = resources
    rec["eventType"] = event_type
    rec["managementEvent"] = True
    rec["recipientAccountId"] = acct.id
    rec["eventCategory"] = "Management"
    if event_type == "AwsApiCall" and not source.startswith("signin"):
        rec["tlsDetails"] = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                             "clientProvidedHostHeader": f"{source.split('.')[0]}.{region or acct.region}.amazonaws.com"}
    return rec


class Alarm:
    def __init__(self, acct: Account, name: str, namespace: str, metric: str, dimensions: dict, stat: str,
                 period: int, threshold: float, tags: dict, description: str, op: str = "GreaterThanThreshold",
                 evaluation_periods: int = 1, datapoints: int = 1):
        self.acct, self.name, self.namespace, self.metric = acct, name, namespace, metric
        self.dimensions, self.stat, self.period, self.threshold = dimensions, stat, period, threshold
        self.tags, self.description, self.op = tags, description, op
        self.evaluation_periods, self.datapoints = evaluation_periods, datapoints
        self.arn = f"arn:aws:cloudwatch:{acct.region}:{acct.id}:alarm:{name}"
        self.state = "INSUFFICIENT_DATA"
        self.state_reason = "Unchecked: Initial alarm creation"
        self.state_reason_data: dict | None = None
        self.state_at = BASE - timedelta(days=30)
        self.history: list[dict] = []
        self.events: list[dict] = []

    def describe(self) -> dict:
        """DescribeAlarms MetricAlarms entry (the fields the envelope keeps) plus its Tags."""
        return {
            "AlarmName": self.name, "AlarmArn": self.arn, "AlarmDescription": self.description,
            "ActionsEnabled": True, "Namespace": self.namespace, "MetricName": self.metric,
            "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions.items()],
            "Statistic": self.stat, "Period": self.period, "EvaluationPeriods": self.evaluation_periods,
            "DatapointsToAlarm": self.datapoints, "Threshold": self.threshold, "ComparisonOperator": self.op,
            "TreatMissingData": "missing",
            "Tags": [{"Key": k, "Value": v} for k, v in self.tags.items()],
        }

    def transition(self, moment: datetime, new: str, values: list[tuple[datetime, float]]) -> None:
        """Record one state change as DescribeAlarmHistory and EventBridge would show it."""
        moment = moment.replace(microsecond=(moment.microsecond // 1000) * 1000)
        recent = [v for _, v in values]
        start = values[0][0] if values else moment
        query = moment - timedelta(milliseconds=3)
        reason_data = {"version": "1.0", "queryDate": aws_ms(query), "startDate": aws_ms(start),
                       "statistic": self.stat, "period": self.period, "recentDatapoints": recent,
                       "threshold": self.threshold,
                       "evaluatedDatapoints": [{"timestamp": aws_ms(t), "sampleCount": 60.0, "value": v}
                                               for t, v in values]}
        word = {"ALARM": "was greater than", "OK": "was not greater than"}
        if new == "INSUFFICIENT_DATA":
            reason = (f"Insufficient Data: {len(values) or 1} datapoint was unknown.")
            reason_data = {"version": "1.0", "queryDate": aws_ms(query), "statistic": self.stat,
                           "period": self.period, "recentDatapoints": [], "threshold": self.threshold,
                           "evaluatedDatapoints": [{"timestamp": aws_ms(start)}]}
        else:
            pts = ", ".join(f"{v} ({t:%d/%m/%y %H:%M:%S})" for t, v in values)
            reason = (f"Threshold Crossed: {len(values)} out of the last {self.evaluation_periods} datapoints "
                      f"[{pts}] {word[new]} the threshold ({self.threshold}) (minimum {self.datapoints} "
                      f"datapoint{'s' if self.datapoints > 1 else ''} for "
                      f"{'OK -> ALARM' if new == 'ALARM' else 'ALARM -> OK'} transition).")
        old = {"stateValue": self.state, "stateReason": self.state_reason}
        if self.state_reason_data:
            old["stateReasonData"] = self.state_reason_data
        history_data = {"version": "1.0", "oldState": old,
                        "newState": {"stateValue": new, "stateReason": reason, "stateReasonData": reason_data}}
        self.history.append({
            "region": self.acct.region, "account_id": self.acct.id, "alarm": self.describe(),
            "item": {"AlarmName": self.name, "AlarmType": "MetricAlarm", "Timestamp": boto_iso(moment),
                     "HistoryItemType": "StateUpdate",
                     "HistorySummary": f"Alarm updated from {self.state} to {new}",
                     "HistoryData": json.dumps(history_data, separators=(",", ":"))},
        })
        previous = {"reason": self.state_reason, "timestamp": aws_ms(self.state_at), "value": self.state}
        if self.state_reason_data:
            previous["reasonData"] = json.dumps(self.state_reason_data, separators=(",", ":"))
        self.events.append({
            "version": "0", "id": uuid_like(f"eb{self.name}{moment.isoformat()}"),
            "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
            "account": self.acct.id, "time": iso(moment), "region": self.acct.region, "resources": [self.arn],
            "detail": {
                "alarmName": self.name,
                "state": {"value": new, "reason": reason,
                          "reasonData": json.dumps(reason_data, separators=(",", ":")),
                          "timestamp": aws_ms(moment)},
                "previousState": previous,
                "configuration": {
                    "description": self.description,
                    "metrics": [{"id": uuid_like(self.name), "metricStat": {
                        "metric": {"dimensions": dict(self.dimensions), "name": self.metric,
                                   "namespace": self.namespace},
                        "period": self.period, "stat": self.stat}, "returnData": True}]},
            },
        })
        self.state, self.state_reason, self.state_reason_data, self.state_at = new, reason, reason_data, moment


def ct_envelope(acct: Account, group: str, rec: dict, seq: int, *, message: str | None = None) -> dict:
    """A CloudTrail record as a trail delivers it to CloudWatch Logs: one log event, the record as
    compact JSON in `message`, stream <account>_CloudTrail_<region>."""
    moment = datetime.fromisoformat(rec["eventTime"].replace("Z", "+00:00"))
    delivered = moment + timedelta(seconds=rng.randint(40, 300))
    return {"log_group": group, "region": acct.region, "account_id": acct.id,
            "event": {"logStreamName": f"{acct.id}_CloudTrail_{acct.region}", "timestamp": epoch_ms(delivered),
                      "message": message if message is not None else json.dumps(rec, separators=(",", ":")),
                      "ingestionTime": epoch_ms(delivered) + rng.randint(200, 900),
                      "eventId": log_event_id(delivered, seq)}}


def poller_reads(acct: Account, start: datetime, every_min: int, count: int) -> list[dict]:
    """The integrations poller's own read calls (GetMetricData, FilterLogEvents), as CloudTrail logs them."""
    reader = ct_identity(acct, "AssumedRole", "integrations-workbench-reader", session="poller")
    agent = ("Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux#6.5.0-1018-aws md/arch#x86_64 lang/python#3.11.7 "
             "md/pyimpl#CPython cfg/retry-mode#standard Botocore/1.34.84")
    out = []
    for i in range(count):
        moment = start + timedelta(minutes=every_min * i, seconds=rng.randint(2, 9))
        window_start = iso(moment - timedelta(minutes=every_min + 5))
        out.append(ct_record(acct, moment, "monitoring.amazonaws.com", "GetMetricData", reader, ip="198.51.100.40",
                             agent=agent, read_only=True,
                             request={"startTime": window_start, "endTime": iso(moment), "scanBy": "TimestampDescending",
                                      "maxDatapoints": 100800}))
        out.append(ct_record(acct, moment + timedelta(seconds=3), "logs.amazonaws.com", "FilterLogEvents", reader,
                             ip="198.51.100.40", agent=agent, read_only=True,
                             request={"logGroupName": "CloudTrail/DefaultLogGroup", "startTime": epoch_ms(moment) - 900000,
                                      "endTime": epoch_ms(moment), "interleaved": True}))
    return out


def series(start: datetime, end: datetime, step_s: int, fn) -> list[tuple[datetime, float]]:
    out, t = [], start
    while t <= end:
        out.append((t, fn(t)))
        t += timedelta(seconds=step_s)
    return out


def between(t: datetime, a: datetime, b: datetime) -> bool:
    return a <= t < b


# --------------------------------------------------------------------------------------------
# tenant "demo": github.com org demo-shop, AWS 123456789012 us-east-1
# --------------------------------------------------------------------------------------------

def demo() -> dict:
    out: dict[tuple[str, str], list] = {}

    def emit(plugin: str, source: str, record: dict) -> None:
        out.setdefault((plugin, source), []).append(record)

    gh = GITHUB_COM
    org = organization(gh, "demo-shop", 90412233)
    checkout = Repo(gh, org, "checkout-api", 702113408, language="Python", description="Checkout HTTP API (Lambda)")
    payments = Repo(gh, org, "payments-worker", 702113977, language="Go", description="Settlement worker (ECS)")
    dana = Person(gh, "dana-kim", 58210341, "Dana Kim", "dana@demo-shop.example", -7)
    sam = Person(gh, "sam-okafor", 61733092, "Sam Okafor", "sam.okafor@demo-shop.example", 1)
    lee = Person(gh, "lee-chen", 49920177, "Lee Chen", "lee@demo-shop.example", 8)
    bot = user(gh, "github-actions[bot]", 41898282, "Bot")
    install = {"id": 48811202, "node_id": node_id("023:IntegrationInstallation", 48811202)}
    acct = Account("123456789012", "us-east-1")

    # ---- checkout-api: PR #41 ------------------------------------------------------------
    c0, c1, c2, c3 = (sha(f"demo/checkout/{n}") for n in ("base", "c1", "c2", "c3"))
    s1, r1, m2 = sha("demo/checkout/squash-41"), sha("demo/checkout/revert"), sha("demo/checkout/merge-42")
    branch = "feature/retry-timeouts"
    emit("github", "push", push_event(checkout, f"refs/heads/{branch}", ZERO, c2, [
        push_commit(checkout, c1, "Add retry with backoff to payments-gateway client", at(1, 10), dana,
                    modified=["checkout/gateway.py", "tests/test_gateway.py"]),
        push_commit(checkout, c2, "Lower gateway timeout to 2s", at(1, 50), dana, modified=["checkout/settings.py"]),
    ], dana, created=True, installation=install))
    pr41 = dict(repo=checkout, number=41, prid=1853302211, title="Retry payments-gateway calls with backoff",
                body="Retries gateway calls up to 3 times with jittered backoff and lowers the per-call "
                     "timeout to 2s.\n\nCloses #38", author=dana, head_ref=branch, base_sha=c0,
                created=at(5, 12), labels=[("reliability", "0e8a16")])
    emit("github", "pull_request", pr_event("opened", checkout, pr_object(**pr41, head_sha=c2, updated=at(5, 12)),
                                            dana, installation=install))
    wf_ci = (61022101, "CI", ".github/workflows/ci.yml")
    wf_deploy = (61022150, "Deploy", ".github/workflows/deploy.yml")
    pr41_ref = lambda head: [run_pr_ref(checkout, 41, 1853302211, branch, head, c0)]  # noqa: E731
    wf, run = workflow_objs(checkout, *wf_ci, 8976543201, 311, event="pull_request", status="completed",
                            conclusion="success", head_branch=branch, head_sha=c2,
                            head_message="Lower gateway timeout to 2s", head_author=dana, created=at(5, 20),
                            updated=at(7, 40), actor=dana, pull_requests=pr41_ref(c2))
    emit("github", "workflow_run", {"action": "completed", "workflow_run": run, "workflow": wf, "repository": checkout.obj(),
                                    "organization": org, "sender": dana.user(), "installation": install})
    emit("github", "push", push_event(checkout, f"refs/heads/{branch}", c2, c3, [
        push_commit(checkout, c3, "Cap retries at 3 per review", at(30, 40), dana, modified=["checkout/gateway.py"]),
    ], dana, installation=install))
    emit("github", "pull_request", pr_event("synchronize", checkout,
                                            pr_object(**pr41, head_sha=c3, updated=at(31, 5), commits=3),
                                            dana, before=c2, after=c3, installation=install))
    wf, run = workflow_objs(checkout, *wf_ci, 8976549876, 312, event="pull_request", status="completed",
                            conclusion="success", head_branch=branch, head_sha=c3,
                            head_message="Cap retries at 3 per review", head_author=dana, created=at(31, 12),
                            updated=at(33, 30), actor=dana, pull_requests=pr41_ref(c3))
    emit("github", "workflow_run", {"action": "completed", "workflow_run": run, "workflow": wf, "repository": checkout.obj(),
                                    "organization": org, "sender": dana.user(), "installation": install})
    # a "requested" delivery: filtered by the mapping (only completed runs are events)
    wf, run = workflow_objs(checkout, *wf_ci, 8976561122, 313, event="push", status="queued", conclusion=None,
                            head_branch="main", head_sha=s1, head_message="Retry payments-gateway calls with backoff (#41)",
                            head_author=dana, created=at(48, 15), updated=at(48, 15), actor=sam)
    emit("github", "workflow_run", {"action": "requested", "workflow_run": run, "workflow": wf, "repository": checkout.obj(),
                                    "organization": org, "sender": sam.user(), "installation": install})
    emit("github", "pull_request", pr_event("closed", checkout, pr_object(
        **pr41, head_sha=c3, updated=at(48, 2), state="closed", closed=at(48, 2), merged=at(48, 2),
        merge_commit_sha=s1, merged_by=sam, commits=3, additions=64, deletions=9, changed_files=3), sam,
        installation=install))
    squash_msg = ("Retry payments-gateway calls with backoff (#41)\n\n* Add retry with backoff to payments-gateway "
                  "client\n\n* Lower gateway timeout to 2s\n\n* Cap retries at 3 per review")
    emit("github", "push", push_event(checkout, "refs/heads/main", c0, s1, [
        push_commit(checkout, s1, squash_msg, at(48, 2), dana, committer=WEB_FLOW,
                    modified=["checkout/gateway.py", "checkout/settings.py", "tests/test_gateway.py"]),
    ], sam, installation=install))
    # GitHub deletes the merged branch: a push with no commits (filtered)
    emit("github", "push", push_event(checkout, f"refs/heads/{branch}", c3, ZERO, [], sam, deleted=True,
                                      installation=install))
    wf, run = workflow_objs(checkout, *wf_ci, 8976561122, 313, event="push", status="completed", conclusion="success",
                            head_branch="main", head_sha=s1, head_message=squash_msg, head_author=dana,
                            created=at(48, 15), updated=at(55, 40), actor=sam)
    emit("github", "workflow_run", {"action": "completed", "workflow_run": run, "workflow": wf, "repository": checkout.obj(),
                                    "organization": org, "sender": sam.user(), "installation": install})

    # ---- checkout-api: staging then production deployments of the squash commit ------------------
    def deploy(repo: Repo, did: int, sha_: str, env: str, payload, statuses: list, run_id: int, start: datetime,
               env_url: str, sender: Person) -> None:
        created = start
        dep = deployment_obj(repo, did, sha_, "main", env, bot, created, created, payload,
                             description=f"Deploy {repo.name} to {env}")
        wf, run = workflow_objs(repo, *wf_deploy, run_id, run_id % 1000, event="push", status="in_progress",
                                conclusion=None, head_branch="main", head_sha=sha_, head_message="deploy",
                                head_author=sender, created=created - timedelta(seconds=40), updated=created,
                                actor=sender)
        emit("github", "deployment", {"action": "created", "deployment": dep, "workflow": wf, "workflow_run": run,
                                      "repository": repo.obj(), "organization": org, "sender": bot,
                                      "installation": install})
        for sid, state, moment, desc in statuses:
            status = deployment_status_obj(repo, did, sid, state, env, bot, moment, description=desc,
                                           target_url=f"{repo.html_url}/actions/runs/{run_id}",
                                           environment_url=env_url if state == "success" else "")
            dep_now = dict(dep, updated_at=iso(moment))
            emit("github", "deployment_status", {"action": "created", "deployment_status": status,
                                                 "deployment": dep_now, "check_run": None, "workflow": None,
                                                 "workflow_run": None, "repository": repo.obj(),
                                                 "organization": org, "sender": bot, "installation": install})

    deploy(checkout, 1290011, s1, "staging", {}, [
        (2210001, "in_progress", at(60, 9), "Deploying"),
        (2210007, "success", at(63, 41), "Deployed to checkout-api-staging")], 8976570010, at(60, 5),
        "https://staging.checkout.demo-shop.example", sam)
    deploy(checkout, 1290044, s1, "production", None, [
        (2210052, "in_progress", at(80, 6), "Deploying"),
        (2210060, "success", at(84, 18), "Deployed to checkout-api (version 57)")], 8976581234, at(80, 2),
        "https://checkout.demo-shop.example", sam)

    # ---- checkout-api: revert PR #42 (a merge commit), redeploy, release ------------------------------
    rbranch = "revert-41-feature/retry-timeouts"
    revert_msg = f'Revert "Retry payments-gateway calls with backoff (#41)"\n\nThis reverts commit {s1}.'
    emit("github", "push", push_event(checkout, f"refs/heads/{rbranch}", ZERO, r1, [
        push_commit(checkout, r1, revert_msg, at(100, 20), sam, committer=WEB_FLOW,
                    modified=["checkout/gateway.py", "checkout/settings.py", "tests/test_gateway.py"]),
    ], sam, created=True, installation=install))
    pr42 = dict(repo=checkout, number=42, prid=1853390187, title='Revert "Retry payments-gateway calls with backoff"',
                body="Reverts demo-shop/checkout-api#41: 5xx spike after the production deployment "
                     "(alarm checkout-api-5xx-high).", author=sam, head_ref=rbranch, head_sha=r1, base_sha=s1,
                created=at(100, 30), labels=[("revert", "b60205")])
    emit("github", "pull_request", pr_event("opened", checkout, pr_object(**pr42, updated=at(100, 30)), sam,
                                            installation=install))
    wf, run = workflow_objs(checkout, *wf_ci, 8976590441, 314, event="pull_request", status="completed",
                            conclusion="success", head_branch=rbranch, head_sha=r1, head_message=revert_msg,
                            head_author=sam, created=at(100, 40), updated=at(103, 50), actor=sam,
                            pull_requests=[run_pr_ref(checkout, 42, 1853390187, rbranch, r1, s1)])
    emit("github", "workflow_run", {"action": "completed", "workflow_run": run, "workflow": wf, "repository": checkout.obj(),
                                    "organization": org, "sender": sam.user(), "installation": install})
    emit("github", "pull_request", pr_event("closed", checkout, pr_object(
        **pr42, updated=at(106, 12), state="closed", closed=at(106, 12), merged=at(106, 12), merge_commit_sha=m2,
        merged_by=sam, additions=9, deletions=64, changed_files=3), sam, installation=install))
    merge_msg = f"Merge pull request #42 from demo-shop/{rbranch}\n\n{revert_msg.splitlines()[0]}"
    emit("github", "push", push_event(checkout, "refs/heads/main", s1, m2, [
        push_commit(checkout, r1, revert_msg, at(100, 20), sam, committer=WEB_FLOW, distinct=False,
                    modified=["checkout/gateway.py", "checkout/settings.py", "tests/test_gateway.py"]),
        push_commit(checkout, m2, merge_msg, at(106, 12), sam, committer=WEB_FLOW),
    ], sam, installation=install))
    deploy(checkout, 1290102, m2, "production", None, [
        (2210131, "in_progress", at(112, 7), "Deploying"),
        (2210139, "success", at(115, 49), "Deployed to checkout-api (version 58)")], 8976601877, at(112, 3),
        "https://checkout.demo-shop.example", sam)
    emit("github", "release", {"action": "published", "release": release_obj(
        checkout, 154203311, "v2.14.1", "v2.14.1", sam, at(148, 40), at(150, 0),
        body="## What's changed\n* Revert \"Retry payments-gateway calls with backoff\" by @sam-okafor in #42",
        assets=[("checkout-api-v2.14.1.zip", 1843220, "application/zip")]),
        "repository": checkout.obj(), "organization": org, "sender": sam.user(), "installation": install})

    # ---- payments-worker: CI failure on main, a deployment that errors, a retry -----------------------
    p0, p1, p2, p3 = (sha(f"demo/payments/{n}") for n in ("base", "p1", "p2", "p3"))
    emit("github", "push", push_event(payments, "refs/heads/main", p0, p2, [
        push_commit(payments, p1, "Batch settlement writes (#118)", at(9, 40), lee,
                    modified=["internal/settle/writer.go", "internal/settle/writer_test.go"]),
        push_commit(payments, p2, "Bump aws-sdk-go-v2 to v1.26.1", at(10, 5), lee, modified=["go.mod", "go.sum"]),
    ], lee, installation=install))
    wf, run = workflow_objs(payments, 61029944, "CI", ".github/workflows/ci.yml", 8976547001, 902, event="push",
                            status="completed", conclusion="failure", head_branch="main", head_sha=p2,
                            head_message="Bump aws-sdk-go-v2 to v1.26.1", head_author=lee, created=at(10, 40),
                            updated=at(18, 20), actor=lee)
    emit("github", "workflow_run", {"action": "completed", "workflow_run": run, "workflow": wf, "repository": payments.obj(),
                                    "organization": org, "sender": lee.user(), "installation": install})
    emit("github", "push", push_event(payments, "refs/heads/main", p2, p3, [
        push_commit(payments, p3, "Fix flaky settlement test after SDK bump", at(25, 50), lee,
                    modified=["internal/settle/writer_test.go"]),
    ], lee, installation=install))
    wf, run = workflow_objs(payments, 61029944, "CI", ".github/workflows/ci.yml", 8976551290, 903, event="push",
                            status="completed", conclusion="success", head_branch="main", head_sha=p3,
                            head_message="Fix flaky settlement test after SDK bump", head_author=lee,
                            created=at(26, 10), updated=at(33, 10), actor=lee)
    emit("github", "workflow_run", {"action": "completed", "workflow_run": run, "workflow": wf, "repository": payments.obj(),
                                    "organization": org, "sender": lee.user(), "installation": install})
    deploy(payments, 1290020, p3, "production", None, [
        (2210021, "queued", at(40, 4), "Queued"),
        (2210023, "in_progress", at(40, 30), "Registering task definition"),
        (2210029, "error", at(46, 12), "RegisterTaskDefinition failed: not authorized to perform iam:PassRole")],
        8976556610, at(40, 0), "https://payments.internal.demo-shop.example", lee)
    deploy(payments, 1290031, p3, "production", None, [
        (2210036, "in_progress", at(65, 4), "Registering task definition"),
        (2210041, "success", at(71, 30), "ECS service payments-worker reached a steady state")],
        8976568902, at(65, 0), "https://payments.internal.demo-shop.example", lee)
    # deliberately bad (1 of 3): a push whose commit has no timestamp -> rejected, dead-letter store
    bad = push_event(payments, "refs/heads/chore/bump-deps", p3, sha("demo/payments/bad"), [
        push_commit(payments, sha("demo/payments/bad"), "chore(deps): bump golang.org/x/net to v0.25.0", at(58),
                    lee, modified=["go.mod", "go.sum"])], lee, installation=install)
    del bad["commits"][0]["timestamp"]
    bad["head_commit"] = bad["commits"][0]
    emit("github", "push", bad)

    # ---- CloudWatch: metrics ------------------------------------------------------------------
    def errors_at(t: datetime) -> float:
        m = (t - BASE).total_seconds() / 60
        if 85 <= m < 115:
            return [12, 38, 61, 74, 70, 66][int((m - 85) // 5)]
        return 9 if 115 <= m < 120 else float(rng.choice([0, 0, 0, 1]))

    def alb5xx_at(t: datetime) -> float:
        m = (t - BASE).total_seconds() / 60
        if 85 <= m < 120:
            return [15, 48, 95, 110, 104, 98, 40][int((m - 85) // 5)]
        return 3 if 120 <= m < 125 else float(rng.choice([0, 0, 1, 2]))

    window = (at(30), at(150))
    lb = "app/checkout-api-alb/50dc6c495c0c9188"
    emit("cloudwatch", "metric_data", metric_record(acct, "m1", "AWS/Lambda", "Errors", {"FunctionName": "checkout-api"},
                                                    "Sum", 300, "Count", series(*window, 300, errors_at)))
    emit("cloudwatch", "metric_data", metric_record(acct, "m2", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count",
                                                    {"LoadBalancer": lb}, "Sum", 300, "Count",
                                                    series(*window, 300, alb5xx_at)))
    emit("cloudwatch", "metric_data", metric_record(
        acct, "m3", "AWS/Lambda", "Duration", {"FunctionName": "checkout-api"}, "p99", 300, "Milliseconds",
        series(*window, 300, lambda t: 6010.0 if between(t, at(85), at(115)) else round(rng.uniform(180, 420), 1))))
    emit("cloudwatch", "metric_data", metric_record(
        acct, "m4", "AWS/ECS", "CPUUtilization", {"ClusterName": "prod", "ServiceName": "payments-worker"},
        "Average", 300, "Percent",
        [p for p in series(*window, 300, lambda t: round(rng.uniform(18, 41), 2)) if not between(p[0], at(45), at(65))]))
    emit("cloudwatch", "metric_data", metric_record(
        acct, "m7", "AWS/Lambda", "Invocations", {"FunctionName": "checkout-api"}, "Sum", 300, "Count",
        series(*window, 300, lambda t: float(rng.randint(380, 460)))))
    emit("cloudwatch", "metric_data", metric_record(
        acct, "m8", "AWS/Lambda", "Throttles", {"FunctionName": "checkout-api"}, "Sum", 300, "Count",
        series(*window, 300, lambda t: 4.0 if between(t, at(95), at(105)) else 0.0)))
    emit("cloudwatch", "metric_data", metric_record(
        acct, "m5", "AWS/EC2", "CPUUtilization", {"InstanceId": "i-0a1b2c3d4e5f60718"}, "Average", 300, "Percent",
        series(*window, 300, lambda t: round(rng.uniform(1.5, 6.5), 3))))
    # deliberately bad (2 of 3): a poller that wrote epoch seconds instead of ISO strings -> rejected
    bad_metric = metric_record(acct, "m6", "AWS/ApplicationELB", "TargetResponseTime", {"LoadBalancer": lb},
                               "Average", 300, "Seconds", series(at(30), at(40), 300, lambda t: 0.21))
    bad_metric["result"]["Timestamps"] = [int(datetime.fromisoformat(t).timestamp())
                                          for t in bad_metric["result"]["Timestamps"]]
    emit("cloudwatch", "metric_data", bad_metric)

    # ---- CloudWatch: alarms -------------------------------------------------------------------
    a5xx = Alarm(acct, "checkout-api-5xx-high", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count",
                 {"LoadBalancer": lb}, "Sum", 60, 25.0, {"service": "checkout-api", "severity": "high", "team": "payments"},
                 "Target 5xx responses above 25/min for 3 minutes", evaluation_periods=3, datapoints=3)
    a5xx.state, a5xx.state_reason, a5xx.state_at = "OK", "Threshold Crossed: 3 out of the last 3 datapoints [0.0 (05/05/24 22:01:00), 0.0 (05/05/24 22:02:00), 0.0 (05/05/24 22:03:00)] was not greater than the threshold (25.0) (minimum 3 datapoints for ALARM -> OK transition).", BASE - timedelta(hours=11)
    a5xx.transition(at(96, 14) + timedelta(milliseconds=523), "ALARM",
                    [(at(93), 31.0), (at(94), 44.0), (at(95), 52.0)])
    a5xx.transition(at(132, 44) + timedelta(milliseconds=108), "OK", [(at(129), 0.0), (at(130), 1.0), (at(131), 0.0)])
    acpu = Alarm(acct, "payments-worker-cpu-high", "AWS/ECS", "CPUUtilization",
                 {"ClusterName": "prod", "ServiceName": "payments-worker"}, "Average", 300, 80.0,
                 {"service": "payments-worker", "severity": "warning"}, "payments-worker CPU above 80%")
    acpu.state, acpu.state_reason, acpu.state_at = "OK", "Threshold Crossed: 1 out of the last 1 datapoints [27.41 (06/05/24 08:35:00)] was not greater than the threshold (80.0) (minimum 1 datapoint for ALARM -> OK transition).", at(-20)
    acpu.transition(at(52, 31) + timedelta(milliseconds=77), "INSUFFICIENT_DATA", [(at(45), 0.0)])
    acpu.transition(at(72, 2) + timedelta(milliseconds=940), "OK", [(at(65), 22.87)])
    for alarm in (a5xx, acpu):
        for rec in alarm.history:
            emit("cloudwatch", "alarm_history", rec)
    for ev in sorted(a5xx.events + acpu.events, key=lambda e: e["time"]):
        emit("cloudwatch", "alarm_state_change", ev)

    # ---- CloudWatch Logs: /aws/lambda/checkout-api and /ecs/payments-worker ---------------------
    lam = LogWriter(acct, "/aws/lambda/checkout-api")
    stream_v56 = lambda_stream(BASE, "checkout-v56")
    stream_v57 = lambda_stream(BASE, "checkout-v57")
    stream_v58 = lambda_stream(BASE, "checkout-v58")
    for m in (38, 52, 66, 74):
        lambda_invocation(lam, stream_v56, at(m, rng.randint(0, 50)), duration_ms=rng.uniform(70, 140),
                          lines=["charge authorized"])
    plan = [(86, "ok"), (90, "error"), (93, "error"), (96, "timeout"), (99, "error"), (103, "timeout"),
            (107, "error"), (110, "error")]
    for m, outcome in plan:
        lambda_invocation(lam, stream_v57, at(m, rng.randint(0, 50)), outcome=outcome,
                          duration_ms=6010.0 if outcome == "timeout" else (2041.7 if outcome == "error" else 1210.4),
                          lines=["calling payments-gateway"])
    for m in (118, 126, 139):
        lambda_invocation(lam, stream_v58, at(m, rng.randint(0, 50)), duration_ms=rng.uniform(70, 140),
                          lines=["charge authorized"])
    for rec in lam.records:
        emit("cloudwatch", "log_events", rec)
    ecs = LogWriter(acct, "/ecs/payments-worker")
    task_old, task_new = "ecs/payments-worker/5c1f0e9a7b3d4c21a6e8f90b1d2c3e4f", "ecs/payments-worker/9f0c3b1e2d4a4c8f8e7d6c5b4a392817"

    def jl(t: datetime, level: str, msg: str, **kw) -> str:
        return json.dumps({"time": t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", "level": level, "msg": msg, **kw},
                          separators=(",", ":"))
    for m in (31, 35, 39, 43):
        t = at(m, rng.randint(0, 59))
        ecs.add(task_old, t, jl(t, "INFO", "settlement batch committed", batch_id=f"b-{m:04d}", records=rng.randint(40, 90)))
    t = at(44, 58)
    ecs.add(task_old, t, jl(t, "INFO", "received SIGTERM, draining"))
    for m in (72, 80, 88, 96):
        t = at(m, rng.randint(0, 59))
        ecs.add(task_new, t, jl(t, "INFO", "settlement batch committed", batch_id=f"b-{m:04d}", records=rng.randint(40, 90)))
    t = at(97, 12)
    ecs.add(task_new, t, jl(t, "WARN", "checkout-api callback slow", latency_ms=5820, retry=1))
    t = at(98, 40)
    ecs.add(task_new, t, jl(t, "ERROR", "charge confirmation failed: upstream returned 502", order_id="ord_7Hk2", attempt=3))
    for m in (104, 120, 136):
        t = at(m, rng.randint(0, 59))
        ecs.add(task_new, t, jl(t, "INFO", "settlement batch committed", batch_id=f"b-{m:04d}", records=rng.randint(40, 90)))
    for rec in ecs.records:
        emit("cloudwatch", "log_events", rec)

    # ---- CloudTrail (CloudTrail/DefaultLogGroup) ------------------------------------------------
    browser = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/124.0.0.0 Safari/537.36")
    signin = lambda result, mfa: dict(response={"ConsoleLogin": result}, additional={  # noqa: E731
        "LoginTo": "https://console.aws.amazon.com/console/home?state=hashArgs%23&isauthcode=true",
        "MobileVersion": "No", "MFAUsed": mfa}, event_type="AwsConsoleSignIn", region="us-east-1")
    deployer = ct_identity(acct, "AssumedRole", "github-actions-deploy", session="GitHubActions")
    cli = "aws-cli/2.15.40 Python/3.11.8 Linux/6.5.0-1018-azure exe/x86_64.ubuntu.22 command/"
    trail = [
        ct_record(acct, at(-3, 12), "signin.amazonaws.com", "ConsoleLogin", ct_identity(acct, "IAMUser", "dana"),
                  ip="198.51.100.24", agent=browser, **signin("Success", "Yes")),
        ct_record(acct, at(12, 40), "signin.amazonaws.com", "ConsoleLogin",
                  {k: v for k, v in ct_identity(acct, "IAMUser", "ops-admin").items() if k != "arn"},
                  ip="203.0.113.45", agent=browser, error=(None, "Failed authentication"), **signin("Failure", "No")),
        ct_record(acct, at(12, 58), "signin.amazonaws.com", "ConsoleLogin",
                  {k: v for k, v in ct_identity(acct, "IAMUser", "ops-admin").items() if k != "arn"},
                  ip="203.0.113.45", agent=browser, error=(None, "Failed authentication"), **signin("Failure", "No")),
        ct_record(acct, at(13, 31), "signin.amazonaws.com", "ConsoleLogin", ct_identity(acct, "IAMUser", "ops-admin"),
                  ip="203.0.113.45", agent=browser, **signin("Success", "No")),
        ct_record(acct, at(41, 2), "ecs.amazonaws.com", "RegisterTaskDefinition", deployer, ip="20.85.194.17",
                  agent="aws-sdk-js/3.556.0 ua/2.0 os/linux#6.5.0-1018-azure lang/js md/nodejs#20.12.2 api/ecs#3.556.0 GitHubActions",
                  request={"family": "payments-worker", "taskRoleArn": f"arn:aws:iam::{acct.id}:role/payments-worker-task",
                           "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "512", "memory": "1024"},
                  error=("AccessDeniedException", f"User: arn:aws:sts::{acct.id}:assumed-role/github-actions-deploy/GitHubActions "
                         f"is not authorized to perform: iam:PassRole on resource: arn:aws:iam::{acct.id}:role/payments-worker-task "
                         "because no identity-based policy allows the iam:PassRole action")),
        ct_record(acct, at(63, 47), "iam.amazonaws.com", "PutRolePolicy", ct_identity(acct, "IAMUser", "lee", key="ASIAQ3EGRZ7JVX4EXAMPLE", mfa=True),
                  ip="198.51.100.77", agent=cli + "iam.put-role-policy", region="us-east-1",
                  request={"roleName": "github-actions-deploy", "policyName": "pass-task-roles",
                           "policyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"iam:PassRole\",\"Resource\":\"arn:aws:iam::123456789012:role/*-task\"}]}"}),
        ct_record(acct, at(66, 10), "ecs.amazonaws.com", "UpdateService", deployer, ip="20.85.194.17",
                  agent="aws-sdk-js/3.556.0 ua/2.0 api/ecs#3.556.0 GitHubActions",
                  request={"cluster": "prod", "service": "payments-worker",
                           "taskDefinition": f"arn:aws:ecs:{acct.region}:{acct.id}:task-definition/payments-worker:88",
                           "forceNewDeployment": False},
                  response={"service": {"serviceName": "payments-worker", "status": "ACTIVE", "desiredCount": 2,
                                        "serviceArn": f"arn:aws:ecs:{acct.region}:{acct.id}:service/prod/payments-worker"}}),
        ct_record(acct, at(79, 58), "sts.amazonaws.com", "AssumeRoleWithWebIdentity",
                  {"type": "WebIdentityUser",
                   "principalId": f"arn:aws:iam::{acct.id}:oidc-provider/token.actions.githubusercontent.com:sts.amazonaws.com:repo:demo-shop/checkout-api:environment:production",
                   "userName": "repo:demo-shop/checkout-api:environment:production",
                   "identityProvider": f"arn:aws:iam::{acct.id}:oidc-provider/token.actions.githubusercontent.com"},
                  ip="20.85.194.17", agent="aws-sdk-js/3.556.0 ua/2.0 api/sts#3.556.0 GitHubActions",
                  request={"roleArn": f"arn:aws:iam::{acct.id}:role/github-actions-deploy", "roleSessionName": "GitHubActions",
                           "durationSeconds": 3600},
                  response={"assumedRoleUser": {"arn": f"arn:aws:sts::{acct.id}:assumed-role/github-actions-deploy/GitHubActions"},
                            "provider": f"arn:aws:iam::{acct.id}:oidc-provider/token.actions.githubusercontent.com"},
                  resources=[{"accountId": acct.id, "type": "AWS::IAM::Role", "ARN": f"arn:aws:iam::{acct.id}:role/github-actions-deploy"}]),
        ct_record(acct, at(82, 31), "lambda.amazonaws.com", "UpdateFunctionCode20150331v2", deployer, ip="20.85.194.17",
                  agent="aws-sdk-js/3.556.0 ua/2.0 api/lambda#3.556.0 GitHubActions",
                  request={"functionName": "checkout-api", "publish": True, "s3Bucket": "demo-shop-artifacts",
                           "s3Key": f"checkout-api/{s1}.zip"},
                  response={"functionName": "checkout-api", "functionArn": f"arn:aws:lambda:{acct.region}:{acct.id}:function:checkout-api:57",
                            "version": "57", "lastUpdateStatus": "InProgress"}),
        ct_record(acct, at(105, 2), "ssm.amazonaws.com", "GetParameter",
                  ct_identity(acct, "AssumedRole", "checkout-api-lambda", session="checkout-api"), ip="lambda.amazonaws.com",
                  agent="Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux#5.10.214 lang/python#3.12.3 exec-env/AWS_Lambda_python3.12",
                  request={"name": "/checkout-api/prod/gateway-fallback-key", "withDecryption": True}, read_only=True,
                  error=("AccessDenied", f"User: arn:aws:sts::{acct.id}:assumed-role/checkout-api-lambda/checkout-api is not "
                         f"authorized to perform: ssm:GetParameter on resource: arn:aws:ssm:{acct.region}:{acct.id}:parameter/checkout-api/prod/gateway-fallback-key "
                         "because no identity-based policy allows the ssm:GetParameter action")),
        ct_record(acct, at(113, 10), "lambda.amazonaws.com", "UpdateFunctionCode20150331v2", deployer, ip="20.85.194.17",
                  agent="aws-sdk-js/3.556.0 ua/2.0 api/lambda#3.556.0 GitHubActions",
                  request={"functionName": f"arn:aws:lambda:{acct.region}:{acct.id}:function:checkout-api", "publish": True,
                           "s3Bucket": "demo-shop-artifacts", "s3Key": f"checkout-api/{m2}.zip"},
                  response={"functionName": "checkout-api", "functionArn": f"arn:aws:lambda:{acct.region}:{acct.id}:function:checkout-api:58",
                            "version": "58", "lastUpdateStatus": "InProgress"}),
        ct_record(acct, at(120, 0), "ec2.amazonaws.com", "DescribeInstances",
                  ct_identity(acct, "AssumedRole", "ReadOnlyAudit", session="auditor"), ip="198.51.100.9",
                  agent=cli + "ec2.describe-instances", request={"instancesSet": {"items": [{"instanceId": "i-0a1b2c3d4e5f60718"}]},
                                                                 "filterSet": {}}, read_only=True),
        ct_record(acct, at(161, 5), "signin.amazonaws.com", "ConsoleLogin", ct_identity(acct, "Root", "root"),
                  ip="192.0.2.61", agent=browser, **signin("Success", "No")),
        ct_record(acct, at(162, 30), "iam.amazonaws.com", "CreateAccessKey", ct_identity(acct, "Root", "root", key="ASIAQ3EGRZ7JROOTSESS"),
                  ip="192.0.2.61", agent="AWS Internal", region="us-east-1", request=None,
                  response={"accessKey": {"accessKeyId": "AKIAQ3EGRZ7JZEXAMPLE", "status": "Active",
                                          "userName": acct.id, "createDate": "May 6, 2024 11:42:30 AM"}}),
    ]
    trail += poller_reads(acct, at(0), 15, 12)
    trail.sort(key=lambda r: r["eventTime"])
    for i, rec in enumerate(trail):
        emit("cloudwatch", "cloudtrail", ct_envelope(acct, "CloudTrail/DefaultLogGroup", rec, i))
    return out


# --------------------------------------------------------------------------------------------
# tenant "acme": GitHub Enterprise Server org acme-corp, AWS 210987654321 eu-west-1
# --------------------------------------------------------------------------------------------

def legacy_push(repo: Repo, ref: str, before: str, after: str, commits: list[dict], pusher: Person) -> dict:
    """A push in the 2013 help.github.com format: no full_name, owner {email, name}, keys sorted."""
    return {
        "after": after, "before": before, "commits": commits,
        "compare": f"{repo.html_url}/compare/{before[:12]}...{after[:12]}", "created": False, "deleted": False,
        "forced": False, "head_commit": commits[-1], "pusher": {"email": pusher.email, "name": pusher.name},
        "ref": ref,
        "repository": {"created_at": 1614600000 + repo.id, "description": repo.description or "", "fork": False,
                       "forks": 0, "has_downloads": True, "has_issues": True, "has_wiki": False, "homepage": "",
                       "id": repo.id, "language": repo.language, "master_branch": repo.default_branch,
                       "name": repo.name, "open_issues": 2, "owner": {"email": "eng@acme-corp.example",
                                                                       "name": repo.org["login"]},
                       "private": True, "pushed_at": int(BASE.timestamp()), "size": 5120, "stargazers": 0,
                       "url": repo.html_url, "watchers": 0},
    }


def legacy_commit(repo: Repo, cid: str, message: str, moment: datetime, author: Person, modified=()) -> dict:
    return {"added": [], "author": author.git(), "committer": author.git(), "distinct": True, "id": cid,
            "message": message, "modified": list(modified), "removed": [], "timestamp": iso_offset(moment, author.tz),
            "url": f"{repo.html_url}/commit/{cid}"}


def acme() -> dict:
    out: dict[tuple[str, str], list] = {}

    def emit(plugin: str, source: str, record: dict) -> None:
        out.setdefault((plugin, source), []).append(record)

    base = BASE + timedelta(hours=4)  # 13:00 UTC
    t = lambda m, s=0: at(m, s, base)  # noqa: E731
    gh = ACME_GHES
    org = organization(gh, "acme-corp", 3301)
    web = Repo(gh, org, "web-frontend", 412, language="TypeScript", description="Storefront web app")
    mo = Person(gh, "mo.haddad", 118, "Mo Haddad", "mo.haddad@acme-corp.example", 2)
    jess = Person(gh, "jess.park", 97, "Jess Park", "jess.park@acme-corp.example", -5)
    bot = user(gh, "github-actions", 9, "Bot")
    acct = Account("210987654321", "eu-west-1")

    a0, x1 = sha("acme/web/base"), sha("acme/web/x1")
    f1, f2, f3, m7 = (sha(f"acme/web/{n}") for n in ("f1", "f2", "f3", "merge-7"))
    s8 = sha("acme/web/squash-8")
    b6 = sha("acme/web/banner")

    # a legacy post-receive hook still posts the 2013 format
    emit("github", "push", legacy_push(web, "refs/heads/main", a0, x1, [
        legacy_commit(web, x1, "Update copy on the pricing page", t(0, 20), jess, modified=["src/pages/pricing.tsx"])],
        jess))

    # PR #6: opened earlier, closed without merging
    pr6 = dict(repo=web, number=6, prid=9021, title="Experiment: new checkout banner", body="A/B test variant B.",
               author=mo, head_ref="exp/checkout-banner", head_sha=b6, base_sha=a0, created=t(-50, 12))
    emit("github", "pull_request", pr_event("opened", web, pr_object(**pr6, updated=t(-50, 12)), mo))
    emit("github", "pull_request", pr_event("closed", web, pr_object(
        **pr6, updated=t(8, 40), state="closed", closed=t(8, 40), merge_commit_sha=sha("acme/web/test-merge-6")), jess))

    # PR #7: a payload without some optional fields (no draft/merged/merge_commit_sha/...; body null)
    fbranch = "feature/lazy-images"
    emit("github", "push", push_event(web, f"refs/heads/{fbranch}", ZERO, f2, [
        push_commit(web, f1, "Lazy-load product images below the fold", t(4, 30), mo, modified=["src/components/ProductGrid.tsx"]),
        push_commit(web, f2, "Add blur-up placeholders", t(5, 2), mo, added=["src/components/Placeholder.tsx"]),
    ], mo, created=True))
    pr7 = dict(repo=web, number=7, prid=9034, title="Lazy-load product images", body=None, author=mo,
               head_ref=fbranch, base_sha=x1, created=t(6, 0), optional_fields=False)
    emit("github", "pull_request", pr_event("opened", web, pr_object(**pr7, head_sha=f2, updated=t(6, 0)), mo))
    wf_ci = (201, "CI", ".github/workflows/ci.yml")
    pr7_ref = lambda head: [run_pr_ref(web, 7, 9034, fbranch, head, x1)]  # noqa: E731
    wf, run = workflow_objs(web, *wf_ci, 40511, 77, event="pull_request", status="completed", conclusion="failure",
                            head_branch=fbranch, head_sha=f2, head_message="Add blur-up placeholders", head_author=mo,
                            created=t(6, 10), updated=t(13, 30), actor=mo, pull_requests=pr7_ref(f2))
    emit("github", "workflow_run", {"action": "completed", "workflow_run": run, "workflow": wf, "repository": web.obj(),
                                    "organization": org, "sender": mo.user()})
    emit("github", "push", push_event(web, f"refs/heads/{fbranch}", f2, f3, [
        push_commit(web, f3, "Fix image placeholder snapshot test", t(20, 0), mo, modified=["src/components/__snapshots__/ProductGrid.test.tsx.snap"]),
    ], mo))
    emit("github", "pull_request", pr_event("synchronize", web, pr_object(**pr7, head_sha=f3, updated=t(20, 10), commits=3),
                                            mo, before=f2, after=f3))
    wf, run = workflow_objs(web, *wf_ci, 40519, 78, event="pull_request", status="completed", conclusion="success",
                            head_branch=fbranch, head_sha=f3, head_message="Fix image placeholder snapshot test",
                            head_author=mo, created=t(20, 20), updated=t(27, 5), actor=mo, pull_requests=pr7_ref(f3))
    emit("github", "workflow_run", {"action": "completed", "workflow_run": run, "workflow": wf, "repository": web.obj(),
                                    "organization": org, "sender": mo.user()})
    emit("github", "pull_request", pr_event("closed", web, pr_object(
        **pr7, head_sha=f3, updated=t(40, 0), state="closed", closed=t(40, 0), merged=t(40, 0), merge_commit_sha=m7,
        merged_by=jess, commits=3, additions=120, deletions=14, changed_files=4), jess))
    emit("github", "push", push_event(web, "refs/heads/main", x1, m7, [
        push_commit(web, f1, "Lazy-load product images below the fold", t(4, 30), mo, distinct=False,
                    modified=["src/components/ProductGrid.tsx"]),
        push_commit(web, f2, "Add blur-up placeholders", t(5, 2), mo, distinct=False, added=["src/components/Placeholder.tsx"]),
        push_commit(web, f3, "Fix image placeholder snapshot test", t(20, 0), mo, distinct=False,
                    modified=["src/components/__snapshots__/ProductGrid.test.tsx.snap"]),
        push_commit(web, m7, f"Merge pull request #7 from acme-corp/{fbranch}\n\nLazy-load product images", t(40, 0), jess,
                    committer=WEB_FLOW),
    ], jess))
    wf, run = workflow_objs(web, *wf_ci, 40527, 79, event="push", status="completed", conclusion="success",
                            head_branch="main", head_sha=m7, head_message="Merge pull request #7", head_author=jess,
                            created=t(40, 10), updated=t(47, 0), actor=jess)
    emit("github", "workflow_run", {"action": "completed", "workflow_run": run, "workflow": wf, "repository": web.obj(),
                                    "organization": org, "sender": jess.user()})

    # deployments: GitHub Enterprise Server 3.x sends them without `action`
    def deploy(did: int, sha_: str, env: str, payload, statuses: list, start: datetime, env_url: str) -> None:
        dep = deployment_obj(web, did, sha_, "main", env, bot, start, start, payload, modern=False)
        emit("github", "deployment", {"deployment": dep, "repository": web.obj(), "organization": org,
                                      "enterprise": {"id": 1, "slug": "acme", "name": "Acme Corp",
                                                     "node_id": node_id("010:Enterprise", 1),
                                                     "avatar_url": f"{gh.avatars}/b/1?", "description": None,
                                                     "website_url": None, "html_url": f"{gh.web}/enterprises/acme",
                                                     "created_at": "2021-06-01T09:00:00Z", "updated_at": "2023-11-20T10:00:00Z"},
                                      "sender": bot})
        for sid, state, moment, desc, url in statuses:
            status = deployment_status_obj(web, did, sid, state, env, bot, moment, description=desc,
                                           target_url=url, modern=False)
            emit("github", "deployment_status", {"deployment_status": status, "deployment": dict(dep, updated_at=iso(moment)),
                                                 "repository": web.obj(), "organization": org, "sender": bot})

    ci_url = f"{web.html_url}/actions/runs/40533"
    deploy(88, m7, "staging", {"smoke_test": True}, [
        (301, "pending", t(50, 3), "Deploying web-frontend to staging", ci_url),
        (305, "failure", t(54, 20), "Smoke test failed: GET /healthz returned 503", ci_url)], t(50, 0),
        "https://staging.shop.acme-corp.example")
    pr8 = dict(repo=web, number=8, prid=9051, title="Fix health check path for staging", body="Smoke test calls /healthz; "
               "the app serves /health.", author=mo, head_ref="fix/healthz", head_sha=sha("acme/web/fix-1"),
               base_sha=m7, created=t(65, 0))
    emit("github", "pull_request", pr_event("opened", web, pr_object(**pr8, updated=t(65, 0)), mo))
    emit("github", "pull_request", pr_event("closed", web, pr_object(
        **pr8, updated=t(75, 20), state="closed", closed=t(75, 20), merged=t(75, 20), merge_commit_sha=s8,
        merged_by=jess, additions=2, deletions=2), jess))
    emit("github", "push", push_event(web, "refs/heads/main", m7, s8, [
        push_commit(web, s8, "Fix health check path for staging (#8)", t(75, 20), mo, committer=WEB_FLOW,
                    modified=["deploy/smoke.sh"]),
    ], jess))
    deploy(91, s8, "staging", {"smoke_test": True}, [
        (312, "pending", t(80, 2), "Deploying web-frontend to staging", f"{web.html_url}/actions/runs/40541"),
        (316, "success", t(84, 10), "Smoke test passed", f"{web.html_url}/actions/runs/40541")], t(80, 0),
        "https://staging.shop.acme-corp.example")
    deploy(92, s8, "production", None, [
        (320, "pending", t(90, 3), "Deploying web-frontend to production", f"{web.html_url}/actions/runs/40548"),
        (327, "success", t(96, 40), "Deployed; 6/6 tasks healthy", f"{web.html_url}/actions/runs/40548")], t(90, 0),
        "https://shop.acme-corp.example")
    # a release created as a draft without a name, published later (name still null)
    rel = dict(repo=web, rid=7702, tag="v3.2.0", name=None, author=jess, created=t(110, 0),
               body="Lazy-loaded product images, staging health check fix")
    emit("github", "release", {"action": "created", "release": release_obj(**rel, published=None, draft=True),
                               "repository": web.obj(), "organization": org, "sender": jess.user()})
    emit("github", "release", {"action": "published", "release": release_obj(
        **rel, published=t(140, 0), assets=[("web-frontend-v3.2.0.tar.gz", 7340032, "application/gzip")]),
        "repository": web.obj(), "organization": org, "sender": jess.user()})

    # ---- CloudWatch -----------------------------------------------------------------------------
    lb = "app/web-frontend-alb/8c2e6f1d0b9a7e35"
    window = (t(60), t(180))

    def alb5xx(tt: datetime) -> float:
        m = (tt - base).total_seconds() / 60
        if 100 <= m < 125:
            return [22, 140, 188, 161, 57][int((m - 100) // 5)]
        return float(rng.choice([0, 0, 1]))

    def latency(tt: datetime) -> float:
        m = (tt - base).total_seconds() / 60
        return round(rng.uniform(2.1, 3.4), 3) if 100 <= m < 130 else round(rng.uniform(0.18, 0.42), 3)

    emit("cloudwatch", "metric_data", metric_record(acct, "q_5xx", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count",
                                                    {"LoadBalancer": lb}, "Sum", 300, "Count", series(*window, 300, alb5xx)))
    emit("cloudwatch", "metric_data", metric_record(acct, "q_latency", "AWS/ApplicationELB", "TargetResponseTime",
                                                    {"LoadBalancer": lb}, "p95", 300, "Seconds", series(*window, 300, latency)))
    emit("cloudwatch", "metric_data", metric_record(
        acct, "q_cpu", "AWS/ECS", "CPUUtilization", {"ClusterName": "acme-prod", "ServiceName": "web-frontend"},
        "Average", 300, "Percent", series(*window, 300, lambda tt: round(rng.uniform(25, 55), 2))))
    emit("cloudwatch", "metric_data", metric_record(
        acct, "q_requests", "AWS/ApplicationELB", "RequestCount", {"LoadBalancer": lb}, "Sum", 300, "Count",
        series(*window, 300, lambda tt: float(rng.randint(2100, 2600)))))
    emit("cloudwatch", "metric_data", metric_record(
        acct, "q_ghes", "AWS/EC2", "CPUUtilization", {"InstanceId": "i-0f9e8d7c6b5a43210"}, "Maximum", 300, "Percent",
        series(*window, 300, lambda tt: round(rng.uniform(30, 72), 2))))
    # a metric-math query (no namespace) as GetMetricData returns it
    emit("cloudwatch", "metric_data", {
        "query": {"id": "e1", "expression": "100 * q_5xx / q_requests", "label": "5xx rate (%)", "period": 300},
        "region": acct.region, "account_id": acct.id,
        "result": {"Id": "e1", "Label": "5xx rate (%)",
                   "Timestamps": [boto_iso(tt) for tt, _ in reversed(series(t(100), t(120), 300, lambda x: 0))],
                   "Values": [1.9, 6.4, 8.1, 7.0, 0.9], "StatusCode": "Complete"}})

    a5 = Alarm(acct, "web-frontend-5xx-critical", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", {"LoadBalancer": lb},
               "Sum", 60, 50.0, {"service": "web-frontend", "severity": "critical", "owner": "storefront"},
               "Storefront 5xx above 50/min for 2 of 3 minutes (pages on-call)", evaluation_periods=3, datapoints=2)
    a5.state, a5.state_reason, a5.state_at = "OK", "Threshold Crossed: no datapoints were received for 3 periods and 3 missing datapoints were treated as [NonBreaching].", base - timedelta(days=2)
    a5.transition(t(101, 7) + timedelta(milliseconds=312), "ALARM", [(t(98), 12.0), (t(99), 61.0), (t(100), 77.0)])
    a5.transition(t(125, 12) + timedelta(milliseconds=871), "OK", [(t(122), 4.0), (t(123), 0.0), (t(124), 1.0)])
    al = Alarm(acct, "web-frontend-latency-high", "AWS/ApplicationELB", "TargetResponseTime", {"LoadBalancer": lb},
               "p95", 300, 1.5, {"service": "web-frontend", "severity": "warning"}, "p95 latency above 1.5 s")
    al.state, al.state_reason, al.state_at = "OK", "Threshold Crossed: 1 out of the last 1 datapoints [0.31 (06/05/24 13:55:00)] was not greater than the threshold (1.5) (minimum 1 datapoint for ALARM -> OK transition).", t(-5)
    al.transition(t(104, 30) + timedelta(milliseconds=45), "ALARM", [(t(100), 2.71)])
    al.transition(t(134, 31) + timedelta(milliseconds=660), "OK", [(t(130), 0.29)])
    for alarm in (a5, al):
        for rec in alarm.history:
            emit("cloudwatch", "alarm_history", rec)
    # a ConfigurationUpdate history item: filtered by the mapping (only state updates are events)
    emit("cloudwatch", "alarm_history", {
        "region": acct.region, "account_id": acct.id, "alarm": al.describe(),
        "item": {"AlarmName": al.name, "AlarmType": "MetricAlarm", "Timestamp": boto_iso(t(150, 2)),
                 "HistoryItemType": "ConfigurationUpdate", "HistorySummary": f'Alarm "{al.name}" updated',
                 "HistoryData": json.dumps({"version": "1.0", "type": "Update",
                                            "updatedAlarm": {"threshold": 2.0, "period": 300}}, separators=(",", ":"))}})
    for ev in sorted(a5.events + al.events, key=lambda e: e["time"]):
        emit("cloudwatch", "alarm_state_change", ev)

    logs = LogWriter(acct, "/ecs/web-frontend")
    task = "web/web-frontend/4d3c2b1a09f84e7d8c6b5a4f3e2d1c0b"
    for m in range(60, 99, 3):
        tt = t(m, rng.randint(0, 59))
        path = rng.choice(["/products", "/products/sku-1042", "/cart", "/", "/search?q=lamp"])
        logs.add(task, tt, f'time="{tt:%Y-%m-%dT%H:%M:%SZ}" level=info msg="GET {path} 200" duration_ms={rng.randint(40, 180)}')
    for m, s in ((100, 12), (101, 3), (102, 40), (104, 8), (107, 55), (111, 20), (116, 2)):
        tt = t(m, s)
        logs.add(task, tt, f'time="{tt:%Y-%m-%dT%H:%M:%SZ}" level=error msg="upstream connect error or disconnect/reset '
                           f'before headers. reset reason: connection timeout" upstream=product-api path=/products')
    tt = t(103, 30)
    logs.add(task, tt, f'time="{tt:%Y-%m-%dT%H:%M:%SZ}" level=warning msg="circuit breaker open" upstream=product-api')
    for m in range(126, 180, 3):
        tt = t(m, rng.randint(0, 59))
        path = rng.choice(["/products", "/products/sku-1042", "/cart", "/", "/search?q=lamp"])
        logs.add(task, tt, f'time="{tt:%Y-%m-%dT%H:%M:%SZ}" level=info msg="GET {path} 200" duration_ms={rng.randint(40, 180)}')
    logs.records.sort(key=lambda r: r["event"]["timestamp"])
    for rec in logs.records:
        emit("cloudwatch", "log_events", rec)

    browser = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"
    signin = lambda result, mfa: dict(response={"ConsoleLogin": result}, additional={  # noqa: E731
        "LoginTo": "https://eu-west-1.console.aws.amazon.com/console/home?region=eu-west-1", "MobileVersion": "No",
        "MFAUsed": mfa}, event_type="AwsConsoleSignIn")
    deployer = ct_identity(acct, "AssumedRole", "ghes-deployer", session="web-frontend-92")
    cli = "aws-cli/2.15.40 Python/3.11.8 Windows/10 exe/AMD64 prompt/off command/"
    trail = [
        ct_record(acct, t(2, 11), "signin.amazonaws.com", "ConsoleLogin",
                  {k: v for k, v in ct_identity(acct, "IAMUser", "j.smith").items() if k != "arn"}, ip="198.51.100.201",
                  agent=browser, error=(None, "Failed authentication"), **signin("Failure", "Yes")),
        ct_record(acct, t(33, 40), "ec2.amazonaws.com", "TerminateInstances", ct_identity(acct, "IAMUser", "intern-dev", key="AKIATDEVEXAMPLE12345"),
                  ip="198.51.100.88", agent=cli + "ec2.terminate-instances",
                  request={"instancesSet": {"items": [{"instanceId": "i-0f9e8d7c6b5a43210"}]}},
                  error=("Client.UnauthorizedOperation", "You are not authorized to perform this operation. User: "
                         f"arn:aws:iam::{acct.id}:user/intern-dev is not authorized to perform: ec2:TerminateInstances on "
                         f"resource: arn:aws:ec2:{acct.region}:{acct.id}:instance/i-0f9e8d7c6b5a43210 because no "
                         "identity-based policy allows the ec2:TerminateInstances action. Encoded authorization failure "
                         "message: 4Lq9EXAMPLE")),
        ct_record(acct, t(91, 20), "ecs.amazonaws.com", "UpdateService", deployer, ip="10.40.12.7",
                  agent="aws-sdk-go-v2/1.26.1 os/linux lang/go#1.22.2 md/GOOS#linux api/ecs#1.41.7",
                  request={"cluster": "acme-prod", "service": f"arn:aws:ecs:{acct.region}:{acct.id}:service/acme-prod/web-frontend",
                           "taskDefinition": "web-frontend:214", "forceNewDeployment": False},
                  response={"service": {"serviceName": "web-frontend", "status": "ACTIVE", "desiredCount": 6}}),
        ct_record(acct, t(108, 2), "secretsmanager.amazonaws.com", "GetSecretValue",
                  ct_identity(acct, "AssumedRole", "web-frontend-task", session="4d3c2b1a09f84e7d8c6b5a4f3e2d1c0b"),
                  ip="ecs-tasks.amazonaws.com", agent="aws-sdk-js/3.556.0 ua/2.0 os/linux lang/js md/nodejs#20.12.2 api/secrets-manager#3.556.0",
                  request={"secretId": "prod/product-api/token"}, read_only=True,
                  error=("AccessDenied", f"User: arn:aws:sts::{acct.id}:assumed-role/web-frontend-task/4d3c2b1a09f84e7d8c6b5a4f3e2d1c0b "
                         "is not authorized to perform: secretsmanager:GetSecretValue on resource: prod/product-api/token "
                         "because no identity-based policy allows the secretsmanager:GetSecretValue action")),
        ct_record(acct, t(160, 5), "signin.amazonaws.com", "ConsoleLogin", ct_identity(acct, "Root", "root"), ip="192.0.2.130",
                  agent=browser, **signin("Success", "Yes")),
        ct_record(acct, t(161, 40), "iam.amazonaws.com", "DeactivateMFADevice", ct_identity(acct, "Root", "root", key="ASIATROOTSESSEXAMPLE"),
                  ip="192.0.2.130", agent="AWS Internal", region="us-east-1",
                  request={"userName": "ops-bot", "serialNumber": f"arn:aws:iam::{acct.id}:mfa/ops-bot"}),
        ct_record(acct, t(165, 0), "cloudtrail.amazonaws.com", "StopLogging", ct_identity(acct, "IAMUser", "ops-bot", key="AKIATOPSBOTEXAMPLE1"),
                  ip="203.0.113.250", agent=cli + "cloudtrail.stop-logging",
                  request={"name": f"arn:aws:cloudtrail:{acct.region}:{acct.id}:trail/org-trail"}),
        ct_record(acct, t(171, 30), "cloudtrail.amazonaws.com", "StartLogging", ct_identity(acct, "IAMUser", "jess.park", key="ASIATJESSEXAMPLE123", mfa=True),
                  ip="198.51.100.14", agent=cli + "cloudtrail.start-logging",
                  request={"name": f"arn:aws:cloudtrail:{acct.region}:{acct.id}:trail/org-trail"}),
    ]
    trail += poller_reads(acct, t(0), 15, 12)
    trail.sort(key=lambda r: r["eventTime"])
    for i, rec in enumerate(trail):
        emit("cloudwatch", "cloudtrail", ct_envelope(acct, "CloudTrail/DefaultLogGroup", rec, i))
    # deliberately bad (3 of 3): a log event whose CloudTrail record was cut short (not valid JSON)
    big = ct_record(acct, t(92, 5), "ecs.amazonaws.com", "RegisterTaskDefinition", deployer, ip="10.40.12.7",
                    agent="aws-sdk-go-v2/1.26.1 os/linux lang/go#1.22.2 api/ecs#1.41.7",
                    request={"family": "web-frontend", "containerDefinitions": [{"name": "web", "image": "web-frontend:s8",
                             "environment": [{"name": f"FEATURE_{i}", "value": "on"} for i in range(40)]}]})
    text = json.dumps(big, separators=(",", ":"))
    emit("cloudwatch", "cloudtrail", ct_envelope(acct, "CloudTrail/DefaultLogGroup", big, 99, message=text[:1400]))
    out[("cloudwatch", "cloudtrail")].sort(key=lambda r: r["event"]["timestamp"])
    return out


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------

def render() -> dict[Path, str]:
    files: dict[Path, str] = {}
    for tenant, build in (("demo", demo), ("acme", acme)):
        for (plugin, source), records in sorted(build().items()):
            lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in records]
            files[ROOT / tenant / plugin / f"{source}.jsonl"] = "\n".join(lines) + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the files on disk differ")
    args = parser.parse_args(argv)
    global rng
    rng = random.Random(SEED)
    files = render()
    if args.check:
        stale = [p for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
        for p in stale:
            print(f"stale: {p.relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    total = sum(text.count("\n") for text in files.values())
    print(f"wrote {len(files)} files, {total} records under {ROOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
