"""Partitions and executors: the same partitions give the same events on threads, processes and a Dask cluster."""

from __future__ import annotations

import pickle
from datetime import timedelta
from pathlib import Path

import pytest

from integrations.errors import ConfigError
from integrations.plugins import PluginConfiguration, PluginRegistry, SourceConfig
from runner._executors import DaskExecutor, LocalExecutor, make_executor
from runner._partitions import (
    PARTITION_MODES,
    Partition,
    configs_for_modes,
    partition_tasks,
    plan_partitions,
    run_partition,
    run_partitions,
    time_windows,
)
from runner._schedule import request_stop
from tests.conftest import ROOT, free_port
from tests.runner.conftest import SAMPLE_SOURCES, sample_configs
from tests.runner.window_plugin import MAPPING, START, BrokenAfterMay3, WindowPlugin



@pytest.fixture(scope="module")
def mappings(tmp_path_factory) -> Path:
    """The shipped mappings plus the window plugin's, in one folder."""
    import shutil

    folder = tmp_path_factory.mktemp("mappings")
    for plugin in SAMPLE_SOURCES:
        shutil.copytree(ROOT / "mappings" / plugin, folder / plugin)
    (folder / "window").mkdir()
    (folder / "window" / "items.yaml").write_text(MAPPING)
    return folder


def registry(cls=WindowPlugin) -> PluginRegistry:
    reg = PluginRegistry()
    reg.register(cls)
    return reg


def window_config(tenant: str = "demo") -> PluginConfiguration:
    return PluginConfiguration(tenant_id=tenant, plugin_name="window", sources=[SourceConfig(name="items", mode="poll")])


def comparable(results) -> list:
    """What a partition produced, in a form that compares across executors (no timings, no worker names)."""
    return [(r.partition, [e.to_json_dict() for e in r.events], [x.as_dict() for x in r.rejections],
             [b.watermarks for b in r.batches], r.error) for r in results]


# -- planning --------------------------------------------------------------------------------------


def test_plan_partitions_cuts_poll_sources_into_windows_and_leaves_webhooks_to_the_runner():
    config = PluginConfiguration(tenant_id="demo", plugin_name="window", sources=[
        SourceConfig(name="items", mode="poll"), SourceConfig(name="files", mode="samples"),
        SourceConfig(name="hooks", mode="webhook"), SourceConfig(name="off", mode="poll", enabled=False)])
    off = PluginConfiguration(tenant_id="demo", plugin_name="other", enabled=False,
                              sources=[SourceConfig(name="x", mode="samples")])
    since, until = START, START + timedelta(days=2, hours=12)
    parts = plan_partitions([config, off], since=since, until=until, window=timedelta(days=1))
    assert [p.key for p in parts] == [
        "demo/window/items@2024-05-01T00:00:00+00:00..2024-05-02T00:00:00+00:00",
        "demo/window/items@2024-05-02T00:00:00+00:00..2024-05-03T00:00:00+00:00",
        "demo/window/items@2024-05-03T00:00:00+00:00..2024-05-03T12:00:00+00:00",
        "demo/window/files"]
    assert [p.mode for p in parts] == ["poll", "poll", "poll", "samples"]
    assert plan_partitions([config]) == [Partition("demo", "window", "items", mode="poll"),
                                         Partition("demo", "window", "files")]
    assert [[s.name for s in c.sources] for c in configs_for_modes([config, off], ("webhook",))] == [["hooks"]]
    assert [[s.name for s in c.sources] for c in configs_for_modes([config], PARTITION_MODES)] == [
        ["items", "files", "off"]]
    with pytest.raises(ConfigError, match="positive"):
        time_windows(since, until, timedelta(0))
    with pytest.raises(ConfigError, match="before"):
        time_windows(until, since, timedelta(days=1))


# -- the same partitions everywhere ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tasks(mappings):
    configs = sample_configs("demo") + sample_configs("acme") + [window_config("demo")]
    parts = plan_partitions(configs, since=START, until=START + timedelta(days=6), window=timedelta(days=2))
    built, failed = partition_tasks(parts, configs, samples=ROOT / "data" / "samples", mappings=mappings,
                                    engine="python", registry=registry())
    assert failed == [] and len(built) == 2 * 5 + 3
    return built


@pytest.fixture(scope="module")
def local_results(tasks):
    with LocalExecutor(2) as executor:
        return executor.run(tasks, run_partition)


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("dask.distributed")
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None,
                                       silence_logs=40)
    yield cluster
    cluster.close()


def test_local_results_are_complete(local_results):
    assert all(r.error is None for r in local_results)
    assert sum(len(r.events) for r in local_results) > 50
    windows = [r for r in local_results if r.partition.plugin == "window"]
    assert sum(len(r.events) for r in windows) == 20  # 20 records 7 hours apart, all within the six days
    assert all(b.watermarks == {} for r in windows for b in r.batches)  # a backfill moves no cursor


