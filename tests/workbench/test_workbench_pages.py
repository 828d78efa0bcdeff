"""Page logic through streamlit.testing's AppTest: each page over a tmp store and tmp mappings."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from integrations.store import EventStore
from integrations.store._tenants import list_audit
from tests.workbench.conftest import ACTOR, ROOT

VIEWS = ROOT / "workbench" / "views"
ANCHOR = "      attributes.pusher: record.pusher.name"


def _page(name: str) -> AppTest:
    return AppTest.from_file(str(VIEWS / f"{name}.py"), default_timeout=120)


def _frame_with(at: AppTest, *columns: str):
    """The first table of the page that has these columns (plain dataframes have no key in AppTest)."""
    for frame in at.dataframe:
        if all(c in frame.value.columns for c in columns):
            return frame.value
    raise AssertionError(f"no table with {columns}: {[list(f.value.columns) for f in at.dataframe]}")


def _texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


EDITOR = "yaml::github/push"  # the page keeps the editor's current text here (the editor itself is a component)


def _type(at: AppTest, text: str) -> None:
    """What the live editor does when a person stops typing: the new text, then a rerun."""
    at.session_state[EDITOR] = text
    at.run()


def test_mapping_page_previews_marks_the_error_line_and_saves_an_audited_change(workbench_env):
    at = _page("mapping")
    at.run()
    assert not at.exception
    at.selectbox(key="plugin").select("github").run()
    at.selectbox(key="source::github").select("push").run()
    assert not at.exception
    original = (workbench_env.mappings / "github" / "push.yaml").read_text()
    assert at.session_state[EDITOR] == original
    assert "The mapping is valid." in _texts(at.success)
    assert at.button(key="save").disabled  # nothing to save yet

    line = original[: original.index(ANCHOR)].count("\n") + 2
    broken = original.replace(ANCHOR, ANCHOR + "\n      attributes.pusher_name: upper(record.pusher.name")
    _type(at, broken)
    errors = _texts(at.error)
    assert any(e.startswith(f"line {line}:") and "attributes.pusher_name" in e for e in errors), errors
    assert any(f">{line:4d} |" in c for c in _texts(at.code))
    assert at.button(key="save").disabled

    fixed = broken.replace("upper(record.pusher.name", "upper(record.pusher.name)")
    _type(at, fixed)
    assert not at.error
    card = at.table[0].value
    assert "attributes.pusher_name" in card.index
    assert set(card.loc["attributes.pusher_name"]) == {"DANA-KIM"}
    assert [t.label for t in at.tabs] == ["Events", "Trace", "Rejected and filtered", "Scratchpad", "Unmapped fields",
                                          "Coverage", "Counts", "Changed records"]
    assert "attributes.pusher_name" in _frame_with(at, "kind", "title").columns
    coverage = _frame_with(at, "field", "share").set_index("field")
    assert coverage.loc["attributes.pusher_name", "set"] == coverage.loc["attributes.pusher", "set"]
    trace = _frame_with(at, "field", "why").set_index("field")
    assert set(trace.loc[["attributes.pusher_name"], "value"]) == {"\"DANA-KIM\""}

    at.button(key="save").click().run()
    assert any("audit history" in s for s in _texts(at.success))
    assert (workbench_env.mappings / "github" / "push.yaml").read_text() == fixed
    saves = [a for a in list_audit(EventStore(workbench_env.store), "demo") if a["action"] == "mapping.save"]
    assert len(saves) == 1 and saves[0]["actor"] == ACTOR
    assert (ROOT / "mappings" / "github" / "push.yaml").read_text() == original


def test_mapping_page_explains_a_save_the_actor_may_not_make(workbench_env, monkeypatch):
    monkeypatch.setenv("INTEGRATIONS_ACTOR", "stranger")
    at = _page("mapping")
    at.run()
    at.selectbox(key="plugin").select("github").run()
    at.selectbox(key="source::github").select("push").run()
    text = at.session_state[EDITOR]
    _type(at, text.replace(ANCHOR, ANCHOR + "\n      attributes.x: record.ref"))
    at.button(key="save").click().run()
    assert any("mappings.write" in e for e in _texts(at.error))
    assert "attributes.x" not in (workbench_env.mappings / "github" / "push.yaml").read_text()


def test_mapping_page_without_samples_asks_for_an_upload(workbench_env):
    (workbench_env.mappings / "github" / "nosamples.yaml").write_text(
        (workbench_env.mappings / "github" / "push.yaml").read_text().replace("source: push", "source: nosamples"))
    at = _page("mapping")
    at.run()
    at.selectbox(key="plugin").select("github").run()
    at.selectbox(key="source::github").select("nosamples").run()
    assert not at.exception
    assert any("upload a JSON or JSON Lines file" in i for i in _texts(at.info))


def _store_with_data(path: Path) -> EventStore:
    from integrations.mapping import get_engine, load_mapping
    from integrations.store._health import save_health

    store = EventStore(path)
    records = [json.loads(line) for line in (ROOT / "data/samples/demo/github/push.jsonl").read_text().splitlines()]
    result = get_engine("python").map(load_mapping(ROOT / "mappings/github/push.yaml"), records, tenant_id="demo")
    store.upsert_events(result.events, source="push")
    store.add_dead_letters("demo", "github", "push", [{"record": records[0], "reason": "was broken"}])
    save_health(store, "demo", "github", {"state": "healthy", "breaker_state": "closed", "calls": 3, "failures": 0,
                                          "last_success": "2024-05-06T10:00:00+00:00"})
    first, second = result.events[0], result.events[1]
    with store.transaction() as conn:
        conn.execute("INSERT INTO correlations VALUES (?, ?, ?, ?, ?, ?, ?::JSON, ?, NULL)",
                     ["demo", first.event_id, second.event_id, "same_repository", 0.8,
                      (second.occurred_at - first.occurred_at).total_seconds(), json.dumps({"repository": 1}),
                      datetime.now(timezone.utc)])
    return store


def test_health_page_shows_state_and_replays_dead_letters(workbench_env):
    store = _store_with_data(workbench_env.store)
    at = _page("health")
    at.run()
    assert not at.exception
    health = _frame_with(at, "state", "breaker_state")
    assert health.iloc[0]["state"] == "healthy" and health.iloc[0]["breaker_state"] == "closed"
    assert _frame_with(at, "open").iloc[0]["open"] == 1
    at.button(key="replay::0").click().run()
    assert not at.exception
    assert any("Replayed 1" in s for s in _texts(at.success))
    assert store.list_dead_letters("demo", status="open") == []


def test_correlations_page_shows_the_timeline_and_pairs_with_evidence(workbench_env):
    _store_with_data(workbench_env.store)
    at = _page("correlations")
    at.run()
    assert not at.exception
    pairs = _frame_with(at, "rule", "first_evidence")
    assert pairs.iloc[0]["rule"] == "same_repository"
    assert pairs.iloc[0]["first_evidence"].startswith("https://github.com/")
    links = [m.value for m in at.markdown if m.value.startswith("- [")]
    assert links and all("](https://github.com/" in link for link in links)
    at.slider(key="corr_window").set_value(1).run()  # a one-minute window: the pair is 40 s apart
    assert not at.exception


def test_correlations_and_health_pages_handle_an_empty_store(workbench_env):
    for name in ("correlations", "health"):
        at = _page(name)
        at.run()
        assert not at.exception
        assert at.info or at.success


def test_plugins_page_lists_the_registry(workbench_env):
    at = _page("plugins")
    at.run()
    assert not at.exception
    table = _frame_with(at, "name", "version")
    assert "github" in set(table["name"])


def test_the_app_asks_for_the_password_when_one_is_set(workbench_env, monkeypatch):
    monkeypatch.setenv("INTEGRATIONS_WORKBENCH_PASSWORD", "s3cret-for-test")
    at = AppTest.from_file(str(ROOT / "workbench" / "app.py"), default_timeout=120)
    at.run()
    assert at.text_input(key="_workbench_password").label == "Password"
    assert not at.selectbox  # nothing else until the password is given
    at.text_input(key="_workbench_password").input("wrong").run()
    assert "Wrong password." in _texts(at.error)
    at.text_input(key="_workbench_password").input("s3cret-for-test").run()
    assert not at.exception
    assert at.title and at.title[0].value == "Mapping"


def test_the_app_refuses_a_non_loopback_address_without_a_password(workbench_env):
    at = AppTest.from_file(str(ROOT / "workbench" / "app.py"), default_timeout=120)
    at.run()
    assert at.title[0].value == "Mapping"  # loopback, no password: straight in
    from workbench._common import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1")


def test_cli_refuses_other_addresses_without_a_password(cli, monkeypatch):
    monkeypatch.delenv("INTEGRATIONS_WORKBENCH_PASSWORD", raising=False)
    result = cli("workbench", "--host", "0.0.0.0")
    assert result.code != 0
    assert "refusing to listen on 0.0.0.0 without a password" in result.err
    assert "INTEGRATIONS_WORKBENCH_PASSWORD" in result.err
    from integrations.cli.workbench import streamlit_command

    command = streamlit_command(8501, "127.0.0.1")
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("workbench/app.py")
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert "Start the mapping workbench" in cli("--help").out


@pytest.mark.parametrize("page", ["mapping", "correlations", "health", "plugins"])
def test_pages_format_and_never_map(page):
    """Pages call the preview API: a page formats results, it never maps (style anchor 15)."""
    text = (VIEWS / f"{page}.py").read_text()
    for forbidden in ("get_engine", "map_record", ".map(", "PythonEngine", "SqlEngine"):
        assert forbidden not in text
