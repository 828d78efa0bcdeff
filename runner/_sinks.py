"""Routing: where a tenant's events go after the store, delivered at least once and in order.

`runner.yaml` names the sinks:

```yaml
sinks:
  - {name: store, type: duckdb}                      # the event store itself (always kept; the default)
  - {name: files, type: jsonl, path: out}            # out/files/<tenant>/<YYYY-MM-DD>.jsonl
  - {name: lake, type: parquet, path: s3://bucket/events}   # any pyarrow filesystem URI
  - name: processor                                  # batches of CloudEvents, POSTed
    type: http
    url: https://events.example.com/v1/batch
    batch_size: 500
    token_env: EVENTS_TOKEN                          # Authorization: Bearer $EVENTS_TOKEN
    retry: {max_attempts: 5, base_seconds: 0.5, deadline_seconds: 120}
    breaker: {failure_threshold: 5, cooldown_seconds: 30}
```

The store is the queue. Every sink other than the store has rows in the `sink_outbox` table
(see `integrations/store/_outbox.py`): `route_events()` queues a batch's events in the
transaction that stores them, and `deliver_pending()` first sweeps up any event that was stored
without being queued, then hands each sink its pending rows in `seq` order, marking them
delivered only once the sink took them. A sink that is down keeps its rows; a later run delivers
them. So every sink gets every event at least once, in order per tenant; a CloudEvent's `id` is the
event id, which lets a receiver drop repeats.

File sinks are idempotent by rewriting: a day with pending events is written again, whole, from
the store (sorted by time and id), to a temporary name and then moved over the old file. A day
file therefore always holds each event once, in its newest version, however often it was written.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import duckdb
from pydantic import BaseModel, ConfigDict, Field, field_validator

from integrations.errors import ConfigError, IntegrationsError
from integrations.events import CanonicalEvent, to_cloudevent
from integrations.health import BreakerConfig, HealthMonitor, RetryPolicy, safe_error_message
from integrations.store import EventStore
from integrations.store import _outbox as outbox
from runner._schedule import check_unique_names, load_runner_document, stop_requested, validate_section

log = logging.getLogger(__name__)

SINK_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$"
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json; charset=utf-8"


# -- configuration -----------------------------------------------------------------------------


class _SinkBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=SINK_NAME, description="The sink's name: its outbox rows and output folder")
    tenants: list[str] | None = Field(default=None, description="Only these tenants' events (default: all)")

    def takes(self, tenant_id: str) -> bool:
        return self.tenants is None or tenant_id in self.tenants


class StoreSinkConfig(_SinkBase):
    """The DuckDB event store: events are there once stored; nothing is queued for it."""

    type: Literal["duckdb"]


class FileSinkConfig(_SinkBase):
    """One file per tenant and day: `<path>/<name>/<tenant>/<YYYY-MM-DD>.jsonl|parquet`."""

    type: Literal["jsonl", "parquet"]
    path: str = Field(default="out", description="A folder, or a pyarrow filesystem URI (s3://bucket/prefix)")


class RetryConfig(BaseModel):
    """Retries of one batch. Short by default: a batch that cannot go stays queued for the next run."""

    model_config = ConfigDict(extra="forbid")
    max_attempts: int = Field(default=4, ge=1)
    base_seconds: float = Field(default=0.5, gt=0)
    cap_seconds: float = Field(default=5.0, gt=0)
    deadline_seconds: float = Field(default=30.0, gt=0)

    def policy(self) -> RetryPolicy:
        return RetryPolicy(**self.model_dump())


class BreakerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    failure_threshold: int = Field(default=5, ge=1)
    window_seconds: float = Field(default=60.0, gt=0)
    cooldown_seconds: float = Field(default=30.0, gt=0)

    def config(self) -> BreakerConfig:
        return BreakerConfig(**self.model_dump())


class HttpSinkConfig(_SinkBase):
    """An endpoint taking batches of CloudEvents (`application/cloudevents-batch+json`)."""

    type: Literal["http"]
    url: str = Field(pattern=r"^https?://", description="Where batches are POSTed")
    batch_size: int = Field(default=500, ge=1, le=10_000)
    timeout_seconds: float = Field(default=10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers (no secrets: use token_env)")
    token_env: str | None = Field(default=None, description="Environment variable holding a bearer token")
    retry: RetryConfig = Field(default_factory=RetryConfig)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)

    @field_validator("headers")
    @classmethod
    def _no_auth_header(cls, value: dict[str, str]) -> dict[str, str]:
        if any(k.lower() in ("authorization", "proxy-authorization") for k in value):
            raise ValueError("put the token in an environment variable and name it in token_env")
        return value


SinkConfig = Annotated[StoreSinkConfig | FileSinkConfig | HttpSinkConfig, Field(discriminator="type")]


def default_sinks() -> list[SinkConfig]:
    """Without a `sinks:` section, events go to the store only."""
    return [StoreSinkConfig(name="store", type="duckdb")]


class _SinksSection(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the other sections of runner.yaml are someone else's
    sinks: list[SinkConfig] = Field(default_factory=default_sinks)


def parse_sinks(data: Any, *, file: str | None = None, doc: Any = None) -> list[SinkConfig]:
    """The `sinks:` list of runner.yaml, checked; names must be unique. None means the default (the store)."""
    section = validate_section(_SinksSection, {} if data is None else {"sinks": data}, file=file, doc=doc)
    check_unique_names(section.sinks, "sinks", file=file, doc=doc)
    return section.sinks


def load_sinks(path: Path) -> list[SinkConfig]:
    """The sinks of a runner.yaml file."""
    doc = load_runner_document(path)
    return parse_sinks(doc.data.get("sinks"), file=str(path), doc=doc)


# -- reports -----------------------------------------------------------------------------------


@dataclass
class SinkReport:
    """What one sink did for one tenant in one delivery."""

    sink: str
    type: str
    tenant_id: str
    queued: int = 0          # rows newly queued by the sweep before delivering
    delivered: int = 0       # events handed over this time
    pending: int = 0         # still queued afterwards
    status: str = "ok"       # ok | failed | stopped
    error: str | None = None
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- sinks -------------------------------------------------------------------------------------


class Sink(Protocol):
    """A destination for a tenant's stored events."""

    name: str
    queued: bool  # False: nothing to deliver (the store itself)

    def takes(self, tenant_id: str) -> bool: ...

    def deliver(self, store: EventStore, tenant_id: str, health: HealthMonitor) -> SinkReport: ...

    def close(self) -> None: ...