def test_the_dask_executor_gives_the_same_events_as_the_local_one(tasks, local_results, dask_cluster):
    with DaskExecutor(dask_cluster) as executor:
        remote = executor.run(tasks, run_partition)
    assert comparable(remote) == comparable(local_results)
    assert {r.worker for r in remote} != {r.worker for r in local_results}  # they really ran elsewhere


def test_a_process_pool_gives_the_same_events_as_threads(tasks, local_results):
    some = [0, 4, len(tasks) - 1]  # a sample file of each plugin and a window: a spawned worker costs its imports
    with make_executor("process", workers=1) as executor:
        assert comparable(executor.run([tasks[i] for i in some], run_partition)) == \
            comparable([local_results[i] for i in some])


def test_partition_results_cross_process_boundaries_intact(local_results):
    broken = run_partition(partition_tasks([Partition("demo", "github", "nope")], [], samples=ROOT / "data" / "samples",
                                           mappings=ROOT / "mappings")[0][0])
    assert broken.error and "nope" in broken.error
    for result in [*local_results[:3], broken]:
        assert comparable([pickle.loads(pickle.dumps(result))]) == comparable([result])


# -- the runner's side: storing, failures, stop ---------------------------------------------------------


def test_run_partitions_stores_every_partition_and_a_backfill_equals_an_incremental_fetch(store, mappings):
    configs = [PluginConfiguration(tenant_id="acme", plugin_name="github", sources=[SourceConfig(name="push")]),
               window_config("demo")]
    finished = []
    with LocalExecutor(2) as executor:
        reports = run_partitions(store, configs, executor, run_id="r1", samples=ROOT / "data" / "samples",
                                 mappings=mappings, engine="python", registry=registry(), progress=finished.append,
                                 since=START, until=START + timedelta(days=7), window=timedelta(days=3))
    assert [r.source for r in finished] == ["push", "items"]  # each source once, when its last partition is in
    by_source = {(r.tenant_id, r.source): r for r in reports}
    assert by_source[("demo", "items")].extra["partitions"] == 3 and by_source[("demo", "items")].status == "ok"
    assert by_source[("demo", "items")].events == 20
    backfilled = {e.event_id: e.to_json_dict(with_ingested_at=False) for e in store.query_events("demo")}
    assert store.get_watermarks("demo", "window", "items") == {}
    runs = {(row["source"], row["status"]) for row in store.list_runs()}
    assert ("items", "ok") in runs and ("push", "ok") in runs

    other = type(store)(store.path.with_name("incremental.duckdb"))
    with LocalExecutor(1) as executor:
        run_partitions(other, [window_config("demo")], executor, run_id="r2", samples=ROOT / "data" / "samples",
                       mappings=mappings, engine="python", registry=registry())
        assert {e.event_id: e.to_json_dict(with_ingested_at=False) for e in other.query_events("demo")} == backfilled
        assert other.get_watermarks("demo", "window", "items") == {"last": "2024-05-06T13:00:00Z"}
        again = run_partitions(other, [window_config("demo")], executor, run_id="r3",
                               samples=ROOT / "data" / "samples", mappings=mappings, engine="python",
                               registry=registry())
    assert again[0].events == 0  # the cursor moved with the events: nothing fetched twice


def test_a_failing_window_is_reported_and_the_others_are_stored(store, mappings):
    with LocalExecutor(2) as executor:
        reports = run_partitions(store, [window_config("demo")], executor, run_id="r", samples=ROOT / "data" / "samples",
                                 mappings=mappings, engine="python", registry=registry(BrokenAfterMay3),
                                 since=START, until=START + timedelta(days=4), window=timedelta(days=1))
    assert reports[0].status == "failed" and "the API fell over" in reports[0].error
    assert {e.occurred_at.day for e in store.query_events("demo")} == {1, 2}


def test_a_stop_request_leaves_the_remaining_partitions_for_the_next_run(store, mappings):
    stored = []

    def stop_after_first(result):
        stored.append(result.partition)
        request_stop()

    with LocalExecutor(1) as executor:
        reports = run_partitions(store, [window_config("demo")], executor, run_id="r", samples=ROOT / "data" / "samples",
                                 mappings=mappings, engine="python", registry=registry(), on_result=stop_after_first,
                                 since=START, until=START + timedelta(days=4), window=timedelta(days=1))
    assert len(stored) == 1 and reports[0].status == "stopped"
    assert {e.occurred_at.day for e in store.query_events("demo")} == {1}


def test_executor_choices_and_errors():
    assert make_executor("local", workers=3).workers == 3
    assert make_executor("process").in_process is False
    with pytest.raises(ConfigError, match="unknown executor") as err:
        make_executor("spark")
    assert "dask" in err.value.hint
    with pytest.raises(ConfigError, match="scheduler address"):
        make_executor("dask")
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler"):
        DaskExecutor(f"tcp://127.0.0.1:{free_port()}", timeout=1)
