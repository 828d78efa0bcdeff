"""`integrations correlations list|explain|enrich` on a small store, and the package's public names."""

from __future__ import annotations

import pytest

import integrations.enrichment as enrichment
from integrations.store import EventStore
from tests.enrichment.enrichment_factory import alarm, deployment


@pytest.fixture
def small(store_path):
    store = EventStore(store_path)
    events = {"deployment": deployment("demo", "d1", 0, "checkout-api"),
              "alarm": alarm("demo", "a1", 12, "checkout-api"),
              "other": deployment("demo", "d2", 5, "payments"),
              "twin": alarm("acme", "a1", 12, "checkout-api")}
    store.upsert_events(list(events.values()))
    return store_path, {k: e.event_id for k, e in events.items()}


def test_enrich_list_and_explain(cli, small):
    path, ids = small
    ran = cli("correlations", "enrich", "--db", str(path), "--tenant", "demo", "--tenant", "acme")
    assert ran.code == 0, ran
    assert "tenant demo: all events; links +1" in ran.out and "tenant acme: all events; links +0" in ran.out
    again = cli("correlations", "enrich", "--db", str(path), "--tenant", "demo", "--json")
    (report,) = again.json_lines()
    assert (report["full"], report["arrived"], report["events_written"]) == (False, 0, 0)

    (row,) = cli("correlations", "list", "--db", str(path), "--tenant", "demo", "--json").json_lines()
    assert (row["event_id"], row["related_event_id"], row["rule"]) == (ids["alarm"], ids["deployment"],
                                                                       "deployment_before_alarm")
    assert (row["event_source_integration"], row["related_source_integration"]) == ("cloudwatch", "github")
    assert row["delta_seconds"] == -720.0
    assert cli("correlations", "list", "--db", str(path), "--tenant", "acme", "--json").json_lines() == []

    explained = cli("correlations", "explain", ids["alarm"][:8], "--db", str(path), "--tenant", "demo")
    assert explained.code == 0, explained
    assert f"linked   deployment {ids['deployment'][:8]}" in explained.out
    assert "12 minutes before: matched service:checkout-api" in explained.out
    assert f"rejected deployment {ids['other'][:8]}" in explained.out
    assert "different service: payments, not checkout-api" in explained.out
    context = cli("correlations", "explain", ids["deployment"], "--db", str(path), "--tenant", "demo")
    assert "this deployment as the related context" in context.out and "[deployment_before_alarm] context of alarm" in context.out


def test_explain_says_when_a_rule_does_not_apply(cli, small, store_path):
    path, ids = small
    quiet = alarm("demo", "a2", 14, "checkout-api", severity="low")
    EventStore(store_path).upsert_events([quiet])
    cli("correlations", "enrich", "--db", str(path))
    out = cli("correlations", "explain", quiet.event_id, "--db", str(path)).out
    assert "does not apply: the alarm has severity low, below high" in out
    assert "Linked: nothing" in out


def test_a_bad_rules_file_is_reported_with_its_line(cli, small, tmp_path):
    path, _ids = small
    config = tmp_path / "runner.yaml"
    config.write_text("enrichment:\n  rules:\n    - name: forever\n      type: temporal\n"
                      "      event: {kinds: [alarm]}\n      related: {kinds: [deployment]}\n"
                      "      window: unbounded\n      confidence: 0.5\n")
    result = cli("correlations", "enrich", "--db", str(path), "--config", str(config))
    assert result.code == 1
    assert f"{config}:7:" in result.err and "windows are always bounded" in result.err


def test_unknown_or_ambiguous_ids(cli, small):
    path, _ids = small
    assert cli("correlations", "explain", "zzzzzzzz", "--db", str(path)).code == 2
    too_short = cli("correlations", "explain", "a", "--db", str(path))
    assert too_short.code == 2 and "no event 'a'" in too_short.err


def test_public_names_are_exactly_all():
    public = sorted(n for n in dir(enrichment) if not n.startswith("_") and n not in ("annotations",))
    modules = {n for n in public if type(getattr(enrichment, n)).__name__ == "module"}
    assert sorted(enrichment.__all__) == sorted(set(public) - modules)
