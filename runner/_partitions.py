"""Partitions: a run cut into independent pieces of work, (tenant, integration, source, time window).

    partitions = plan_partitions(configs, since=..., until=..., window=timedelta(days=1))
    reports = run_partitions(store, configs, executor, run_id=..., samples=..., mappings=...)

A partition reads its records (a sample file, or a plugin's `fetch_data` over its window), maps
them and hands back events, rejections, raw records and watermarks as a picklable
`PartitionResult`; it never touches the store. The runner stores results in partition order, one
transaction per batch as the run loop does, so it stays the store's one writer and the order of a
tenant's events does not depend on which worker was fastest.

What is split by time: a poll source with `since`, `until` and `window` becomes one partition per
window (a backfill; such windows neither read nor move the source's watermarks). A poll source
without them is one incremental partition from its watermarks. A sample file is one partition (a
file is the unit). Webhook sources are not partitioned: their inbox lives beside the runner, which
reads it itself (`run_tenant`).
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from integrations.errors import ConfigError, IntegrationsError, PluginError, RecordError
from integrations.mapping import CompiledMapping, MapResult, get_engine, load_mapping
from integrations.paths import mapping_path
from integrations.pipeline import SourceReport, map_items, store_result
from integrations.plugins._interface import DataRequest, ExternalData, PluginConfiguration, PluginCredentials
from integrations.records import iter_records
from integrations.store import EventStore, utcnow
from runner._executors import Executor
from runner._schedule import stop_requested

# Records per stored batch, as in the run loop (INTEGRATIONS_BATCH_SIZE to change).
BATCH_SIZE = int(os.environ.get("INTEGRATIONS_BATCH_SIZE", "5000"))
PARTITION_MODES = ("samples", "poll")


@dataclass(frozen=True)
class Partition:
    """One independent piece of a run."""

    tenant_id: str
    plugin: str
    source: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    mode: str = "samples"

    @property
    def key(self) -> str:
        text = f"{self.tenant_id}/{self.plugin}/{self.source}"
        if self.window_start or self.window_end:
            start = self.window_start.isoformat() if self.window_start else ""
            end = self.window_end.isoformat() if self.window_end else ""
            text += f"@{start}..{end}"
        return text


def time_windows(since: datetime, until: datetime, window: timedelta) -> list[tuple[datetime, datetime]]:
    """[since, until) cut into consecutive windows of `window` (the last one may be shorter)."""
    if window <= timedelta(0):
        raise ConfigError(f"the partition window must be positive, not {window}", field="window")
    if since >= until:
        raise ConfigError(f"since ({since.isoformat()}) must be before until ({until.isoformat()})", field="since")
    windows = []
    start = since
    while start < until:
        end = min(start + window, until)
        windows.append((start, end))
        start = end
    return windows


def plan_partitions(configs: Iterable[PluginConfiguration], *, since: datetime | None = None,
                    until: datetime | None = None, window: timedelta | None = None,
                    modes: Sequence[str] = PARTITION_MODES) -> list[Partition]:
    """The partitions of tenants' configured integrations, in configuration order (windows in time order)."""
    partitions: list[Partition] = []
    for config in configs:
        if not config.enabled:
            continue
        for source in config.sources:
            if not source.enabled or source.mode not in modes:
                continue
            base = Partition(config.tenant_id, config.plugin_name, source.name, mode=source.mode)
            if source.mode == "poll" and window is not None and since is not None and until is not None:
                partitions.extend(Partition(base.tenant_id, base.plugin, base.source, start, end, "poll")
                                  for start, end in time_windows(since, until, window))
            elif source.mode == "poll":
                partitions.append(Partition(base.tenant_id, base.plugin, base.source, since, until, "poll"))
            else:
                partitions.append(base)
    return partitions


def configs_for_modes(configs: Iterable[PluginConfiguration], modes: Sequence[str]) -> list[PluginConfiguration]:
    """The configurations narrowed to their sources of `modes`; an integration left with none is dropped.

    The runner partitions `configs_for_modes(c, PARTITION_MODES)` and runs `configs_for_modes(c,
    ("webhook",))` through its own loop.
    """
    narrowed = []
    for config in configs:
        sources = [s for s in config.sources if s.mode in modes]
        if sources:
            narrowed.append(config.model_copy(update={"sources": sources}))
    return narrowed


# -- what a worker gets and gives back ---------------------------------------------------------


