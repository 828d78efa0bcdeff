"""Runner test fixtures: stores filled from the bundled samples, and a CloudEvents receiver on 127.0.0.1."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, start_uvicorn

SOURCES = (("github", "push"), ("cloudwatch", "alarm_state_change"))
TENANTS = ("demo", "acme")
# Sources whose sample files the partition tests run (a few of each plugin: enough to compare executors).
SAMPLE_SOURCES = {"github": ["push", "pull_request", "deployment"], "cloudwatch": ["alarm_state_change", "log_events"]}


def sample_configs(tenant: str):
    """The tenant's configuration of SAMPLE_SOURCES, read from sample files."""
    from integrations.plugins import PluginConfiguration, SourceConfig

    return [PluginConfiguration(tenant_id=tenant, plugin_name=plugin,
                                sources=[SourceConfig(name=s, mode="samples") for s in sources])
            for plugin, sources in SAMPLE_SOURCES.items()]


def ingest_samples(store, tenant: str, sources=SOURCES) -> None:
    """Map a few bundled sample files of `tenant` (Python engine: fast) and store them as a run would."""
    from integrations.mapping import get_engine, load_mapping
    from integrations.paths import mapping_path
    from integrations.pipeline import ingest
    from integrations.records import iter_records

    engine = get_engine("python")
    for plugin, source in sources:
        mapping = load_mapping(mapping_path(plugin, source, ROOT / "mappings"))
        items = list(iter_records(ROOT / "data" / "samples" / tenant / plugin / f"{source}.jsonl"))
        ingest(store, tenant_id=tenant, mapping=mapping, engine=engine, items=items, run_id="test")


def stored(store, tenant: str) -> dict[str, dict]:
    """The tenant's stored events by id, in their public JSON shape."""
    return {e.event_id: e.to_json_dict() for e in store.query_events(tenant)}


def outbox_rows(store, tenant: str, sink: str) -> list[tuple]:
    """(seq, event_id, delivered) rows of a tenant's outbox for one sink, in seq order."""
    with store.reader() as conn:
        return conn.execute("SELECT seq, event_id, delivered_at IS NOT NULL FROM sink_outbox "
                            "WHERE tenant_id = ? AND sink = ? ORDER BY seq", [tenant, sink]).fetchall()


@pytest.fixture
def filled_store(store):
    for tenant in TENANTS:
        ingest_samples(store, tenant)
    return store


@pytest.fixture(autouse=True)
def _no_stop_request():
    """The stop flag is process-wide: no test may leave it set for the next."""
    from runner._schedule import clear_stop

    clear_stop()
    yield
    clear_stop()


class CloudEventsReceiver:
    """The platform's event processor, as far as a sink can tell: takes CloudEvents batches on POST /events.

    `plan` scripts the next answers: "ok" (record, 200), "refuse" (record nothing, 503), or
    "lost-answer" (record the batch, then answer 500, as when the answer is lost on the way back).
    With the plan used up it answers `default`.
    """

    def __init__(self) -> None:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        self.lock = threading.Lock()
        self.reset()

        async def events(request: Request) -> JSONResponse:
            body = await request.json()
            with self.lock:
                self.requests += 1
                self.content_types.append(request.headers.get("content-type", ""))
                self.authorizations.append(request.headers.get("authorization"))
                answer = self.plan.pop(0) if self.plan else self.default
                if answer in ("ok", "lost-answer"):
                    self.batches.append(body)
            if answer == "refuse":
                return JSONResponse({"error": "unavailable"}, status_code=503)
            if answer == "lost-answer":
                return JSONResponse({"error": "timed out after processing"}, status_code=500)
            return JSONResponse({"accepted": len(body)})

        self.app = Starlette(routes=[Route("/events", events, methods=["POST"])])

    def reset(self) -> None:
        with self.lock:
            self.plan: list[str] = []
            self.default = "ok"
            self.batches: list[list[dict]] = []
            self.requests = 0
            self.content_types: list[str] = []
            self.authorizations: list[str | None] = []

    def received(self, tenant: str) -> list[dict]:
        """Every CloudEvent of the tenant that the receiver took, in arrival order (repeats included)."""
        with self.lock:
            return [ce for batch in self.batches for ce in batch if ce["data"]["tenant_id"] == tenant]


@pytest.fixture(scope="module")
def receiver_server():
    receiver = CloudEventsReceiver()
    port = free_port()
    server, thread = start_uvicorn(receiver.app, port)
    receiver.url = f"http://127.0.0.1:{port}/events"
    yield receiver
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def receiver(receiver_server):
    receiver_server.reset()
    yield receiver_server
    receiver_server.reset()


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"
