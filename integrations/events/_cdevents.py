"""Export delivery events as CDEvents (spec version 0.5.1).

    canonical event                                   CDEvent type
    pull_request, step opened                         dev.cdevents.change.created.0.4.0
    pull_request, step closed_merged                  dev.cdevents.change.merged.0.3.0
    deployment_status, state success, an environment  dev.cdevents.service.deployed.0.3.0
    release, action published                         dev.cdevents.artifact.published.0.3.0

Every other event has no CDEvents counterpart and is skipped (and counted). The same events come
from webhooks and from polling (the steps and actions above are named alike by both mappings).

A CDEvent is `{context, subject, customData}`:

* `context.id` is the canonical `event_id` (deterministic, so a receiver can drop repeats),
  `context.source` is `/integrations/<tenant>/<plugin>` (as in the CloudEvents export), and
  `context.timestamp` is when the thing happened (`occurred_at`);
* `subject.id` names what changed: `<owner>/<repo>#<number>` for a change, the service for a
  deployment, a package URL `pkg:github/<owner>/<repo>@<tag>` for a released artifact (CDEvents
  asks for PURLs there); a deployed artifact is `pkg:github/<owner>/<repo>@<sha>`;
* `customData` keeps the canonical event's tenant, kind, external id, title and evidence links,
  so nothing that linked the event to its evidence is lost in the exchange.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from integrations.events._model import CanonicalEvent, format_rfc3339

CDEVENTS_SPEC_VERSION = "0.5.1"
CHANGE_CREATED = "dev.cdevents.change.created.0.4.0"
CHANGE_MERGED = "dev.cdevents.change.merged.0.3.0"
SERVICE_DEPLOYED = "dev.cdevents.service.deployed.0.3.0"
ARTIFACT_PUBLISHED = "dev.cdevents.artifact.published.0.3.0"

_PR_URL = re.compile(r"^(?P<repo>https?://.+)/pull/\d+$")


def _text(value: Any) -> str | None:
    return str(value) if value is not None and str(value) != "" else None


def _link(event: CanonicalEvent, link_type: str) -> str | None:
    for link in event.integration_context.evidence_links:
        if link.type == link_type:
            return link.url
    return None


def purl_github(repository: str, version: str | None = None) -> str:
    """`pkg:github/<owner>/<name>[@<version>]`: the purl type `github` lower-cases owner and name."""
    owner, _, name = repository.partition("/")
    out = f"pkg:github/{quote(owner.lower(), safe='')}/{quote(name.lower(), safe='')}"
    return f"{out}@{quote(version, safe='')}" if version else out


def _repository(event: CanonicalEvent) -> dict[str, str] | None:
    repo = _text(event.attributes.get("repository"))
    if repo is None:
        return None
    out = {"id": repo}
    pr = _link(event, "pr")
    match = _PR_URL.match(pr) if pr else None
    if match:
        out["source"] = match.group("repo")
    return out


def _change(event: CanonicalEvent, with_description: bool) -> dict[str, Any] | None:
    repository = _repository(event)
    number = event.attributes.get("number")
    if repository is None or number is None:
        return None
    content: dict[str, Any] = {"repository": repository}
    if with_description and _text(event.attributes.get("title")):
        content["description"] = str(event.attributes["title"])
    subject: dict[str, Any] = {"id": f"{repository['id']}#{number}", "content": content}
    pr = _link(event, "pr")
    if pr:
        subject["source"] = pr
    return subject


def _change_created(event: CanonicalEvent) -> dict[str, Any] | None:
    return _change(event, with_description=True)


def _change_merged(event: CanonicalEvent) -> dict[str, Any] | None:
    return _change(event, with_description=False)


def _service_deployed(event: CanonicalEvent) -> dict[str, Any] | None:
    attrs = event.attributes
    environment = _text(attrs.get("environment"))
    repo = _text(attrs.get("repository"))
    service = _text(attrs.get("service")) or (repo.split("/", 1)[-1].lower() if repo else None)
    version = _text(attrs.get("sha")) or _text(attrs.get("ref"))
    if environment is None or service is None or repo is None or version is None:
        return None
    env: dict[str, str] = {"id": environment}
    if _text(attrs.get("environment_url")):
        env["source"] = str(attrs["environment_url"])
    return {"id": service, "content": {"environment": env, "artifactId": purl_github(repo, version)}}


def _artifact_published(event: CanonicalEvent) -> dict[str, Any] | None:
    attrs = event.attributes
    repo, tag = _text(attrs.get("repository")), _text(attrs.get("tag_name"))
    if repo is None or tag is None:
        return None
    content: dict[str, Any] = {}
    if _text(attrs.get("author")):
        content["user"] = str(attrs["author"])
    subject: dict[str, Any] = {"id": purl_github(repo, tag), "content": content}
    release = _link(event, "release")
    if release:
        subject["source"] = release
    return subject


Subject = Callable[[CanonicalEvent], "dict[str, Any] | None"]


def cdevent_type(event: CanonicalEvent) -> tuple[str, Subject] | None:
    """The CDEvent type of a canonical event and how to build its subject, or None."""
    if event.event_type != "delivery":
        return None
    attrs = event.attributes
    if event.kind == "pull_request":
        step = attrs.get("step")
        if step == "opened":
            return CHANGE_CREATED, _change_created
        if step == "closed_merged":
            return CHANGE_MERGED, _change_merged
    elif event.kind == "deployment_status":
        if attrs.get("state") == "success" and attrs.get("environment"):
            return SERVICE_DEPLOYED, _service_deployed
    elif event.kind == "release":
        if attrs.get("action") == "published":
            return ARTIFACT_PUBLISHED, _artifact_published
    return None


def to_cdevent(event: CanonicalEvent) -> dict[str, Any] | None:
    """The CDEvent of a canonical event, or None when it has no counterpart."""
    found = cdevent_type(event)
    if found is None:
        return None
    type_, subject_of = found
    subject = subject_of(event)
    if subject is None:
        return None
    ctx = event.integration_context
    return {
        "context": {
            "specversion": CDEVENTS_SPEC_VERSION,
            "id": event.event_id,
            "source": f"/integrations/{event.tenant_id}/{ctx.source_integration}",
            "type": type_,
            "timestamp": format_rfc3339(event.occurred_at),
        },
        "subject": subject,
        "customData": {
            "tenant_id": event.tenant_id,
            "kind": event.kind,
            "external_id": ctx.external_id,
            "title": event.title,
            "evidence_links": [link.model_dump(mode="json") for link in ctx.evidence_links],
        },
        "customDataContentType": "application/json",
    }


def export_cdevents(events: Sequence[CanonicalEvent]) -> tuple[list[dict[str, Any]], int]:
    """The CDEvents of `events` and how many had no counterpart (an exporter of EXPORT_FORMATS)."""
    documents = []
    for event in events:
        document = to_cdevent(event)
        if document is not None:
            documents.append(document)
    return documents, len(events) - len(documents)