@dataclass
class PartitionTask:
    """Everything a worker needs for one partition; picklable (only `health` is not, and stays local)."""

    partition: Partition
    samples: str                                   # folder or object-store URI (s3://bucket/samples)
    mappings: str                                  # folder with <plugin>/<source>.yaml
    engine: str = "auto"
    config: PluginConfiguration | None = None      # poll: the tenant's configuration of the plugin
    plugin_class: type | None = None               # poll: resolved by the runner from its registry
    credentials: PluginCredentials | None = None   # poll: decrypted by the runner (see the README on TLS)
    watermarks: dict[str, str] | None = None       # poll: None for a window (backfill), else the cursors
    batch_size: int = BATCH_SIZE
    health: Any = None                             # the runner's HealthMonitor, for in-process executors only


@dataclass
class PartitionBatch:
    """A batch as the run loop stores it: one transaction with its watermarks."""

    result: MapResult
    raw_records: list[Any]
    watermarks: dict[str, str] = field(default_factory=dict)


@dataclass
class PartitionResult:
    """What a partition produced. With `error`, the batches before the failure are still good."""

    partition: Partition
    batches: list[PartitionBatch] = field(default_factory=list)
    error: str | None = None
    fetch_dead_letter: dict[str, Any] | None = None   # a fetch that outlasted its retries, for replay
    duration_s: float = 0.0
    worker: str = ""
    precedence: int = 100                               # the mapping's source precedence, for the upsert

    @property
    def events(self) -> list:
        return [event for batch in self.batches for event in batch.result.events]

    @property
    def rejections(self) -> list:
        return [rejection for batch in self.batches for rejection in batch.result.rejections]


@lru_cache(maxsize=256)
def _mapping(path: str, mtime: float) -> CompiledMapping:
    return load_mapping(Path(path))


def _load_mapping(task: PartitionTask, result: PartitionResult) -> CompiledMapping:
    path = mapping_path(task.partition.plugin, task.partition.source, Path(task.mappings))
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return load_mapping(path)  # raises the loader's own error, naming the file
    mapping = _mapping(str(path), mtime)
    result.precedence = getattr(getattr(mapping, "spec", None), "precedence", 100)
    return mapping


def read_sample_items(samples: str, tenant_id: str, plugin: str, source: str) -> list[tuple[int, Any]]:
    """(position, record) pairs of a sample file in a folder or on an object store."""
    relative = f"{tenant_id}/{plugin}/{source}.jsonl"
    if "://" not in samples:
        path = Path(samples) / relative
        if not path.exists():
            raise PluginError(f"no sample file for source '{source}'", file=str(path))
        return list(iter_records(path))
    from pyarrow import fs as pafs

    filesystem, root = pafs.FileSystem.from_uri(samples)
    location = f"{root.rstrip('/')}/{relative}"
    if filesystem.get_file_info(location).type == pafs.FileType.NotFound:
        raise PluginError(f"no sample file for source '{source}'", file=f"{samples.rstrip('/')}/{relative}")
    with filesystem.open_input_stream(location) as stream:
        text = stream.read().decode("utf-8")
    items = list(iter_records(io.StringIO(text)))
    for _position, item in items:
        if isinstance(item, RecordError):
            item.file = f"{samples.rstrip('/')}/{relative}"
    return items


def _run_samples(task: PartitionTask, result: PartitionResult) -> None:
    p = task.partition
    mapping = _load_mapping(task, result)
    engine = get_engine(task.engine)
    items = read_sample_items(task.samples, p.tenant_id, p.plugin, p.source)
    for start in range(0, len(items), task.batch_size):
        chunk = items[start:start + task.batch_size]
        mapped = map_items(engine, mapping, chunk, p.tenant_id)
        raw = [item for _position, item in chunk if not isinstance(item, RecordError)]
        result.batches.append(PartitionBatch(mapped, raw))


