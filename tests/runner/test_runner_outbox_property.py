"""The sink outbox under random stores, updates and endpoint failures: at least once, in order, nothing lost."""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path

import duckdb
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.events import event_id_for
from integrations.health import FakeClock, HealthMonitor
from integrations.store import EventStore, migrate
from runner._sinks import build_sinks, deliver_pending, parse_sinks
from tests.conftest import ROOT


class OneConnectionStore(EventStore):
    """The real store code on one in-memory DuckDB connection: the same SQL, without a file to open per call."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)  # an existing path: the store's "no file yet" shortcuts stay out of the way
        self.conn = duckdb.connect()
        self.conn.execute("SET TimeZone = 'UTC'")
        self.conn.execute("SET threads = 1")
        migrate(self.conn)
        self._migrated = True

    @contextlib.contextmanager
    def transaction(self):
        self.conn.execute("BEGIN TRANSACTION")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @contextlib.contextmanager
    def reader(self):
        yield self.conn


@pytest.fixture(scope="module")
def pool():
    """Real events to re-key per example (mapped once from the bundled samples)."""
    from integrations.mapping import get_engine, load_mapping
    from integrations.paths import mapping_path
    from integrations.pipeline import map_items
    from integrations.records import iter_records

    events = []
    for plugin, source in (("github", "push"), ("cloudwatch", "alarm_state_change")):
        mapping = load_mapping(mapping_path(plugin, source, ROOT / "mappings"))
        items = list(iter_records(ROOT / "data" / "samples" / "demo" / plugin / f"{source}.jsonl"))
        events.extend(map_items(get_engine("python"), mapping, items, "demo").events)
    return events[:12]


@pytest.fixture(scope="module")
def one_store(tmp_path_factory):
    return OneConnectionStore(tmp_path_factory.mktemp("one-store"))


_tenants = itertools.count()

store_step = st.tuples(st.just("store"), st.lists(st.integers(0, 11), min_size=1, max_size=6, unique=True),
                       st.integers(0, 3))
deliver_step = st.tuples(st.just("deliver"), st.lists(st.sampled_from(["ok", "refuse", "lost"]), max_size=6),
                         st.just(0))


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.one_of(store_step, deliver_step), min_size=1, max_size=5),
       batch_size=st.integers(1, 5))
def test_outbox_delivery_property(pool, one_store, steps, batch_size):
    """Feature: integrations, Property 5: Comprehensive Error Handling — whatever the endpoint does (refuses,
    or takes a batch and loses its answer) and however events are stored and changed between deliveries,
    once it is up again it has received every stored event, each id's last copy is the stored version,
    and the last copies arrived in queue order: at least once, in order per tenant, nothing lost."""
    tenant = f"p{next(_tenants)}"
    answers: list[str] = []
    accepted: list[dict] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0) if answers else "ok"
        if answer == "refuse":
            return httpx.Response(503)
        accepted.extend(httpx.Response(200, content=request.content).json())
        return httpx.Response(200 if answer == "ok" else 500)

    client = httpx.Client(transport=httpx.MockTransport(endpoint))
    sinks = build_sinks(parse_sinks([{"name": "p", "type": "http", "url": "http://processor.test/events",
                                      "batch_size": batch_size, "retry": {"max_attempts": 1},
                                      "breaker": {"failure_threshold": 1000}}]), http_client=client)

    def rekeyed(index: int, version: int):
        e = pool[index]
        ctx = e.integration_context
        return e.model_copy(update={"tenant_id": tenant, "title": f"{e.title} v{version}",
                                    "event_id": event_id_for(tenant, ctx.source_integration, e.kind, ctx.external_id)})

    for kind, value, version in steps:
        if kind == "store":
            one_store.upsert_events([rekeyed(i, version) for i in value], source="prop", run_id="p")
        else:
            answers[:] = value
            deliver_pending(one_store, sinks, tenant, health=HealthMonitor(clock=FakeClock()))
    answers.clear()
    final = deliver_pending(one_store, sinks, tenant, health=HealthMonitor(clock=FakeClock()))
    assert final[0].status == "ok" and final[0].pending == 0

    expected = {e.event_id: e.title for e in one_store.query_events(tenant)}
    last_copy = {ce["id"]: ce["data"]["title"] for ce in accepted}
    assert last_copy == expected
    seq = dict(one_store.conn.execute("SELECT event_id, seq FROM sink_outbox WHERE tenant_id = ? AND sink = 'p'",
                                      [tenant]).fetchall())
    last_positions = {ce["id"]: i for i, ce in enumerate(accepted)}
    in_arrival_order = sorted(last_positions, key=last_positions.get)
    assert [seq[i] for i in in_arrival_order] == sorted(seq[i] for i in in_arrival_order)
    assert all(ce["data"]["tenant_id"] == tenant for ce in accepted)
