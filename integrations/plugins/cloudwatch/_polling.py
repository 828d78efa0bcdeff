"""The pollers: FilterLogEvents, GetMetricData and DescribeAlarmHistory, page by page, from cursors.

Each poller is an async generator of `Page`s; a page's `watermarks` are the cursors that are true
once its records are stored (the run loop stores both in one transaction).

* Log groups: FilterLogEvents from the group's cursor to now, following `nextToken`. Events of one
  search are not promised to come in time order across pages, so the cursor is written with the
  last page only; a run that fails half-way asks again from the old cursor (events are keyed by their
  id, so taking one twice stores it once).
* Metric queries: one GetMetricData for all of a tenant's queries, from the oldest cursor, up to now
  minus `metric_settle_seconds`; a datapoint whose period has not ended by then waits for the next
  run, so a period is stored once it is complete. Each query keeps its own cursor.
* Alarms: DescribeAlarms (by name prefix), then DescribeAlarmHistory per alarm (StateUpdate items,
  oldest first, so each page moves the cursor), and the alarm's tags once it has something new.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from integrations.plugins._interface import Page
from integrations.plugins.cloudwatch._api import AwsApi
from integrations.plugins.cloudwatch._cursor import Cursor, advance, from_ms, to_ms
from integrations.plugins.cloudwatch._envelopes import alarm_history_record, log_record, metric_record
from integrations.plugins.cloudwatch._settings import CloudWatchSettings, LogGroup, MetricQuery

log = logging.getLogger(__name__)

HISTORY_PAGE = 100  # DescribeAlarmHistory's MaxRecords limit
ALARMS_PAGE = 100   # DescribeAlarms' MaxRecords limit


@dataclass
class PollWindow:
    """What one fetch needs besides the watermarks: the API, the settings, where, and when."""

    api: AwsApi
    settings: CloudWatchSettings
    account_id: str | None
    since: datetime  # where a source without a cursor starts
    until: datetime
    backfill: bool = False  # `since` was asked for: read from it even behind the cursors

    def start(self, key: str, watermarks: dict[str, str]) -> tuple[Cursor | None, Cursor | None, int]:
        """(cursor to filter with, cursor to move on from, start in epoch ms) of one watermark.

        A backfill reads from `since` without filtering (an event read twice is stored once), and
        its cursor still only moves forward.
        """
        stored = Cursor.parse(watermarks.get(key), key=key)
        if self.backfill or stored is None:
            return None, stored, to_ms(self.since)
        return stored, stored, stored.at_ms

    @property
    def region(self) -> str:
        return self.settings.region


def metric_key(query: MetricQuery) -> str:
    return f"metric:{query.id}"


def alarm_key(alarm_name: str) -> str:
    return f"alarm:{alarm_name}"


# -- log groups --------------------------------------------------------------------------------


async def log_pages(window: PollWindow, source: str, watermarks: dict[str, str]) -> AsyncIterator[Page]:
    """New events of every log group feeding `source` (log_events or cloudtrail)."""
    for group in window.settings.log_groups_for(source):
        async for page in _log_group_pages(window, source, group, watermarks):
            yield page


async def _log_group_pages(window: PollWindow, source: str, group: LogGroup,
                           watermarks: dict[str, str]) -> AsyncIterator[Page]:
    key = group.cursor_key
    cursor, stored, start_ms = window.start(key, watermarks)
    params: dict[str, Any] = {
        "logGroupName": group.name,
        "startTime": start_ms,
        "endTime": to_ms(window.until),
        "limit": window.settings.log_page_size,
    }
    if group.filter_pattern:
        params["filterPattern"] = group.filter_pattern
    if group.log_stream_prefix:
        params["logStreamNamePrefix"] = group.log_stream_prefix
    latest, token, tokens = stored, None, set()
    for _ in range(window.settings.max_pages_per_run):
        reply = await window.api.call("logs", "filter_log_events", **params, **({"nextToken": token} if token else {}))
        events = [e for e in reply.get("events") or []
                  if cursor is None or cursor.admits(int(e["timestamp"]), str(e["eventId"]))]
        latest = advance(latest, ((int(e["timestamp"]), str(e["eventId"])) for e in events))
        token = reply.get("nextToken")
        last = not token or token in tokens  # an emulator may hand the same token back at the end
        tokens.add(token)
        records = [log_record(group, e, region=window.region, account_id=window.account_id) for e in events]
        moved = last and latest is not None and latest != stored
        if records or moved:
            yield Page(source, records, {key: latest.to_text()} if moved and latest else {})
        if last:
            return
    log.warning("log group %s: stopped after %d pages; the cursor stays where it was",
                group.name, window.settings.max_pages_per_run)


# -- metric queries ----------------------------------------------------------------------------


async def metric_pages(window: PollWindow, source: str, watermarks: dict[str, str]) -> AsyncIterator[Page]:
    """New complete datapoints of every configured metric query."""
    queries = window.settings.metric_queries
    if not queries:
        return
    starts = {q.id: window.start(metric_key(q), watermarks) for q in queries}
    cursors = {i: s[0] for i, s in starts.items()}
    stored = {i: s[1] for i, s in starts.items()}
    end = window.until - timedelta(seconds=window.settings.metric_settle_seconds)
    start_ms = min(s[2] for s in starts.values())
    if to_ms(end) <= start_ms:
        return
    by_id = {q.id: q for q in queries}
    latest = dict(stored)
    params: dict[str, Any] = {
        "MetricDataQueries": [q.as_api_query() for q in queries],
        "StartTime": from_ms(start_ms), "EndTime": end, "ScanBy": "TimestampAscending",
    }
    token, tokens = None, set()
    for _ in range(window.settings.max_pages_per_run):
        reply = await window.api.call("cloudwatch", "get_metric_data", **params,
                                      **({"NextToken": token} if token else {}))
        records = []
        for result in reply.get("MetricDataResults") or []:
            query = by_id.get(result.get("Id"))
            if query is None:
                continue
            cursor = cursors[query.id]
            datapoints = [(ts, value) for ts, value in zip(result.get("Timestamps") or [], result.get("Values") or [])
                          if _ended(ts, query.period, end) and (cursor is None or cursor.admits(to_ms(ts), ""))]
            if datapoints:
                records.append(metric_record(query, result, datapoints, region=window.region,
                                             account_id=window.account_id))
                latest[query.id] = advance(latest[query.id], ((to_ms(ts), "") for ts, _ in datapoints))
        token = reply.get("NextToken")
        last = not token or token in tokens
        tokens.add(token)
        moved = {metric_key(by_id[i]): c.to_text() for i, c in latest.items() if c is not None and c != stored[i]}
        if records or (last and moved):
            yield Page(source, records, moved if last else {})
        if last:
            return
    log.warning("metric queries: stopped after %d pages; the cursors stay where they were",
                window.settings.max_pages_per_run)


def _ended(timestamp: datetime, period: int, end: datetime) -> bool:
    """A datapoint's period (which starts at its timestamp) is over by `end`."""
    return timestamp + timedelta(seconds=period) <= end.astimezone(timezone.utc)