def _run_poll(task: PartitionTask, result: PartitionResult) -> None:
    from integrations.health import HealthMonitor, RateLimitConfig
    from integrations.plugins._lifecycle import PluginInstance

    p, config = task.partition, task.config
    if config is None or task.plugin_class is None:
        raise PluginError(f"partition {p.key} polls but was given no plugin configuration")
    health = task.health or HealthMonitor()
    limits = RateLimitConfig.from_config(config.rate_limits.model_dump(exclude_none=True))
    if health.rate_limit_for(p.tenant_id, p.plugin) != limits:
        health.configure(p.tenant_id, p.plugin, rate_limit=limits)
    if not health.is_available(p.tenant_id, p.plugin):
        raise PluginError(f"plugin '{p.plugin}' is down for tenant '{p.tenant_id}': circuit breaker open",
                          hint="it is retried after the breaker's cool-down; see `integrations health`")
    instance = PluginInstance(tenant_id=p.tenant_id, plugin=task.plugin_class(), timeout=config.timeout_seconds)
    plugin = instance.plugin
    plugin.guard = health.guard(p.tenant_id, p.plugin)
    plugin.mappings[p.source] = _load_mapping(task, result)
    plugin.engine = get_engine(task.engine)
    incremental = task.watermarks is not None
    request = DataRequest(tenant_id=p.tenant_id, source=p.source, watermarks=dict(task.watermarks or {}),
                          since=p.window_start, until=p.window_end)

    async def fetch() -> None:
        try:
            await instance.initialize(config)
            auth = await instance.authenticate(task.credentials or PluginCredentials(p.tenant_id))
            if not auth.ok:
                raise PluginError(f"plugin '{p.plugin}' needs credentials: {auth.message}")
            async for page in instance.fetch(request):
                mapped = await plugin.transform_data(ExternalData(p.tenant_id, p.source, page.records))
                result.batches.append(PartitionBatch(mapped, list(page.records),
                                                     dict(page.watermarks) if incremental else {}))
                request.watermarks.update(page.watermarks)
        finally:
            await instance.shutdown()

    try:
        asyncio.run(fetch())
    except PluginError as err:
        from integrations.health import CircuitOpenError, RetriesExhaustedError, dead_letter_item

        cause = err.__cause__
        if isinstance(cause, (RetriesExhaustedError, CircuitOpenError)):
            described = {"tenant_id": p.tenant_id, "plugin": p.plugin, "source": p.source,
                         "watermarks": dict(request.watermarks), "request": "fetch_data",
                         "since": p.window_start.isoformat() if p.window_start else None,
                         "until": p.window_end.isoformat() if p.window_end else None}
            result.fetch_dead_letter = dead_letter_item(described, cause)
        raise


def run_partition(task: PartitionTask) -> PartitionResult:
    """Read, fetch and map one partition. Never raises: a failure is the result's `error`."""
    started = time.perf_counter()
    result = PartitionResult(task.partition, worker=f"{socket.gethostname()}:{os.getpid()}")
    try:
        if task.partition.mode == "poll":
            _run_poll(task, result)
        else:
            _run_samples(task, result)
    except IntegrationsError as err:
        result.error = str(err) + (f" ({err.hint})" if err.hint else "")
    except Exception as err:  # a plugin bug fails its partition, not the run
        result.error = f"{type(err).__name__}: {err}"
    result.duration_s = time.perf_counter() - started
    return result


# -- the runner's side ---------------------------------------------------------------------------


CredentialResolver = Callable[[PluginConfiguration], PluginCredentials]


def partition_tasks(partitions: Sequence[Partition], configs: Iterable[PluginConfiguration], *, samples: Path | str,
                    mappings: Path | str, engine: str = "auto", store: EventStore | None = None,
                    registry: Any = None, credentials: CredentialResolver | None = None, health: Any = None,
                    batch_size: int = BATCH_SIZE) -> tuple[list[PartitionTask], list[PartitionResult]]:
    """Tasks for the partitions, and failed results for those whose plugin or credentials could not be had."""
    by_pair = {(c.tenant_id, c.plugin_name): c for c in configs}
    samples_text = str(samples) if "://" in str(samples) else str(Path(samples).resolve())
    mappings_text = str(Path(mappings).resolve())
    resolved: dict[tuple[str, str], tuple[type, PluginCredentials] | str] = {}
    pieces = Counter((p.tenant_id, p.plugin, p.source) for p in partitions)
    tasks: list[PartitionTask] = []
    failed: list[PartitionResult] = []
    for partition in partitions:
        task = PartitionTask(partition, samples_text, mappings_text, engine, batch_size=batch_size, health=health)
        if partition.mode == "poll":
            pair = (partition.tenant_id, partition.plugin)
            config = by_pair[pair]
            if pair not in resolved:
                try:
                    if registry is None:
                        from integrations.plugins import load_registry

                        registry = load_registry()
                    plugin_class = registry.resolve(config.plugin_name, config.version)
                    creds = credentials(config) if credentials else PluginCredentials(config.tenant_id)
                    resolved[pair] = (plugin_class, creds)
                except IntegrationsError as err:
                    resolved[pair] = str(err) + (f" ({err.hint})" if err.hint else "")
            if isinstance(resolved[pair], str):
                failed.append(PartitionResult(partition, error=resolved[pair]))  # type: ignore[arg-type]
                continue
            task.plugin_class, task.credentials = resolved[pair]  # type: ignore[misc]
            task.config = config
            if pieces[(partition.tenant_id, partition.plugin, partition.source)] == 1:
                # run once: incremental from the source's cursors (a source cut into windows is a backfill)
                task.watermarks = store.get_watermarks(*pair, partition.source) if store is not None else {}
        tasks.append(task)
    return tasks, failed


