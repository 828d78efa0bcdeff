"""Shared object storage (S3 API, moto's server on 127.0.0.1): samples read by partitions, files written by sinks."""

from __future__ import annotations

import json

import pytest

from runner._executors import LocalExecutor
from runner._partitions import partition_tasks, plan_partitions, run_partition
from runner._sinks import build_sinks, deliver_pending, parse_sinks
from tests.conftest import ROOT, free_port
from tests.runner.conftest import sample_configs, stored


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A bucket `lake` on moto's S3 server, with tenant demo's sample files under `samples/`."""
    import os

    from moto.server import ThreadedMotoServer

    keys = {"AWS_ACCESS_KEY_ID": "test-" + os.urandom(4).hex(), "AWS_SECRET_ACCESS_KEY": os.urandom(12).hex(),
            "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    import boto3

    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}")
    client.create_bucket(Bucket="lake")
    for path in (ROOT / "data" / "samples" / "demo").glob("*/*.jsonl"):
        client.upload_file(str(path), "lake", f"samples/demo/{path.parent.name}/{path.name}")
    yield f"?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1", client
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_partitions_read_samples_from_object_storage_like_from_a_folder(s3, tmp_path):
    query, _client = s3
    configs = sample_configs("demo")
    parts = plan_partitions(configs)
    local, _ = partition_tasks(parts, configs, samples=ROOT / "data" / "samples", mappings=ROOT / "mappings",
                               engine="python")
    remote, _ = partition_tasks(parts, configs, samples=f"s3://lake/samples{query}", mappings=ROOT / "mappings",
                                engine="python")
    assert remote[0].samples.startswith("s3://lake/samples")
    with LocalExecutor(2) as executor:
        from_folder = executor.run(local, run_partition)
        from_bucket = executor.run(remote, run_partition)
    assert all(r.error is None for r in from_bucket)
    assert [[e.to_json_dict() for e in r.events] for r in from_bucket] == \
        [[e.to_json_dict() for e in r.events] for r in from_folder]
    missing = run_partition(partition_tasks(plan_partitions(sample_configs("nobody")), sample_configs("nobody"),
                                            samples=f"s3://lake/samples{query}", mappings=ROOT / "mappings")[0][0])
    assert "no sample file" in missing.error


def test_file_sinks_write_to_object_storage(s3, filled_store):
    import pyarrow.parquet as pq
    from pyarrow import fs

    query, client = s3
    sinks = build_sinks(parse_sinks([{"name": "lines", "type": "jsonl", "path": f"s3://lake/events{query}"},
                                     {"name": "table", "type": "parquet", "path": f"s3://lake/events{query}"}]))
    reports = deliver_pending(filled_store, sinks, "demo")
    assert [r.status for r in reports] == ["ok", "ok"] and reports[0].files == ["lake/events/lines/demo/2024-05-06.jsonl"]
    body = client.get_object(Bucket="lake", Key="events/lines/demo/2024-05-06.jsonl")["Body"].read().decode()
    assert {json.loads(line)["event_id"]: json.loads(line) for line in body.splitlines()} == stored(filled_store, "demo")
    bucket, _root = fs.FileSystem.from_uri(f"s3://lake/events{query}")
    table = pq.read_table("lake/events/table/demo/2024-05-06.parquet", filesystem=bucket)
    assert sorted(table.column("event_id").to_pylist()) == sorted(stored(filled_store, "demo"))
