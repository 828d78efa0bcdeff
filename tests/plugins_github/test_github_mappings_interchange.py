"""GitHub mappings: webhooks and polling converge, evidence links come from the payload, and the
interchange exports (CDEvents 0.5.1, CloudEvents 1.0) are valid against their published schemas.

Inputs are GitHub's own documented examples (mappings/github/examples, see SOURCES.md), the
bundled samples, and hypothesis variations of them.
"""

from __future__ import annotations

import copy
import json
import random
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.events import CanonicalEvent, to_cloudevent
from integrations.events._cdevents import (
    ARTIFACT_PUBLISHED,
    CHANGE_CREATED,
    CHANGE_MERGED,
    SERVICE_DEPLOYED,
    export_cdevents,
)
from integrations.mapping import PythonEngine, load_mapping

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "mappings" / "github" / "examples"
SPECS = ROOT / "tests" / "data" / "specs"
ENGINE = PythonEngine()


@cache
def mapping(source: str):
    return load_mapping(ROOT / "mappings" / "github" / f"{source}.yaml")


def example(source: str, name: str) -> dict:
    return json.loads((EXAMPLES / source / f"{name}.input.json").read_text(encoding="utf-8"))


def map_events(source: str, records: list, tenant: str = "demo") -> list[CanonicalEvent]:
    result = ENGINE.map(mapping(source), records, tenant_id=tenant)
    assert not result.rejections, [r.reason for r in result.rejections]
    return result.events


def ids(events: list[CanonicalEvent]) -> set[str]:
    return {e.event_id for e in events}


def envelope(repository: dict, **items: Any) -> dict:
    """The polling envelope for a webhook payload's repository object (docs/envelopes.md)."""
    return {"repository": {"full_name": repository["full_name"], "owner": repository["owner"]["login"],
                           "name": repository["name"], "html_url": repository["html_url"]}, **items}


# -- webhooks and polling give the same events ---------------------------------------------------------


def test_a_merged_pull_request_converges_with_its_webhooks():
    closed = example("pull_request", "closed_merged_real_delivery")
    opened = {**copy.deepcopy(closed), "action": "opened"}
    webhook = map_events("pull_request", [opened, closed])
    polled = map_events("pulls", [envelope(closed["repository"], pull_request=closed["pull_request"])])
    assert ids(webhook) == ids(polled)
    assert sorted(e.attributes["step"] for e in polled) == ["closed_merged", "opened"]
    # a later step never overwrites an earlier one: two distinct events
    assert len(ids(polled)) == 2


def test_an_unmerged_pull_request_converges_with_its_webhooks():
    closed = example("pull_request", "closed_unmerged")
    opened = {**copy.deepcopy(closed), "action": "opened"}
    polled = map_events("pulls", [envelope(closed["repository"], pull_request=closed["pull_request"])])
    assert ids(map_events("pull_request", [opened, closed])) == ids(polled)
    assert sorted(e.attributes["step"] for e in polled) == ["closed_unmerged", "opened"]


def test_commits_deployments_statuses_and_releases_converge():
    push = example("push", "commit_no_username_committer")
    commits = [envelope(push["repository"], commit={"sha": c["id"], "html_url": c["url"], "url": c["url"],
                                                    "commit": {"message": c["message"],
                                                               "author": {**c["author"], "date": c["timestamp"]}}})
               for c in push["commits"]]
    assert ids(map_events("push", [push])) == ids(map_events("commits", commits))

    deployment = example("deployment", "created")
    polled = envelope(deployment["repository"], deployment=deployment["deployment"])
    assert ids(map_events("deployment", [deployment])) == ids(map_events("deployments", [polled]))

    status = example("deployment_status", "success")
    polled = envelope(status["repository"], deployment=status["deployment"],
                      deployment_status=status["deployment_status"])
    assert ids(map_events("deployment_status", [status])) == ids(map_events("deployment_statuses", [polled]))
    del polled["deployment"]  # without the deployment, its id comes from the status's deployment_url
    assert ids(map_events("deployment_status", [status])) == ids(map_events("deployment_statuses", [polled]))

    published = example("release", "published_name_null")
    created = {**copy.deepcopy(published), "action": "created"}
    polled = envelope(published["repository"], release=published["release"])
    assert ids(map_events("release", [created, published])) == ids(map_events("releases", [polled]))


TIMES = st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2030, 1, 1)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))