def store_partition_result(store: EventStore, result: PartitionResult, *, run_id: str,
                           report: SourceReport) -> SourceReport:
    """Store a partition's batches (one transaction each, with their watermarks) and note its failure."""
    p = result.partition
    for batch in result.batches:
        store_result(store, tenant_id=p.tenant_id, plugin=p.plugin, source=p.source, result=batch.result,
                     precedence=result.precedence, raw_records=batch.raw_records, run_id=run_id,
                     watermarks=batch.watermarks or None, report=report)
    if result.fetch_dead_letter is not None:
        store.add_dead_letters(p.tenant_id, p.plugin, p.source, [result.fetch_dead_letter], kind="fetch",
                               run_id=run_id)
    report.duration_s += result.duration_s
    if result.error is not None:
        report.status = "failed"  # what was stored before the failure stays; its watermarks moved with it
        report.error = result.error if report.error is None else f"{report.error}; {result.error}"
    elif report.status == "ok" and report.rejected:
        report.status = "partial"
    return report


def run_partitions(store: EventStore, configs: Sequence[PluginConfiguration], executor: Executor, *, run_id: str,
                   samples: Path | str, mappings: Path | str, engine: str = "auto", registry: Any = None,
                   credentials: CredentialResolver | None = None, health: Any = None,
                   since: datetime | None = None, until: datetime | None = None, window: timedelta | None = None,
                   modes: Sequence[str] = PARTITION_MODES,
                   on_result: Callable[[PartitionResult], None] | None = None,
                   progress: Callable[[SourceReport], None] | None = None) -> list[SourceReport]:
    """Plan, run on `executor`, and store: one SourceReport per (tenant, plugin, source), rows in `runs`.

    Results are stored in partition order as they arrive; `progress(report)` is called as each
    source's last partition is stored. Once `stop_requested()`, partitions not yet stored are
    called off and reported `stopped`; their sources' watermarks did not move, so the next run
    does that work.
    """
    configs = list(configs)
    partitions = plan_partitions(configs, since=since, until=until, window=window, modes=modes)
    tasks, failed = partition_tasks(partitions, configs, samples=samples, mappings=mappings, engine=engine,
                                    store=store, registry=registry, credentials=credentials,
                                    health=health if executor.in_process else None)
    reports: dict[tuple[str, str, str], SourceReport] = {}
    started: dict[tuple[str, str, str], datetime] = {}

    def report_for(p: Partition) -> SourceReport:
        key = (p.tenant_id, p.plugin, p.source)
        if key not in reports:
            reports[key] = SourceReport(tenant_id=p.tenant_id, plugin=p.plugin, source=p.source,
                                        extra={"mode": p.mode, "partitions": 0, "executor": executor.name})
            started[key] = utcnow()
        return reports[key]

    left = Counter((p.tenant_id, p.plugin, p.source) for p in partitions)
    engine_name = get_engine(engine).name

    def finish(partition: Partition) -> None:
        key = (partition.tenant_id, partition.plugin, partition.source)
        left[key] -= 1
        if left[key] == 0:
            report = reports[key]
            store.record_run({**report.as_dict(), "run_id": run_id, "started_at": started[key],
                              "finished_at": utcnow(), "engine": engine_name})
            if progress is not None:
                progress(report)

    for p in partitions:
        report_for(p)
    for result in failed:
        store_partition_result(store, result, run_id=run_id, report=report_for(result.partition))
        finish(result.partition)
    handles = executor.submit(run_partition, tasks)
    try:
        for task, handle in zip(tasks, handles):
            report = report_for(task.partition)
            if stop_requested():
                if report.status != "failed":
                    report.status, report.error = "stopped", "stopped before every partition was stored"
                finish(task.partition)
                continue
            try:
                result = handle.result()
            except Exception as err:  # the executor lost the task (a worker died): fail this partition only
                result = PartitionResult(task.partition, error=f"{executor.name} executor: {type(err).__name__}: {err}")
            report.extra["partitions"] += 1
            store_partition_result(store, result, run_id=run_id, report=report)
            if on_result is not None:
                on_result(result)
            finish(task.partition)
    finally:
        for handle in handles:
            handle.cancel()
    return list(reports.values())


__all__ = [
    "BATCH_SIZE",
    "PARTITION_MODES",
    "Partition",
    "PartitionBatch",
    "PartitionResult",
    "PartitionTask",
    "configs_for_modes",
    "partition_tasks",
    "plan_partitions",
    "read_sample_items",
    "run_partition",
    "run_partitions",
    "store_partition_result",
    "time_windows",
]