class StoreSink:
    """The event store: the events are already there."""

    queued = False

    def __init__(self, config: StoreSinkConfig) -> None:
        self.config = config
        self.name = config.name

    def takes(self, tenant_id: str) -> bool:
        return self.config.takes(tenant_id)

    def deliver(self, store: EventStore, tenant_id: str, health: HealthMonitor) -> SinkReport:
        return SinkReport(self.name, "duckdb", tenant_id)

    def close(self) -> None:
        pass


def _filesystem(path: str):
    """A pyarrow filesystem and root for a folder or a URI (s3://, gs://, file://...)."""
    from pyarrow import fs as pafs

    if "://" in path:
        filesystem, root = pafs.FileSystem.from_uri(path)
        return filesystem, root.rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(path)


def _day_bounds(day: str) -> tuple[datetime, datetime]:
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


class FileSink:
    """JSON Lines or Parquet, one file per tenant and day, rewritten whole from the store."""

    queued = True

    def __init__(self, config: FileSinkConfig) -> None:
        self.config = config
        self.name = config.name
        self.format = config.type
        self.fs, self.root = _filesystem(config.path)
        self._local = type(self.fs).__name__ == "LocalFileSystem"

    def takes(self, tenant_id: str) -> bool:
        return self.config.takes(tenant_id)

    def day_path(self, tenant_id: str, day: str) -> str:
        return f"{self.root}/{self.name}/{tenant_id}/{day}.{self.format}"

    def deliver(self, store: EventStore, tenant_id: str, health: HealthMonitor) -> SinkReport:
        report = SinkReport(self.name, self.format, tenant_id)
        with store.transaction() as conn:
            days = outbox.pending_days(conn, tenant_id, self.name)
        for day, rows in days:
            if stop_requested():
                report.status = "stopped"
                break
            start, end = _day_bounds(day)
            try:
                events = store.query_events(tenant_id, since=start, until=end)
                report.files.append(self.write_day(tenant_id, day, events))
            except Exception as err:  # a full disk or a refused bucket: keep the rows, try again later
                message = f"writing {self.day_path(tenant_id, day)}: {safe_error_message(err)}"
                with store.transaction() as conn:
                    outbox.mark_failed(conn, tenant_id, self.name, rows, message)
                report.status, report.error = "failed", message
                log.warning("sink %s (tenant %s): %s", self.name, tenant_id, message)
                break
            with store.transaction() as conn:
                outbox.mark_delivered(conn, tenant_id, self.name, rows)
            report.delivered += len(rows)
        return report

    def write_day(self, tenant_id: str, day: str, events: Sequence[CanonicalEvent]) -> str:
        """Write a day's events (sorted by time and id) over the day's file; returns its path."""
        final = self.day_path(tenant_id, day)
        folder = final.rsplit("/", 1)[0]
        self.fs.create_dir(folder, recursive=True)
        ordered = sorted(events, key=lambda e: (e.occurred_at, e.event_id))
        # Local files are written aside and moved into place (atomic); an object store's PUT already is.
        target = f"{final}.tmp-{uuid.uuid4().hex[:8]}" if self._local else final
        if self.format == "jsonl":
            data = "".join(json.dumps(e.to_json_dict(), sort_keys=True, ensure_ascii=False) + "\n" for e in ordered)
            with self.fs.open_output_stream(target) as out:
                out.write(data.encode("utf-8"))
        else:
            import pyarrow.parquet as pq

            pq.write_table(events_table(ordered), target, filesystem=self.fs)
        if target != final:
            self.fs.move(target, final)
        return final

    def close(self) -> None:
        pass


