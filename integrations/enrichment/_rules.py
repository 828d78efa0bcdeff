"""Correlation rules: configuration, not code.

A rule links an *event* (the one it enriches, e.g. an alarm) to *related* events (the context it
finds, e.g. the deployment before it). Four types:

    shared_hint      resource identity: both events carry the same correlation-hint value
                     (a `service:` hint, a commit SHA, a deployment URL), within a window
    temporal         the related event occurred within a window before/after the event and
                     shares a key (by default the `service:` hint); `match: nearest` keeps only
                     the closest one (the "most recent deployment before the alarm", an ASOF join)
    metadata         tags and attributes are equal on both sides (`attributes.service`, ...)
    shipped_changes  a deployment and the commits / pull requests it shipped: by SHA (the
                     deployed SHA, a PR's `merge_commit_sha` for squash merges, its head SHA),
                     and every change on the deployed branch since the previous deployment of
                     the same service and environment (the first one looks back `window`)

Every rule has a bounded `window`; `load_rules` refuses one without. The runner reads the rules
from `runner.yaml` (`enrichment: rules: [...]`); `DEFAULT_RULES` work on the bundled samples.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from integrations.enrichment._duration import BOUNDED_HINT, parse_duration, short_duration
from integrations.errors import ConfigError
from integrations.events import SEVERITIES

RULE_TYPES = ("shared_hint", "temporal", "metadata", "shipped_changes")
_TOP_FIELDS = ("severity", "kind", "event_type", "source_integration", "source", "title")
_FIELD = re.compile(r"^(?:severity|kind|event_type|source_integration|source|title|attributes(?:\.[A-Za-z0-9_\-]+)+)$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,62}$")
_KIND = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")

Scalar = Union[str, int, float, bool]


def _check_field(value: str) -> str:
    if not _FIELD.match(value):
        raise ValueError(f"unknown field '{value}': use {', '.join(_TOP_FIELDS)} or attributes.<path> "
                         "(e.g. attributes.state)")
    return value


def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"'{value}' is not a regular expression: {err}") from None
    return value


def _check_kind(value: str) -> str:
    if not _KIND.match(value):
        raise ValueError(f"'{value}' is not an event kind (lower case, e.g. deployment, alarm)")
    return value


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"'{value}' is not a rule name: lower case letters, digits, '-' and '_'")
    return value


FieldPath = Annotated[str, AfterValidator(_check_field)]
Kind = Annotated[str, AfterValidator(_check_kind)]
Window = Annotated[float, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Condition(_Model):
    """One test on one side of a link: `{field: severity, at_least: high}`, `{field: attributes.state, in: [failure]}`.

    With `kinds`, it applies only to events of those kinds (others pass).
    """

    field: FieldPath
    equals: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
    at_least: Scalar | None = None
    matches: Annotated[str | None, AfterValidator(_check_regex)] = None
    exists: bool | None = None
    kinds: list[Kind] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_operator(self) -> "Condition":
        ops = [name for name in ("equals", "in_", "not_in", "at_least", "matches", "exists") if getattr(self, name) is not None]
        if len(ops) != 1:
            raise ValueError(f"condition on '{self.field}' needs exactly one of equals, in, not_in, at_least, matches, "
                             f"exists (got {', '.join(o.rstrip('_') for o in ops) or 'none'})")
        if self.at_least is not None:
            if self.field == "severity":
                if self.at_least not in SEVERITIES:
                    raise ValueError(f"severity at_least '{self.at_least}': use one of {', '.join(SEVERITIES)}")
            elif isinstance(self.at_least, bool) or not isinstance(self.at_least, (int, float)):
                raise ValueError(f"at_least on '{self.field}' compares numbers; give a number")
        return self

    @property
    def operator(self) -> str:
        for name in ("equals", "in_", "not_in", "at_least", "matches", "exists"):
            if getattr(self, name) is not None:
                return name.rstrip("_")
        raise AssertionError("validated condition without operator")

    def describe(self) -> str:
        """`severity at least high`, `attributes.state in [failure, error]`."""
        op = self.operator
        value = {"in": self.in_, "not_in": self.not_in}.get(op, getattr(self, op if op != "in" else "in_"))
        if isinstance(value, list):
            value = "[" + ", ".join(str(v) for v in value) + "]"
        text = f"{self.field} {op.replace('_', ' ')} {value}"
        return text + (f" (for {', '.join(self.kinds)})" if self.kinds else "")


class Side(_Model):
    """Which events may stand on one side of a link: their kinds and extra conditions."""

    kinds: list[Kind] = Field(min_length=1)
    where: list[Condition] = Field(default_factory=list)


class HintKey(_Model):
    """Which correlation-hint values count as the shared key: those with `prefix` and/or matching `pattern`."""

    prefix: str | None = Field(default=None, min_length=1)
    pattern: Annotated[str | None, AfterValidator(_check_regex)] = None

    @model_validator(mode="after")
    def _something(self) -> "HintKey":
        if self.prefix is None and self.pattern is None:
            raise ValueError("a key needs a prefix (e.g. 'service:') or a pattern (e.g. '^[0-9a-f]{40}$'); "
                             "any shared hint at all would link unrelated events")
        return self

    def describe(self) -> str:
        parts = []
        if self.prefix:
            parts.append(f"'{self.prefix}' hint")
        if self.pattern:
            parts.append(f"hint matching {self.pattern}")
        return " and ".join(parts)


class _Rule(_Model):
    name: Annotated[str, AfterValidator(_check_name)]
    description: str = ""
    enabled: bool = True
    confidence: float = Field(gt=0.0, le=1.0, description="base confidence of a link")
    time_decay: float = Field(default=0.0, ge=0.0, le=1.0,
                              description="score = confidence x (1 - time_decay x |delta| / window)")
    window: Window = Field(description="bounded: 90s, 30m, 2h, 7d (at most 31d)")
    event: Side
    related: Side
    max_links: int = Field(default=20, ge=1, le=1000, description="links kept per event, nearest first")

    @property
    def span(self) -> float:
        """Seconds from an event within which a change can alter its links."""
        return self.window

    @property
    def kinds(self) -> set[str]:
        return set(self.event.kinds) | set(self.related.kinds)

    def window_text(self) -> str:
        return short_duration(self.window)


class SharedHintRule(_Rule):
    """(a) resource identity: both events carry the same hint value."""

    type: Literal["shared_hint"] = "shared_hint"
    key: HintKey
    direction: Literal["before", "after", "around"] = "around"
    match: Literal["nearest", "all"] = "all"


class TemporalRule(_Rule):
    """(b) temporal proximity: the related event occurred within the window before (after) the event."""

    type: Literal["temporal"] = "temporal"
    key: HintKey = HintKey(prefix="service:")
    direction: Literal["before", "after", "around"] = "before"
    match: Literal["nearest", "all"] = "nearest"


class MetadataRule(_Rule):
    """(c) tag and metadata matching: every listed field is present and equal on both sides."""

    type: Literal["metadata"] = "metadata"
    fields: list[FieldPath] = Field(min_length=1)
    direction: Literal["before", "after", "around"] = "around"
    match: Literal["nearest", "all"] = "all"


class ShippedChangesRule(_Rule):
    """A deployment and the changes it shipped; `window` is the lookback (also for a service's first deployment)."""

    type: Literal["shipped_changes"] = "shipped_changes"
    event: Side = Side(kinds=["deployment"])
    related: Side = Side(kinds=["commit", "pull_request"],
                         where=[Condition(field="attributes.step", equals="closed_merged", kinds=["pull_request"])])
    range_confidence: float = Field(default=0.6, gt=0.0, le=1.0,
                                    description="confidence of a change linked because it landed between deployments")
    service_key: HintKey = HintKey(prefix="service:")
    partition_by: list[FieldPath] = Field(default_factory=lambda: ["attributes.environment"],
                                          description="the previous deployment is the one with these fields equal")
    event_sha: FieldPath = "attributes.sha"
    event_ref: FieldPath = "attributes.ref"
    related_sha: list[FieldPath] = Field(default_factory=lambda: ["attributes.sha", "attributes.merge_commit_sha",
                                                                  "attributes.head_sha"], min_length=1)
    related_branch: list[FieldPath] = Field(default_factory=lambda: ["attributes.branch", "attributes.base_ref"],
                                            min_length=1)
    direction: Literal["before"] = "before"
    match: Literal["all"] = "all"
    max_links: int = Field(default=200, ge=1, le=5000)


Rule = Annotated[Union[SharedHintRule, TemporalRule, MetadataRule, ShippedChangesRule], Field(discriminator="type")]
_RULE = TypeAdapter(Rule)


def load_rules(items: Any, *, file: str | None = None, doc: Any = None,
               at: tuple[Any, ...] = ("enrichment", "rules")) -> list[Rule]:
    """Validate a list of rule dicts (as read from `runner.yaml`); errors name the rule, the field and the line.

    `doc` is a `LocatedDocument` of the file the list came from and `at` the path of the list in it.
    """
    where = ".".join(str(p) for p in at)

    def fail(message: str, path: tuple[Any, ...], hint: str | None = None) -> ConfigError:
        mark = doc.mark(at + path) if doc is not None else None
        field = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
        return ConfigError(message, file=file, line=mark.line if mark else None,
                           col=mark.value_col if mark else None, field=field, hint=hint)

    if items is None:
        return []
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise fail("rules must be a list of rules", ())
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if isinstance(item, BaseModel):
            item = item.model_dump(by_alias=True)
        if not isinstance(item, Mapping):
            raise fail("each rule is a mapping with at least name, type, window and confidence", (index,))
        kind = item.get("type")
        if kind not in RULE_TYPES:
            close = difflib.get_close_matches(str(kind), RULE_TYPES, n=1)
            raise fail(f"unknown rule type '{kind}'" + (f"; did you mean '{close[0]}'?" if close else ""), (index, "type"),
                       hint=f"valid types: {', '.join(RULE_TYPES)}")
        try:
            rule = _RULE.validate_python(dict(item))
        except ValidationError as err:
            raise _first_error(err, item, index, fail) from None
        if rule.name in seen:
            raise fail(f"rule name '{rule.name}' is used twice (rules {seen[rule.name]} and {index})", (index, "name"))
        seen[rule.name] = index
        rules.append(rule)
    return rules


def _first_error(err: ValidationError, item: Mapping[str, Any], index: int, fail) -> ConfigError:
    problems = []
    for detail in err.errors():
        loc = tuple(p for p in detail["loc"] if p != item.get("type"))
        name = ".".join(str(p) for p in loc)
        message = str(detail["msg"]).removeprefix("Value error, ")
        if detail["type"] == "missing":
            message = f"missing required key '{name}'"
            if loc and loc[-1] == "window":
                message += f": {BOUNDED_HINT}"
        elif detail["type"] == "extra_forbidden":
            message = f"unknown key '{name}'"
        elif name:
            message = f"{name}: {message}"
        problems.append((message, loc))
    label = f"rule {index}" + (f" ('{item.get('name')}')" if item.get("name") else "")
    message, loc = problems[0]
    hint = "; ".join(m for m, _ in problems[1:]) or None
    return fail(f"{label}: {message}", (index, *loc), hint)


def config_hash(rules: Sequence[Rule], aliases: Mapping[str, str]) -> str:
    """A fingerprint of the rules and aliases: when it changes, the next enrichment starts from scratch."""
    data = {"rules": [r.model_dump(mode="json") for r in rules], "aliases": dict(sorted(aliases.items()))}
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def rules_from_config(path: str | Path | None = None) -> list[Rule]:
    """The rules of a runner configuration file (`enrichment: rules:`).

    No file, no `enrichment` section or an empty `rules: []` mean DEFAULT_RULES; a non-empty list
    replaces them; `enabled: false` means no rules. With no path, `INTEGRATIONS_RUNNER_CONFIG` or
    `runner.yaml` in the working directory is read when it exists.
    """
    import os

    from integrations.located_yaml import load_located

    candidate = Path(path) if path is not None else Path(os.environ.get("INTEGRATIONS_RUNNER_CONFIG", "runner.yaml"))
    if not candidate.exists():
        if path is not None:
            raise ConfigError(f"no configuration file at {candidate}", file=str(candidate))
        return list(DEFAULT_RULES)
    doc = load_located(candidate.read_text(encoding="utf-8"), str(candidate), ConfigError)
    section = doc.data.get("enrichment") if isinstance(doc.data, Mapping) else None
    if not isinstance(section, Mapping):
        return list(DEFAULT_RULES)
    if section.get("enabled") is False:
        return []
    if not section.get("rules"):
        return list(DEFAULT_RULES)
    return load_rules(section["rules"], file=str(candidate), doc=doc)


_SERVICE = {"prefix": "service:"}
_SHA = {"pattern": "^[0-9a-f]{40}$"}

# The defaults, as they would be written in runner.yaml (`enrichment: rules:`).
DEFAULT_RULE_DATA: list[dict[str, Any]] = [
    {"name": "deployment_before_alarm", "type": "temporal",
     "description": "An alarm on a service is linked to the most recent deployment of that service in the 30 minutes before it.",
     "event": {"kinds": ["alarm"], "where": [{"field": "severity", "at_least": "high"}]},
     "related": {"kinds": ["deployment"]},
     "key": _SERVICE, "window": "30m", "direction": "before", "match": "nearest",
     "confidence": 0.9, "time_decay": 0.5},
    {"name": "merged_pr_before_failed_deployment", "type": "temporal",
     "description": "A failed deployment status is linked to the pull request of the same service merged in the 2 hours before it.",
     "event": {"kinds": ["deployment_status"], "where": [{"field": "attributes.state", "in": ["failure", "error"]}]},
     "related": {"kinds": ["pull_request"], "where": [{"field": "attributes.step", "equals": "closed_merged"}]},
     "key": _SERVICE, "window": "2h", "direction": "before", "match": "nearest",
     "confidence": 0.7, "time_decay": 0.5},
    {"name": "deployment_before_aws_change", "type": "temporal",
     "description": "A CloudTrail change to a service is linked to the deployment of that service in the 15 minutes before it.",
     "event": {"kinds": ["audit"]}, "related": {"kinds": ["deployment"]},
     "key": _SERVICE, "window": "15m", "direction": "before", "match": "nearest",
     "confidence": 0.8, "time_decay": 0.5},
    {"name": "shipped_changes", "type": "shipped_changes",
     "description": "A deployment is linked to the commits and merged pull requests it shipped.",
     "window": "14d", "confidence": 1.0, "range_confidence": 0.6},
    {"name": "status_of_deployment", "type": "shared_hint",
     "description": "A deployment status is linked to its deployment (same deployment URL).",
     "event": {"kinds": ["deployment_status"]}, "related": {"kinds": ["deployment"]},
     "key": {"pattern": "/deployments/[0-9]+$"}, "window": "7d", "direction": "before", "confidence": 1.0},
    {"name": "commit_of_run", "type": "shared_hint",
     "description": "A workflow run or pull request is linked to the commit it built or carries (same SHA).",
     "event": {"kinds": ["workflow_run", "pull_request"]}, "related": {"kinds": ["commit"]},
     "key": _SHA, "window": "7d", "direction": "around", "confidence": 0.9},
    {"name": "error_logs_around_alarm", "type": "metadata",
     "description": "An alarm is linked to warning and error logs of the same service within 10 minutes of it.",
     "event": {"kinds": ["alarm"], "where": [{"field": "severity", "at_least": "high"}]},
     "related": {"kinds": ["log"], "where": [{"field": "severity", "at_least": "low"}]},
     "fields": ["attributes.service"], "window": "10m", "direction": "around",
     "confidence": 0.6, "time_decay": 0.5, "max_links": 10},
]

DEFAULT_RULES: list[Rule] = load_rules(DEFAULT_RULE_DATA, at=("DEFAULT_RULE_DATA",))
