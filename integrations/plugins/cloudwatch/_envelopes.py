"""Records as the mappings read them: what an AWS API returned, plus the context it leaves out.

An API answer does not say which region or account it came from, a FilterLogEvents event does not
say its log group, a GetMetricData result does not say which metric it measured. These functions
add exactly that and nothing else (docs/envelopes.md), and turn boto3's datetimes into ISO-8601
strings in UTC so the records are JSON and the mappings see the same text every time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from integrations.plugins.cloudwatch._settings import LogGroup, MetricQuery


def utc_iso(moment: datetime) -> str:
    """`2024-05-01T12:05:00+00:00` (boto3 hands back datetimes in the local zone of the parser)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat()


def jsonable(value: Any) -> Any:
    """A boto3 answer as JSON: datetimes become UTC ISO strings, ResponseMetadata is dropped."""
    if isinstance(value, datetime):
        return utc_iso(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def metric_record(query: MetricQuery, result: Mapping[str, Any], datapoints: Sequence[tuple[datetime, float]],
                  *, region: str, account_id: str | None) -> dict[str, Any]:
    """One `metric_data` record: a MetricDataResults item with only the datapoints worth storing."""
    item = jsonable({k: v for k, v in result.items() if k not in ("Timestamps", "Values")})
    item["Timestamps"] = [utc_iso(ts) for ts, _ in datapoints]
    item["Values"] = [value for _, value in datapoints]
    return {"query": query.as_envelope_query(), "region": region, "account_id": account_id, "result": item}


def log_record(group: LogGroup, event: Mapping[str, Any], *, region: str, account_id: str | None) -> dict[str, Any]:
    """One `log_events` (or `cloudtrail`) record: a FilterLogEvents event and its log group."""
    return {"log_group": group.name, "region": region, "account_id": account_id, "event": jsonable(event)}


def alarm_history_record(alarm: Mapping[str, Any] | None, item: Mapping[str, Any], *, region: str,
                         account_id: str | None) -> dict[str, Any]:
    """One `alarm_history` record: a history item and its alarm (DescribeAlarms entry plus `Tags`)."""
    return {"region": region, "account_id": account_id, "alarm": jsonable(alarm) if alarm is not None else None,
            "item": jsonable(item)}