@settings(max_examples=100, deadline=None)
@given(number=st.integers(min_value=1, max_value=10**6), created=TIMES, later=TIMES,
       end=st.sampled_from(["open", "merged", "closed"]), repo=st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True))
def test_pull_request_lifecycles_converge(number, created, later, end, repo):
    """Whatever the lifecycle, the webhook of each step reached and the polled item give the same ids."""
    base = example("pull_request", "opened")
    base["repository"]["full_name"] = f"{base['repository']['owner']['login']}/{repo}"
    base["repository"]["name"] = repo
    pr = base["pull_request"]
    pr.update(number=number, created_at=created, updated_at=max(created, later), merged_at=None, closed_at=None,
              merged=False, state="open")
    if end == "merged":
        pr.update(merged_at=later, closed_at=later, merged=True, state="closed")
    elif end == "closed":
        pr.update(closed_at=later, state="closed")
    steps = [{**copy.deepcopy(base), "action": "opened"}]
    if end != "open":
        steps.append({**copy.deepcopy(base), "action": "closed"})
    polled = map_events("pulls", [envelope(base["repository"], pull_request=pr)])
    assert ids(map_events("pull_request", steps)) == ids(polled)
    assert len(polled) == len(steps)


# -- Property 7: evidence links ------------------------------------------------------------------------

URL_KEYS_OPTIONAL = {"target_url", "log_url", "environment_url"}
SHA = re.compile(r"^[0-9a-f]{40}$")


def all_examples() -> list[tuple[str, str]]:
    return sorted((p.parent.name, p.name.removesuffix(".input.json")) for p in EXAMPLES.glob("*/*.input.json"))