def events_table(events: Sequence[CanonicalEvent]):
    """Events as an Arrow table with a fixed schema (nested parts as JSON text), for Parquet."""
    import pyarrow as pa

    schema = pa.schema([
        ("event_id", pa.string()), ("tenant_id", pa.string()), ("event_type", pa.string()), ("kind", pa.string()),
        ("severity", pa.string()), ("title", pa.string()), ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("ingested_at", pa.timestamp("us", tz="UTC")), ("source_integration", pa.string()),
        ("external_id", pa.string()), ("resource_ids", pa.list_(pa.string())), ("attributes", pa.string()),
        ("integration_context", pa.string()),
    ])
    rows = []
    for e in events:
        data = e.to_json_dict()
        rows.append({
            "event_id": e.event_id, "tenant_id": e.tenant_id, "event_type": e.event_type, "kind": e.kind,
            "severity": e.severity, "title": e.title, "occurred_at": e.occurred_at, "ingested_at": e.ingested_at,
            "source_integration": e.integration_context.source_integration,
            "external_id": e.integration_context.external_id, "resource_ids": list(e.resource_ids),
            "attributes": json.dumps(data["attributes"], sort_keys=True, ensure_ascii=False),
            "integration_context": json.dumps(data["integration_context"], sort_keys=True, ensure_ascii=False),
        })
    return pa.Table.from_pylist(rows, schema=schema)


# Which sinks a monitor already configured: configure() resets a breaker, so it is done once per monitor.
_configured: "weakref.WeakKeyDictionary[HealthMonitor, set[str]]" = weakref.WeakKeyDictionary()
ALL_TENANTS = "*"  # the health pair of a sink: one endpoint serves every tenant


class HttpSink:
    """POSTs batches of CloudEvents under a health guard (retries with back-off, circuit breaker).

    The guard is the health monitor's for (`*`, `sink:<name>`): one endpoint serves every tenant,
    so once its breaker opens the other tenants fail fast instead of each waiting out the retries;
    a refusal of one tenant's batch (4xx) proves the endpoint up and opens nothing. `integrations
    health` shows the pair beside the integrations. A batch that fails stays queued and stops that
    tenant's delivery for this run: later events never overtake it.
    """

    queued = True

    def __init__(self, config: HttpSinkConfig, *, client: Any = None) -> None:
        import httpx

        self.config = config
        self.name = config.name
        self._own_client = client is None
        self.client = client or httpx.Client(timeout=config.timeout_seconds)

    def takes(self, tenant_id: str) -> bool:
        return self.config.takes(tenant_id)

    @property
    def health_name(self) -> str:
        return f"sink:{self.name}"

    def guard(self, health: HealthMonitor):
        done = _configured.setdefault(health, set())
        if self.name not in done:
            health.configure(ALL_TENANTS, self.health_name, retry=self.config.retry.policy(),
                             breaker=self.config.breaker.config())
            done.add(self.name)
        return health.guard(ALL_TENANTS, self.health_name)

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": CLOUDEVENTS_BATCH, **self.config.headers}
        if self.config.token_env:
            token = os.environ.get(self.config.token_env)
            if not token:
                raise ConfigError(f"sink '{self.name}': environment variable {self.config.token_env} is not set",
                                  field="token_env")
            headers["authorization"] = f"Bearer {token}"
        return headers

    def post(self, guard: Any, events: Sequence[CanonicalEvent]) -> None:
        body = json.dumps([to_cloudevent(e) for e in events], ensure_ascii=False).encode("utf-8")
        guard.call(self.client.post, self.config.url, content=body, headers=self._headers())

    def deliver(self, store: EventStore, tenant_id: str, health: HealthMonitor) -> SinkReport:
        report = SinkReport(self.name, "http", tenant_id)
        guard = self.guard(health)
        with store.transaction() as conn:
            batch = outbox.pending_events(conn, tenant_id, self.name, self.config.batch_size)
        while batch:
            if stop_requested():
                report.status = "stopped"
                break
            rows = [(seq, event.event_id) for seq, event in batch]
            try:
                self.post(guard, [event for _seq, event in batch])
            except Exception as err:  # the endpoint is down or refused: keep the rows queued, in order
                message = str(err) if isinstance(err, IntegrationsError) else safe_error_message(err)
                with store.transaction() as conn:
                    outbox.mark_failed(conn, tenant_id, self.name, rows, message)
                report.status, report.error = "failed", message
                log.warning("sink %s (tenant %s): %d event(s) stay queued: %s", self.name, tenant_id, len(rows),
                            message)
                break
            with store.transaction() as conn:  # one transaction: this batch done, the next one read
                outbox.mark_delivered(conn, tenant_id, self.name, rows)
                batch = outbox.pending_events(conn, tenant_id, self.name, self.config.batch_size)
            report.delivered += len(rows)
        return report

    def close(self) -> None:
        if self._own_client:
            self.client.close()


