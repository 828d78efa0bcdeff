"""Correlation rules are configuration: validated on load, with errors that name the rule, field and line."""

from __future__ import annotations

import pytest

from integrations.enrichment import (
    DEFAULT_RULES,
    RULE_TYPES,
    ShippedChangesRule,
    TemporalRule,
    format_delta,
    format_duration,
    load_rules,
    parse_duration,
    rules_from_config,
)
from integrations.errors import ConfigError

BASE = {"name": "deploy_alarm", "type": "temporal", "event": {"kinds": ["alarm"]}, "related": {"kinds": ["deployment"]},
        "window": "30m", "confidence": 0.9}


def rule(**changes):
    data = {**BASE, **changes}
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("2h", 7200), ("7d", 604800), ("1w", 604800),
                                           (45, 45), ("1.5h", 5400), (" 10 minutes ", 600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("window", [None, "inf", "unbounded", "forever", 0, "0m", -5, "40d", float("inf"), "soon"])
def test_unbounded_or_silly_windows_are_refused_with_the_fix(window):
    with pytest.raises(ConfigError) as info:
        load_rules([rule(window=window)])
    err = info.value
    assert err.field == "enrichment.rules[0].window"
    assert "windows are always bounded" in err.message and "30m" in err.message
    assert "deploy_alarm" in err.message


def test_a_rule_without_window_is_refused():
    data = rule()
    del data["window"]
    with pytest.raises(ConfigError, match="missing required key 'window': windows are always bounded"):
        load_rules([data])


def test_unknown_type_suggests_the_right_one():
    with pytest.raises(ConfigError) as info:
        load_rules([rule(type="temporl")])
    assert "did you mean 'temporal'" in info.value.message
    assert all(t in info.value.hint for t in RULE_TYPES)


@pytest.mark.parametrize("changes, expected", [
    ({"event": {"kinds": ["alarm"], "where": [{"field": "severity", "at_least": "urgent"}]}}, "use one of info"),
    ({"event": {"kinds": ["alarm"], "where": [{"field": "state", "equals": "x"}]}}, "unknown field 'state'"),
    ({"event": {"kinds": ["alarm"], "where": [{"field": "severity", "equals": "high", "in": ["low"]}]}},
     "exactly one of"),
    ({"event": {"kinds": []}}, "event.kinds"),
    ({"key": {}}, "a key needs a prefix"),
    ({"key": {"pattern": "([a-z"}}, "not a regular expression"),
    ({"confidence": 1.5}, "confidence"),
    ({"bogus": 1}, "unknown key 'bogus'"),
    ({"name": "Deploy Alarm"}, "not a rule name"),
])
def test_bad_rules_say_what_is_wrong(changes, expected):
    with pytest.raises(ConfigError) as info:
        load_rules([rule(**changes)])
    assert expected in str(info.value) + (info.value.hint or "")


def test_duplicate_names_are_refused():
    with pytest.raises(ConfigError, match="used twice"):
        load_rules([rule(), rule()])


def test_defaults_load_and_cover_every_rule_type():
    assert {r.type for r in DEFAULT_RULES} == set(RULE_TYPES)
    assert all(0 < r.window <= 31 * 86400 for r in DEFAULT_RULES)
    temporal = next(r for r in DEFAULT_RULES if r.name == "deployment_before_alarm")
    assert isinstance(temporal, TemporalRule) and temporal.match == "nearest" and temporal.window == 1800
    shipped = next(r for r in DEFAULT_RULES if isinstance(r, ShippedChangesRule))
    assert "attributes.merge_commit_sha" in shipped.related_sha


def test_rules_come_from_runner_yaml_with_line_numbers(tmp_path):
    good = tmp_path / "runner.yaml"
    good.write_text("enrichment:\n  rules:\n    - name: only_this\n      type: temporal\n"
                    "      event: {kinds: [alarm]}\n      related: {kinds: [deployment]}\n"
                    "      window: 45m\n      confidence: 0.5\n")
    (loaded,) = rules_from_config(good)
    assert loaded.name == "only_this" and loaded.window == 2700
    bad = tmp_path / "bad.yaml"
    bad.write_text("enrichment:\n  rules:\n    - name: only_this\n      type: temporal\n"
                   "      event: {kinds: [alarm]}\n      related: {kinds: [deployment]}\n"
                   "      window: forever\n      confidence: 0.5\n")
    with pytest.raises(ConfigError) as info:
        rules_from_config(bad)
    assert (info.value.file, info.value.line) == (str(bad), 7)
    with pytest.raises(ConfigError, match="no configuration file"):
        rules_from_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("text, expected", [
    ("enrichment:\n  rules: []\n", "defaults"),
    ("store: x.duckdb\n", "defaults"),
    ("enrichment:\n  enabled: false\n  rules: []\n", "none"),
])
def test_empty_rules_mean_the_built_in_ones(tmp_path, monkeypatch, text, expected):
    config = tmp_path / "runner.yaml"
    config.write_text(text)
    assert rules_from_config(config) == {"defaults": DEFAULT_RULES, "none": []}[expected]
    monkeypatch.setenv("INTEGRATIONS_RUNNER_CONFIG", str(config))
    assert rules_from_config() == {"defaults": DEFAULT_RULES, "none": []}[expected]
    monkeypatch.setenv("INTEGRATIONS_RUNNER_CONFIG", str(tmp_path / "absent.yaml"))
    assert rules_from_config() == DEFAULT_RULES


def test_readable_times():
    assert format_duration(720) == "12 minutes"
    assert format_duration(972) == "16 minutes 12 seconds"
    assert format_delta(-972.5) == "16 minutes 12 seconds before"
    assert format_delta(30) == "30 seconds after"
    assert format_delta(0) == "at the same time"
