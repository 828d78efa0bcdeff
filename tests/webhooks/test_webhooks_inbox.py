"""The inbox on its own: storing, draining at least once, tenant isolation, pruning."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.errors import RecordError, StoreError
from integrations.store import EventStore
from integrations.webhooks import Inbox, inbox_reader
from tests.webhooks.conftest import backdate_drained


def github_headers(event: str = "push", content_type: str = "application/json", **extra: str) -> dict[str, str]:
    return {"X-GitHub-Event": event, "Content-Type": content_type, "X-Hub-Signature-256": "sha256=" + "ab" * 32,
            "X-Hub-Signature": "sha1=" + "cd" * 20, "User-Agent": "GitHub-Hookshot/044aadd", **extra}


def body_for(delivery_id: str) -> bytes:
    return json.dumps({"after": delivery_id, "ref": "refs/heads/main"}).encode()


@pytest.fixture(scope="module")
def shared_inbox(tmp_path_factory: pytest.TempPathFactory):
    with Inbox(tmp_path_factory.mktemp("inbox") / "github.sqlite") as box:
        yield box


@pytest.fixture
def inbox(tmp_path: Path):
    with Inbox(tmp_path / "inbox" / "github.sqlite") as box:
        yield box


def test_the_file_is_wal_with_full_sync_and_created_with_its_directory(tmp_path: Path):
    path = tmp_path / "deep" / "er" / "github.sqlite"
    with Inbox(path) as box:
        assert path.exists()
        assert box._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert box._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_add_is_idempotent_per_delivery_id(inbox: Inbox):
    assert inbox.add("acme", "d-1", github_headers(), body_for("d-1")) is True
    assert inbox.add("acme", "d-1", github_headers(), body_for("d-1")) is False
    assert inbox.counts("acme") == {"pending": 1, "drained": 0}


def test_signature_headers_are_never_stored(inbox: Inbox):
    inbox.add("acme", "d-1", github_headers(**{"X-GitHub-Hook-ID": "42"}), body_for("d-1"))
    conn = sqlite3.connect(inbox.path)
    try:
        stored = json.loads(conn.execute("SELECT headers FROM deliveries").fetchone()[0])
    finally:
        conn.close()
    assert stored == {"X-GitHub-Event": "push", "Content-Type": "application/json",
                      "User-Agent": "GitHub-Hookshot/044aadd", "X-GitHub-Hook-ID": "42"}


def test_a_body_without_a_json_object_is_refused_before_it_is_stored(inbox: Inbox):
    with pytest.raises(RecordError, match="not JSON") as err:
        inbox.add("acme", "d-1", github_headers(), b"{oops")
    assert err.value.field == "body"
    with pytest.raises(RecordError, match="X-GitHub-Event"):
        inbox.add("acme", "d-2", {"Content-Type": "application/json"}, b"{}")
    assert inbox.counts("acme") == {"pending": 0, "drained": 0}


def test_pending_decodes_form_bodies_and_keeps_the_raw_bytes(inbox: Inbox):
    raw = urlencode({"payload": json.dumps({"zen": "ünïcode"})}).encode()
    inbox.add("acme", "d-1", github_headers(content_type="application/x-www-form-urlencoded"), raw)
    [delivery] = inbox.pending("acme")
    assert delivery.payload == {"zen": "ünïcode"}
    assert delivery.body == raw
    assert delivery.event_name == "push"
    assert delivery.received_at.tzinfo is not None
    assert "payload" not in repr(delivery) and "zen" not in repr(delivery)


def test_pending_is_oldest_first_and_bounded(inbox: Inbox):
    ids = [f"d-{i}" for i in range(5)]
    for delivery_id in ids:
        inbox.add("acme", delivery_id, github_headers(), body_for(delivery_id))
    assert [d.delivery_id for d in inbox.pending("acme", limit=3)] == ids[:3]


def test_drain_marks_the_batch_only_when_the_block_succeeds(inbox: Inbox):
    for delivery_id in ("d-1", "d-2"):
        inbox.add("acme", delivery_id, github_headers(), body_for(delivery_id))
    with pytest.raises(RuntimeError):
        with inbox.drain("acme") as batch:
            assert len(batch) == 2
            raise RuntimeError("the store transaction failed")
    with inbox.drain("acme") as batch:  # the same deliveries come again
        assert [d.delivery_id for d in batch] == ["d-1", "d-2"]
    with inbox.drain("acme") as batch:
        assert batch == []
    assert inbox.counts("acme") == {"pending": 0, "drained": 2}


def test_drain_is_at_least_once_and_a_second_delivery_to_the_store_is_harmless(inbox: Inbox, tmp_path: Path):
    """A crash after the store commit but before the mark: the batch comes again, the store is unchanged."""
    store = EventStore(tmp_path / "events.duckdb")
    for delivery_id in ("d-1", "d-2", "d-3"):
        inbox.add("acme", delivery_id, github_headers(), body_for(delivery_id))

    def stored_raw() -> int:
        with store.reader() as conn:
            return conn.execute("SELECT count(*) FROM raw_records WHERE tenant_id = 'acme'").fetchone()[0]

    with pytest.raises(RuntimeError):
        with inbox.drain("acme") as batch:
            with store.transaction() as conn:
                store.add_raw_records("acme", "github", "webhook", [d.payload for d in batch], conn=conn)
            raise RuntimeError("crash between the store commit and the mark")
    assert stored_raw() == 3
    assert inbox.counts("acme")["pending"] == 3

    with inbox.drain("acme") as batch:
        with store.transaction() as conn:
            added = store.add_raw_records("acme", "github", "webhook", [d.payload for d in batch], conn=conn)
    assert added == 0 and stored_raw() == 3
    assert inbox.counts("acme") == {"pending": 0, "drained": 3}


def test_a_tenant_cannot_drain_or_mark_another_tenants_deliveries(inbox: Inbox):
    inbox.add("acme", "d-1", github_headers(), body_for("d-1"))
    inbox.add("globex", "d-2", github_headers(), body_for("d-2"))
    inbox.add("globex", "d-1", github_headers(), body_for("d-1-globex"))  # same id, other tenant

    assert inbox.mark_drained("acme", ["d-2"]) == 0
    with inbox.drain("acme") as batch:
        assert [(d.tenant_id, d.delivery_id) for d in batch] == [("acme", "d-1")]
    assert inbox.counts("globex") == {"pending": 2, "drained": 0}
    with inbox.drain("globex") as batch:
        assert {d.delivery_id: d.payload["after"] for d in batch} == {"d-2": "d-2", "d-1": "d-1-globex"}


@settings(max_examples=100, deadline=None)
@given(deliveries=st.lists(st.tuples(st.sampled_from(["acme", "globex", "initech"]),
                                     st.sampled_from([f"d-{i}" for i in range(12)])), max_size=30),
       cross_marks=st.lists(st.tuples(st.sampled_from(["acme", "globex", "initech"]),
                                      st.sampled_from([f"d-{i}" for i in range(12)])), max_size=10))
def test_property_drain_returns_exactly_the_tenants_own_distinct_deliveries(shared_inbox, deliveries, cross_marks):
    """Feature: integrations, Property 2: Comprehensive Tenant Isolation.

    Whatever deliveries arrive for whichever tenants (with repeats), each tenant's drain returns
    exactly its own distinct delivery ids, once each, and marking ids as another tenant changes
    nothing for the owner.
    """
    run = uuid.uuid4().hex[:8]  # one inbox for every example; each example has its own tenants
    tenants = {name: f"{name}-{run}" for name in ("acme", "globex", "initech")}
    for name, delivery_id in deliveries:
        shared_inbox.add(tenants[name], delivery_id, github_headers(), json.dumps({"tenant": name}).encode())
    for name, delivery_id in cross_marks:  # marks by a tenant that does not own the delivery
        if (name, delivery_id) not in set(deliveries):
            assert shared_inbox.mark_drained(tenants[name], [delivery_id]) == 0
    for name, tenant in tenants.items():
        expected = {d for t, d in deliveries if t == name}
        with shared_inbox.drain(tenant, limit=100) as batch:
            got = [d.delivery_id for d in batch]
            assert all(d.tenant_id == tenant and d.payload == {"tenant": name} for d in batch)
        assert sorted(got) == sorted(expected)
        with shared_inbox.drain(tenant) as again:
            assert again == []


def test_prune_deletes_only_drained_deliveries_older_than_the_cutoff(inbox: Inbox):
    for delivery_id in ("d-1", "d-2"):
        inbox.add("acme", delivery_id, github_headers(), body_for(delivery_id))
    inbox.mark_drained("acme", ["d-1"])
    assert inbox.prune(datetime.now(timezone.utc) - timedelta(days=3)) == 0
    assert inbox.prune(datetime.now(timezone.utc) + timedelta(seconds=1)) == 1
    assert inbox.counts("acme") == {"pending": 1, "drained": 0}


def test_summary_counts_per_tenant_and_event_and_dates_the_oldest_pending(inbox: Inbox):
    inbox.add("acme", "d-1", github_headers("push"), body_for("d-1"))
    inbox.add("acme", "d-2", github_headers("issues"), body_for("d-2"))
    inbox.add("acme", "d-3", github_headers("issues"), body_for("d-3"))
    inbox.add("globex", "d-1", github_headers("push"), body_for("d-1"))
    inbox.mark_drained("acme", ["d-1"])
    rows = inbox.summary()
    assert [(r["tenant_id"], r["event"], r["pending"], r["drained"]) for r in rows] == [
        ("acme", "issues", 2, 0), ("acme", "push", 0, 1), ("globex", "push", 1, 0)]
    assert rows[1]["oldest_pending"] is None
    assert datetime.fromisoformat(rows[0]["oldest_pending"]) <= datetime.now(timezone.utc)
    assert [r["tenant_id"] for r in inbox.summary("globex")] == ["globex"]


def test_the_status_and_prune_commands_cover_both_inboxes(tmp_path: Path):
    from click.testing import CliRunner

    from integrations.cli.webhooks import command

    github, cloudwatch = tmp_path / "github.sqlite", tmp_path / "cloudwatch.sqlite"
    with Inbox(github) as hooks, Inbox(cloudwatch) as aws:
        for n in range(3):
            hooks.add("acme", f"g-{n}", github_headers(), body_for(f"g-{n}"))
            aws.add("acme", f"a-{n}", {"Content-Type": "application/json"}, body_for(f"a-{n}"),
                    event_name="alarm_state_change")
        hooks.mark_drained("acme", ["g-0", "g-1"])
        aws.mark_drained("acme", ["a-0"])
    runner = CliRunner()
    shown = runner.invoke(command, ["status", "--inbox", str(github), "--json"])
    assert shown.exit_code == 0, shown.output
    rows = [json.loads(line) for line in shown.output.splitlines()]
    assert [(r["plugin"], r["event"], r["pending"], r["drained"]) for r in rows] == [
        ("github", "push", 1, 2), ("cloudwatch", "alarm_state_change", 2, 1)]

    recent = runner.invoke(command, ["prune", "--inbox", str(github)])
    assert "github: 0 drained deliveries" in recent.output and "cloudwatch: 0" in recent.output
    backdate_drained(github, 8)
    backdate_drained(cloudwatch, 8)
    pruned = runner.invoke(command, ["prune", "--inbox", str(github)])
    assert pruned.exit_code == 0, pruned.output
    assert "github: 2 drained deliveries older than 7 days deleted" in pruned.output
    assert "cloudwatch: 1 drained" in pruned.output
    with Inbox(github) as hooks, Inbox(cloudwatch) as aws:  # pending deliveries are never deleted
        assert hooks.counts("acme") == {"pending": 1, "drained": 0}
        assert aws.counts("acme") == {"pending": 2, "drained": 0}
    assert runner.invoke(command, ["prune", "--keep-days", "1", "--inbox", str(github)]).exit_code == 2


def test_two_inbox_objects_share_one_file(tmp_path: Path):
    """The receiver and the runner each open their own Inbox on the same file."""
    path = tmp_path / "github.sqlite"
    with Inbox(path) as receiver_side, Inbox(path) as runner_side:
        receiver_side.add("acme", "d-1", github_headers(), body_for("d-1"))
        with runner_side.drain("acme") as batch:
            assert [d.delivery_id for d in batch] == ["d-1"]
        assert receiver_side.counts("acme") == {"pending": 0, "drained": 1}


def test_an_inbox_that_cannot_be_opened_is_a_store_error(tmp_path: Path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(StoreError) as err:
        Inbox(blocker / "github.sqlite")
    assert err.value.file == str(blocker / "github.sqlite")
    assert "cannot open webhook inbox" in str(err.value)


def test_a_newer_inbox_schema_is_refused(tmp_path: Path):
    path = tmp_path / "github.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="newer than this program"):
        Inbox(path)


def test_a_closed_inbox_fails_its_health_check(tmp_path: Path):
    box = Inbox(tmp_path / "github.sqlite")
    box.check()
    box.close()
    with pytest.raises(StoreError):
        box.check()


def test_delivery_ids_are_opaque_text(inbox: Inbox):
    delivery_id = str(uuid.uuid4())
    inbox.add("acme", delivery_id, github_headers(), body_for(delivery_id))
    assert inbox.mark_drained("acme", [delivery_id, "unknown"]) == 1


# -- the run loop's reader -------------------------------------------------------------------


def test_the_reader_gives_one_sources_payloads_and_acknowledges_exactly_them(inbox: Inbox):
    inbox.add("acme", "d-1", github_headers("push"), body_for("d-1"))
    inbox.add("acme", "d-2", github_headers("pull_request"), body_for("d-2"))
    inbox.add("acme", "d-3", github_headers("push"), body_for("d-3"))
    inbox.add("globex", "d-4", github_headers("push"), body_for("d-4"))
    read = inbox_reader(inbox)

    payloads, acknowledge = read("acme", "github", "push")
    assert [p["after"] for p in payloads] == ["d-1", "d-3"]
    inbox.add("acme", "d-5", github_headers("push"), body_for("d-5"))  # arrives while the batch is stored
    acknowledge()
    assert [d.delivery_id for d in inbox.pending("acme")] == ["d-2", "d-5"]
    assert inbox.counts("globex") == {"pending": 1, "drained": 0}

    unacknowledged, _ack = read("acme", "github", "pull_request")
    assert [p["after"] for p in unacknowledged] == ["d-2"]
    again, _ack = read("acme", "github", "pull_request")  # not acknowledged: comes again
    assert [p["after"] for p in again] == ["d-2"]

    assert read("acme", "cloudwatch", "push")[0] == []
