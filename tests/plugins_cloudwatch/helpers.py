"""Shared steps of the CloudWatch tests: a credential in the store, a run through the runner, data in moto."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from integrations.credentials import CredentialManager, EnvironmentMasterKeys, parse_credential
from integrations.health import FakeClock, HealthMonitor, RetryPolicy
from integrations.plugins import PluginRegistry
from integrations.plugins.cloudwatch import CloudWatchPlugin
from integrations.plugins.github import GitHubPlugin
from integrations.store import EventStore
from runner import RunOptions, RunReport, run

CLOUDTRAIL_GROUP = "CloudTrail/DefaultLogGroup"
APP_GROUP = "/aws/lambda/checkout-api"


def registry() -> PluginRegistry:
    reg = PluginRegistry()
    reg.register(CloudWatchPlugin)
    reg.register(GitHubPlugin)
    return reg


def store_keys(store_path: Path, aws, *, name: str = "cw", tenant: str = "acme") -> None:
    """An aws_access_keys credential for the tenant (the run's master key comes from the environment)."""
    manager = CredentialManager(EventStore(store_path), EnvironmentMasterKeys())
    manager.set(tenant, "cloudwatch", name, parse_credential("aws_access_keys", {
        "access_key_id": aws.access_key_id, "secret_access_key": aws.secret_access_key, "region": "us-east-1"}))


def run_once(store_path: Path, tenants_dir: Path, monitor: HealthMonitor | None = None,
             tenants: list[str] | None = None) -> tuple[RunReport, HealthMonitor]:
    monitor = monitor or HealthMonitor(clock=FakeClock(), retry=RetryPolicy(max_attempts=4, base_seconds=0.5))
    options = RunOptions(store_path=store_path, tenants=tenants or ["acme"], tenants_dir=tenants_dir,
                         registry=registry(), engine="python", health=monitor)
    return run(options), monitor


def by_source(report: RunReport) -> dict[tuple[str, str], Any]:
    return {(r.plugin, r.source): r for r in report.sources}


def now_ms() -> int:
    return int(time.time() * 1000)


def cloudtrail_record(event_name: str, *, identity_type: str = "IAMUser", error_code: str | None = None,
                      when: datetime | None = None, **extra: Any) -> dict[str, Any]:
    """A CloudTrail record in the shape a trail writes (eventVersion 1.09)."""
    when = when or datetime.now(timezone.utc) - timedelta(minutes=5)
    identity: dict[str, Any] = {"type": identity_type, "principalId": "AIDA" + secrets.token_hex(8).upper(),
                                "accountId": "123456789012"}
    if identity_type == "Root":
        identity["arn"] = "arn:aws:iam::123456789012:root"
    else:
        identity.update(arn="arn:aws:iam::123456789012:user/dana", userName="dana")
    record = {"eventVersion": "1.09", "userIdentity": identity, "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "eventSource": "signin.amazonaws.com" if event_name == "ConsoleLogin" else "iam.amazonaws.com",
              "eventName": event_name, "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.7",
              "userAgent": "aws-cli/2.15.0", "requestParameters": None, "responseElements": None,
              "requestID": str(uuid.uuid4()), "eventID": str(uuid.uuid4()),
              "readOnly": False, "eventType": "AwsConsoleSignIn" if event_name == "ConsoleLogin" else "AwsApiCall",
              "managementEvent": True, "recipientAccountId": "123456789012", "eventCategory": "Management"}
    if error_code:
        record["errorCode"] = error_code
        record["errorMessage"] = f"{error_code}: not allowed"
    record.update(extra)
    return record


def put_log_events(logs, group: str, stream: str, messages: list[tuple[int, str]]) -> None:
    """Create the group (and stream) if needed and write messages at the given epoch ms."""
    if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
        logs.create_log_group(logGroupName=group)
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=stream)["logStreams"]
    if not streams:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(logGroupName=group, logStreamName=stream,
                        logEvents=[{"timestamp": ts, "message": m} for ts, m in sorted(messages)])


def json_message(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"))
