"""The mapping file format, as a pydantic model (`integrations schema mapping` prints its schema).

A mapping turns the records of one (plugin, source) into canonical events. Each output is one
kind of event; `fields` maps output fields to JMESPath expressions. Constants are JMESPath
literals (`'opened'`, `` `3` ``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from integrations.events import HINT_TYPES, LINK_TYPES

# The fields an output may set; `attributes.<path>` sets one nested attribute.
CORE_FIELDS = ("external_id", "occurred_at", "original_timestamp", "title", "resource_ids", "attributes")
ALWAYS_REQUIRED = ("external_id", "occurred_at", "title")
_ATTRIBUTE_FIELD = re.compile(r"^attributes(\.[A-Za-z_][A-Za-z0-9_\-]*)+$")
_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")


def is_known_field(name: str) -> bool:
    """True for the core fields and for `attributes.<a>.<b>` paths."""
    return name in CORE_FIELDS or bool(_ATTRIBUTE_FIELD.match(name))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeverityRule(_Strict):
    """First rule whose `when` is truthy (or that has no `when`) sets the severity."""

    when: str | None = Field(default=None, description="JMESPath condition; omit for a default")
    level: Literal["info", "low", "medium", "high", "critical"]


class HintTemplate(_Strict):
    """A correlation hint; `value` may yield a string, a number or a list (one hint each)."""

    type: Literal["resource_id", "temporal", "metadata"]
    value: str = Field(description="JMESPath expression")
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)


class LinkTemplate(_Strict):
    """An evidence link; skipped when `url` yields null."""

    type: Literal["commit", "pr", "deployment", "release", "metric", "log", "alarm"]
    url: str = Field(description="JMESPath expression")
    description: str | None = Field(default=None, description="JMESPath expression")
    metadata: dict[str, str] = Field(default_factory=dict, description="name -> JMESPath expression")


class Output(_Strict):
    """One kind of event made from the source's records."""

    name: str | None = Field(default=None, description="defaults to the kind")
    event_type: Literal["system", "security", "delivery"]
    kind: str = Field(min_length=1)
    when: str | None = Field(default=None, description="JMESPath filter; falsy records are filtered")
    for_each: str | None = Field(
        default=None,
        description="JMESPath yielding a list: one event per element, evaluated as {item, record}",
    )
    fields: dict[str, str] = Field(description="output field -> JMESPath expression")
    required: list[str] = Field(default_factory=list)
    severity: list[SeverityRule] = Field(default_factory=list)
    correlation_hints: list[HintTemplate] = Field(default_factory=list)
    evidence_links: list[LinkTemplate] = Field(default_factory=list)

    @field_validator("kind")
    @classmethod
    def _kind_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("kind must be lower case letters, digits, '_' or '-'")
        return value

    @model_validator(mode="after")
    def _default_name(self) -> "Output":
        if self.name is None:
            self.name = self.kind
        return self


class Mapping(_Strict):
    """A whole mapping file: `mappings/<plugin>/<source>.yaml`."""

    plugin: str = Field(min_length=1)
    source: str = Field(min_length=1)
    version: int = Field(default=1, ge=1)
    description: str = ""
    precedence: int = Field(default=100, ge=0, description=(
        "when two sources give the same event id, the event keeps the content of the source with the "
        "lower precedence (then the lower source name), whatever the order of arrival"))
    outputs: list[Output] = Field(min_length=1)


def mapping_json_schema() -> dict[str, Any]:
    """JSON Schema for editors (yaml-language-server and friends)."""
    schema = Mapping.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Integrations mapping file"
    return schema


__all__ = [
    "ALWAYS_REQUIRED",
    "CORE_FIELDS",
    "HINT_TYPES",
    "LINK_TYPES",
    "HintTemplate",
    "LinkTemplate",
    "Mapping",
    "Output",
    "SeverityRule",
    "is_known_field",
    "mapping_json_schema",
]
