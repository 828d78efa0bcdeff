"""Event enrichment: correlation rules run as DuckDB SQL over each tenant's events.

`enrich(store, tenant_id, rules)` links events (a deployment and the alarm after it, a
deployment and the changes it shipped, ...) into the `correlations` table and writes the links,
attributed to their rule and source integration, into each event's `enrichment_metadata`.
`explain(store, tenant_id, event_id)` shows what a rule linked and what it considered and rejected.
Rules are configuration (`runner.yaml`, `enrichment: rules:`); see `DEFAULT_RULES`.
"""

from integrations.enrichment._duration import format_delta, format_duration, parse_duration
from integrations.enrichment._enrich import EnrichmentReport, RuleReport, enrich, normalize_aliases, service_aliases
from integrations.enrichment._explain import Candidate, EventRef, Explanation, Link, RuleExplanation, explain
from integrations.enrichment._rules import (
    DEFAULT_RULE_DATA,
    DEFAULT_RULES,
    RULE_TYPES,
    Condition,
    HintKey,
    MetadataRule,
    Rule,
    SharedHintRule,
    ShippedChangesRule,
    Side,
    TemporalRule,
    config_hash,
    load_rules,
    rules_from_config,
)

__all__ = [
    "DEFAULT_RULES",
    "DEFAULT_RULE_DATA",
    "RULE_TYPES",
    "Candidate",
    "Condition",
    "EnrichmentReport",
    "EventRef",
    "Explanation",
    "HintKey",
    "Link",
    "MetadataRule",
    "Rule",
    "RuleExplanation",
    "RuleReport",
    "SharedHintRule",
    "ShippedChangesRule",
    "Side",
    "TemporalRule",
    "config_hash",
    "enrich",
    "explain",
    "format_delta",
    "format_duration",
    "load_rules",
    "normalize_aliases",
    "parse_duration",
    "rules_from_config",
    "service_aliases",
]