def strings_of(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_of(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_of(v)]
    return [value] if isinstance(value, str) else []


def allowed_urls(payload: Any) -> set[str]:
    """URLs in the payload, and those the mappings derive from them: `<url>.diff`, `<repo>/commit/<sha>`."""
    texts = strings_of(payload)
    urls = {s for s in texts if s.startswith(("http://", "https://"))}
    shas = {s for s in texts if SHA.match(s)}
    derived = {u + ".diff" for u in urls} | {f"{u}/commit/{sha}" for u in urls for sha in shas}
    return urls | derived


@st.composite
def payloads_with_urls(draw) -> tuple[str, Any]:
    """A documented example of some GitHub shape whose URLs are moved to generated hosts.

    The path stays (a deployment status's `deployment_url` names its deployment) and may grow a
    generated prefix, as on a GitHub Enterprise Server behind a proxy path. Optional URLs may be
    sent empty or left out, as GitHub does.
    """
    source, name = draw(st.sampled_from(all_examples()))
    payload = example(source, name)
    hosts = draw(st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,15}\.(com|io|example)", fullmatch=True),
                          min_size=1, max_size=3))
    prefixes = draw(st.lists(st.from_regex(r"(/[A-Za-z0-9._~-]{1,12}){0,2}", fullmatch=True), min_size=1, max_size=2))
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))  # one draw for the many choices below: fast

    def fresh_url(old: str) -> str:
        path = old.split("://", 1)[1].partition("/")[2]
        return f"{rnd.choice(['https', 'http'])}://{rnd.choice(hosts)}{rnd.choice(prefixes)}/{path}"

    def mutate(node: Any, key: str | None = None) -> Any:
        if isinstance(node, dict):
            return {k: mutate(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [mutate(v, key) for v in node]
        if isinstance(node, str) and node.startswith(("http://", "https://")):
            if key in URL_KEYS_OPTIONAL and rnd.random() < 0.3:
                return rnd.choice(["", None])  # GitHub sends these empty or not at all
            return fresh_url(node) if rnd.random() < 0.5 else node
        return node

    return source, mutate(payload)


@settings(max_examples=150, deadline=None)
@given(case=payloads_with_urls())
def test_property_7_evidence_links(case):
    """Feature: integrations, Property 7: Evidence Link Creation - for any external service data that supports
    correlation, the system must create appropriate evidence links with proper attribution to the source
    integration. Every event made from a GitHub payload (webhook or polled) that carries URLs has evidence links,
    attributed to `github`, whose URLs come from the payload (or are derived from it: a `.diff`, a commit page)."""
    source, payload = case
    events = map_events(source, [payload])
    allowed = allowed_urls(payload)
    for event in events:
        ctx = event.integration_context
        assert ctx.source_integration == "github"
        assert ctx.evidence_links, f"{source}: no evidence link for {ctx.external_id}"
        for link in ctx.evidence_links:
            assert link.url in allowed, f"{source}: {link.type} link {link.url} does not come from the payload"


# -- interchange: CDEvents and CloudEvents -------------------------------------------------------------

CDEVENT_SCHEMAS = {CHANGE_CREATED: "changecreated.json", CHANGE_MERGED: "changemerged.json",
                   SERVICE_DEPLOYED: "servicedeployed.json", ARTIFACT_PUBLISHED: "artifactpublished.json"}


@pytest.fixture(scope="module")
def cdevents_validators():
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    folder = SPECS / "cdevents" / "v0.5.1"
    schemas = [json.loads(p.read_text()) for p in folder.rglob("*.json")]
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas)
    return {t: Draft202012Validator(json.loads((folder / f).read_text()), registry=registry,
                                    format_checker=Draft202012Validator.FORMAT_CHECKER)
            for t, f in CDEVENT_SCHEMAS.items()}


def every_github_event() -> list[CanonicalEvent]:
    events: list[CanonicalEvent] = []
    for source, name in all_examples():
        events.extend(map_events(source, [example(source, name)]))
    for path in sorted((ROOT / "data" / "samples").glob("*/github/*.jsonl")):
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        result = ENGINE.map(mapping(path.stem), records, tenant_id=path.parts[-3])
        events.extend(result.events)
    return events


def test_cdevents_export_is_valid_and_skips_what_has_no_counterpart(cdevents_validators):
    events = every_github_event()
    documents, skipped = export_cdevents(events)
    assert skipped == len(events) - len(documents) > 0
    seen: dict[str, int] = {}
    for document in documents:
        kind = document["context"]["type"]
        cdevents_validators[kind].validate(document)
        assert document["context"]["specversion"] == "0.5.1"
        seen[kind] = seen.get(kind, 0) + 1
    assert set(seen) == set(CDEVENT_SCHEMAS), seen
    # context.id is the canonical event id, so a webhook and a poll of one fact export one CDEvent id
    by_id = {e.event_id: e for e in events}
    assert all(d["context"]["id"] in by_id for d in documents)


def test_cdevents_subjects_say_what_changed():
    merged = map_events("pull_request", [example("pull_request", "closed_merged_real_delivery")])
    (doc,), skipped = export_cdevents(merged)
    assert skipped == 0 and doc["context"]["type"] == CHANGE_MERGED
    assert doc["subject"]["id"] == "ailisp/gcbapp-buildconfig-example#3"
    assert doc["subject"]["content"]["repository"] == {"id": "ailisp/gcbapp-buildconfig-example",
                                                       "source": "https://github.com/ailisp/gcbapp-buildconfig-example"}
    release = map_events("releases", [example("releases", "list_releases_example")])
    docs, skipped = export_cdevents(release)
    assert skipped == 1 and [d["subject"]["id"] for d in docs] == ["pkg:github/octocat/hello-world@v1.0.0"]
    status = map_events("deployment_status", [example("deployment_status", "success")])
    (doc,), _ = export_cdevents(status)
    assert doc["subject"]["content"]["environment"]["id"] == "production"
    assert doc["subject"]["content"]["artifactId"].startswith("pkg:github/codertocat/hello-world@")


def test_cloudevents_export_is_valid(cloudevents_validator):
    for event in every_github_event():
        cloudevents_validator.validate(to_cloudevent(event))


def test_map_cli_exports_cdevents_and_counts_the_skipped_on_stderr(cli):
    path = EXAMPLES / "releases" / "list_releases_example.input.json"
    result = cli("map", "--plugin", "github", "--source", "releases", "--input", str(path), "--format", "cdevents",
                 "--engine", "python")
    assert result.code == 0
    (doc,) = result.json_lines()
    assert doc["context"]["type"] == ARTIFACT_PUBLISHED
    assert "1 event(s) have no cdevents counterpart" in result.err


@pytest.mark.parametrize("source,name", all_examples(), ids=lambda v: str(v))
def test_map_cli_maps_githubs_documented_examples(cli, source, name):
    """Done when: `integrations map --plugin github --source <event> --input <payload.json>` maps them."""
    path = EXAMPLES / source / f"{name}.input.json"
    result = cli("map", "--plugin", "github", "--source", source, "--input", str(path), "--engine", "python")
    assert result.code == 0, result.err
    expected = [line for line in path.with_name(f"{name}.expected.jsonl").read_text().splitlines() if line.strip()]
    assert len(result.json_lines()) == len(expected)
    assert "rejected 0" in result.err