def build_sinks(configs: Iterable[SinkConfig], *, http_client: Any = None) -> list[Sink]:
    """Sink objects for the configured sinks (an `httpx.Client` may be shared by the HTTP ones)."""
    sinks: list[Sink] = []
    for config in configs:
        if isinstance(config, StoreSinkConfig):
            sinks.append(StoreSink(config))
        elif isinstance(config, FileSinkConfig):
            sinks.append(FileSink(config))
        else:
            sinks.append(HttpSink(config, client=http_client))
    return sinks


# -- what the runner calls ---------------------------------------------------------------------


def route_events(conn: duckdb.DuckDBPyConnection, sinks: Sequence[Sink], tenant_id: str,
                 event_ids: Iterable[str]) -> dict[str, int]:
    """Queue stored events for every sink that takes the tenant; call it in the transaction that stored them."""
    names = [s.name for s in sinks if s.queued and s.takes(tenant_id)]
    return outbox.enqueue(conn, tenant_id, names, event_ids) if names else {}


def deliver_pending(store: EventStore, sinks: Sequence[Sink], tenant_id: str, *,
                    health: HealthMonitor | None = None) -> list[SinkReport]:
    """Catch up the outbox with the store, then deliver each sink's pending events for one tenant.

    Never raises for a sink that fails: its report says why and its events stay queued. Checks
    `stop_requested()` between batches, leaving the rest for the next run.
    """
    mine = [s for s in sinks if s.takes(tenant_id)]
    queued_names = [s.name for s in mine if s.queued]
    health = health or HealthMonitor()
    queued: dict[str, int] = {}
    if queued_names:
        with store.transaction() as conn:
            outbox.drop_orphans(conn, tenant_id)
            queued = outbox.enqueue(conn, tenant_id, queued_names)
    reports: list[SinkReport] = []
    for sink in mine:
        report = sink.deliver(store, tenant_id, health) if sink.queued else SinkReport(sink.name, "duckdb", tenant_id)
        report.queued = queued.get(sink.name, 0)
        reports.append(report)
    if queued_names:
        with store.transaction() as conn:
            counts = {row["sink"]: row["pending"] for row in outbox.outbox_summary(conn, tenant_id)}
        for report in reports:
            report.pending = counts.get(report.sink, 0)
        if any(isinstance(s, HttpSink) for s in mine):
            health.save(store, tenant=ALL_TENANTS)  # the endpoints' figures show in `integrations health`
    return reports


def outbox_status(store: EventStore, tenant_id: str | None = None) -> list[dict[str, Any]]:
    """Delivered and pending counts per tenant and sink, with the last error (for `health`-like views)."""
    if not store.path.exists():
        return []
    with store.reader() as conn:
        return outbox.outbox_summary(conn, tenant_id)


__all__ = [
    "ALL_TENANTS",
    "CLOUDEVENTS_BATCH",
    "FileSink",
    "FileSinkConfig",
    "HttpSink",
    "HttpSinkConfig",
    "Sink",
    "SinkConfig",
    "SinkReport",
    "StoreSink",
    "StoreSinkConfig",
    "build_sinks",
    "default_sinks",
    "deliver_pending",
    "events_table",
    "load_sinks",
    "outbox_status",
    "parse_sinks",
    "route_events",
]