# -- alarms ------------------------------------------------------------------------------------


async def alarm_history_pages(window: PollWindow, source: str, watermarks: dict[str, str]) -> AsyncIterator[Page]:
    """New state changes of every alarm the tenant's prefixes select, with each alarm and its tags."""
    for alarm in await _alarms(window):
        async for page in _alarm_pages(window, source, alarm, watermarks):
            yield page


async def _alarms(window: PollWindow) -> list[dict[str, Any]]:
    """DescribeAlarms, once per name prefix (or once for all), metric and composite alarms, by name."""
    found: dict[str, dict[str, Any]] = {}
    for prefix in window.settings.alarm_name_prefixes or [None]:
        params: dict[str, Any] = {"AlarmTypes": ["MetricAlarm", "CompositeAlarm"], "MaxRecords": ALARMS_PAGE}
        if prefix:
            params["AlarmNamePrefix"] = prefix
        token = None
        for _ in range(window.settings.max_pages_per_run):
            reply = await window.api.call("cloudwatch", "describe_alarms", **params,
                                          **({"NextToken": token} if token else {}))
            for alarm in (reply.get("MetricAlarms") or []) + (reply.get("CompositeAlarms") or []):
                found.setdefault(alarm["AlarmName"], alarm)
            token = reply.get("NextToken")
            if not token:
                break
    return [found[name] for name in sorted(found)]


def _history_key(item: dict[str, Any]) -> str:
    return f"{item.get('HistoryItemType')}|{item.get('HistorySummary')}|{(item.get('HistoryData') or '')[:200]}"


async def _alarm_pages(window: PollWindow, source: str, alarm: dict[str, Any],
                       watermarks: dict[str, str]) -> AsyncIterator[Page]:
    name = alarm["AlarmName"]
    key = alarm_key(name)
    cursor, stored, start_ms = window.start(key, watermarks)
    params: dict[str, Any] = {
        "AlarmName": name, "HistoryItemType": "StateUpdate", "ScanBy": "TimestampAscending",
        "StartDate": from_ms(start_ms), "EndDate": window.until,
        "MaxRecords": HISTORY_PAGE,
    }
    tagged: dict[str, Any] | None = None
    latest, token, tokens = stored, None, set()
    for _ in range(window.settings.max_pages_per_run):
        reply = await window.api.call("cloudwatch", "describe_alarm_history", **params,
                                      **({"NextToken": token} if token else {}))
        items = [i for i in reply.get("AlarmHistoryItems") or []
                 if cursor is None or cursor.admits(to_ms(i["Timestamp"]), _history_key(i))]
        if items and tagged is None:
            arn = alarm.get("AlarmArn")
            tags = (await window.api.call("cloudwatch", "list_tags_for_resource", ResourceARN=arn)).get("Tags", []) \
                if arn else []
            tagged = {**alarm, "Tags": tags}
        latest = advance(latest, ((to_ms(i["Timestamp"]), _history_key(i)) for i in items))
        records = [alarm_history_record(tagged, item, region=window.region, account_id=window.account_id)
                   for item in items]
        if records:
            yield Page(source, records, {key: latest.to_text()} if latest and latest != stored else {})
        token = reply.get("NextToken")
        if not token or token in tokens:
            return
        tokens.add(token)
    log.warning("alarm %s: stopped after %d history pages", name, window.settings.max_pages_per_run)
