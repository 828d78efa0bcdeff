"""The pollers and their cursors, against a scripted API (pure logic; moto is in the end-to-end tests).

The scripted API answers like AWS: FilterLogEvents and DescribeAlarmHistory filter by time
inclusively and page with tokens; FilterLogEvents promises no order across pages.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.errors import PluginError
from integrations.plugins.cloudwatch import CloudWatchSettings
from integrations.plugins.cloudwatch._cursor import Cursor, advance, to_ms
from integrations.plugins.cloudwatch._polling import PollWindow, alarm_history_pages, log_pages, metric_pages

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
T0_MS = to_ms(T0)


class ScriptedLogs:
    """FilterLogEvents over a fixed list of events, `page_size` per page, in a shuffled order."""

    def __init__(self, events: list[tuple[int, str]], page_size: int, seed: int, fail_on_page: int | None = None):
        self.events = events
        self.page_size = page_size
        self.seed = seed
        self.fail_on_page = fail_on_page
        self.calls: list[dict[str, Any]] = []

    async def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        assert (service, operation) == ("logs", "filter_log_events")
        self.calls.append(params)
        token = int(params.get("nextToken", 0))
        if self.fail_on_page is not None and token // self.page_size == self.fail_on_page:
            raise ConnectionError("the network fell over")
        found = [{"timestamp": ts, "eventId": eid, "message": f"m{eid}", "logStreamName": "s"}
                 for ts, eid in self.events if params["startTime"] <= ts <= params["endTime"]]
        random.Random(self.seed).shuffle(found)  # no time order promised; the same search pages one order
        page = found[token:token + self.page_size]
        reply: dict[str, Any] = {"events": page}
        if token + self.page_size < len(found):
            reply["nextToken"] = str(token + self.page_size)
        return reply


def window(api: Any, until_ms: int, backfill: bool = False, **overrides: Any) -> PollWindow:
    conf = CloudWatchSettings(log_groups=["/aws/lambda/app"], **overrides)
    until = T0 + timedelta(milliseconds=until_ms)
    return PollWindow(api=api, settings=conf, account_id="123456789012", since=T0, until=until, backfill=backfill)


def poll(api: Any, until_ms: int, watermarks: dict[str, str], source: str = "log_events",
         poller=log_pages, backfill: bool = False, **overrides: Any) -> tuple[list[dict], dict[str, str]]:
    """One fetch: the records of every page, and the watermarks as a run would store them."""
    records: list[dict] = []
    stored = dict(watermarks)

    async def go() -> None:
        async for page in poller(window(api, until_ms, backfill, **overrides), source, dict(watermarks)):
            records.extend(page.records)
            stored.update(page.watermarks)

    asyncio.run(go())
    return records, stored


events_strategy = st.lists(st.tuples(st.integers(0, 40), st.text("abcdef0123456789", min_size=4, max_size=8)),
                           max_size=40, unique_by=lambda e: e[1])


@settings(max_examples=150, deadline=None)
@given(events=events_strategy, cuts=st.lists(st.integers(0, 45), min_size=1, max_size=5),
       page_size=st.integers(1, 6), seed=st.integers(0, 1000))
def test_log_cursor_takes_every_event_exactly_once_across_runs(events, cuts, page_size, seed):
    """Feature: integrations, Property 4: incremental log polling takes every event once, whatever the run times.

    Events become visible when their timestamp has passed (run k sees those up to its `until`);
    each run asks again from the stored cursor; pages come in any order.
    """
    events = [(T0_MS + ts, eid) for ts, eid in events]
    marks: dict[str, str] = {}
    taken: list[str] = []
    for cut in sorted(cuts):
        api = ScriptedLogs(events, page_size, seed)
        records, marks = poll(api, cut, marks)
        taken += [r["event"]["eventId"] for r in records]
    visible = {eid for ts, eid in events if ts <= T0_MS + max(cuts)}
    assert sorted(taken) == sorted(visible)


@settings(max_examples=100, deadline=None)
@given(events=events_strategy.filter(lambda e: len(e) > 3), page_size=st.integers(1, 3), fail_on=st.integers(0, 3))
def test_a_run_that_fails_half_way_keeps_the_cursor_and_the_next_run_takes_the_rest(events, page_size, fail_on):
    """Feature: integrations, Property 5: a failed fetch never moves the cursor past what was stored."""
    events = [(T0_MS + ts, eid) for ts, eid in events]
    stored: list[str] = []
    marks: dict[str, str] = {}
    failing = ScriptedLogs(events, page_size, 1, fail_on_page=fail_on)

    async def go() -> None:
        async for page in log_pages(window(failing, 100), "log_events", {}):
            stored.extend(r["event"]["eventId"] for r in page.records)  # stored with its page
            marks.update(page.watermarks)

    try:
        asyncio.run(go())
    except ConnectionError:
        pass
    records, marks = poll(ScriptedLogs(events, page_size, 2), 100, marks)
    assert {r["event"]["eventId"] for r in records} | set(stored) == {eid for _, eid in events}



def test_a_backfill_reads_again_from_since_and_never_moves_a_cursor_back():
    events = [(T0_MS + ts, f"e{ts}") for ts in (1, 5, 9)]
    _, marks = poll(ScriptedLogs(events, 2, 0), 10, {})
    again, after = poll(ScriptedLogs(events, 2, 0), 6, marks, backfill=True)  # `integrations run --since`
    assert sorted(r["event"]["eventId"] for r in again) == ["e1", "e5"]
    assert after == marks


def test_a_cursor_remembers_what_it_took_at_its_last_millisecond():
    cursor = advance(None, [(5, "a"), (7, "b"), (7, "c"), (6, "d")])
    assert cursor == Cursor(7, frozenset({"b", "c"}))
    assert not cursor.admits(7, "b") and cursor.admits(7, "e") and cursor.admits(8, "b") and not cursor.admits(6, "x")
    assert Cursor.parse(cursor.to_text()) == cursor
    assert cursor.to_text() == '{"at":"1970-01-01T00:00:00.007Z","seen":["b","c"]}'
    with pytest.raises(PluginError, match="watermark 'log_group:x' is unreadable"):
        Cursor.parse("{not json", key="log_group:x")


class ScriptedMetrics:
    def __init__(self, results: list[dict]):
        self.results = results
        self.calls: list[dict] = []

    async def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        assert (service, operation) == ("cloudwatch", "get_metric_data")
        self.calls.append(params)
        out = []
        for result in self.results:
            pairs = [(ts, v) for ts, v in zip(result["Timestamps"], result["Values"])
                     if params["StartTime"] <= ts < params["EndTime"]]
            out.append({"Id": result["Id"], "Label": result["Id"], "StatusCode": "Complete",
                        "Timestamps": [ts for ts, _ in pairs], "Values": [v for _, v in pairs]})
        return {"MetricDataResults": out}


def test_metric_datapoints_are_taken_once_their_period_is_over_and_never_twice():
    minute = [T0 + timedelta(minutes=i) for i in range(5)]
    api = ScriptedMetrics([{"Id": "errors", "Timestamps": minute, "Values": [0.0, 1.0, 2.0, 3.0, 4.0]}])
    queries = [{"id": "errors", "namespace": "AWS/Lambda", "metric": "Errors", "stat": "Sum", "period": 60}]
    # at 12:04:30 with 60 s to settle, only the periods that ended by 12:03:30 are complete: 12:00-12:02
    records, marks = poll(api, 270_000, {}, "metric_data", metric_pages, metric_queries=queries)
    (record,) = records
    assert record["result"]["Timestamps"] == ["2024-05-01T12:00:00+00:00", "2024-05-01T12:01:00+00:00",
                                              "2024-05-01T12:02:00+00:00"]
    assert record["query"] == {"id": "errors", "namespace": "AWS/Lambda", "metric_name": "Errors",
                               "dimensions": [], "stat": "Sum", "period": 60}
    assert marks == {"metric:errors": '{"at":"2024-05-01T12:02:00.000Z","seen":[""]}'}
    records, marks2 = poll(api, 400_000, marks, "metric_data", metric_pages, metric_queries=queries)
    assert [r["result"]["Values"] for r in records] == [[3.0, 4.0]]
    assert api.calls[1]["StartTime"] == T0 + timedelta(minutes=2)  # asked again from the cursor, inclusive
    records, _ = poll(api, 400_000, marks2, "metric_data", metric_pages, metric_queries=queries)
    assert records == []


class ScriptedAlarms:
    def __init__(self, history: list[dict]):
        self.history = history
        self.tag_calls = 0

    async def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        if operation == "describe_alarms":
            return {"MetricAlarms": [{"AlarmName": "checkout-5xx", "AlarmArn": "arn:aws:cloudwatch:us-east-1:"
                                      "123456789012:alarm:checkout-5xx", "StateUpdatedTimestamp": T0}],
                    "CompositeAlarms": []}
        if operation == "list_tags_for_resource":
            self.tag_calls += 1
            return {"Tags": [{"Key": "severity", "Value": "critical"}]}
        assert operation == "describe_alarm_history" and params["ScanBy"] == "TimestampAscending"
        items = [i for i in self.history if params["StartDate"] <= i["Timestamp"] <= params["EndDate"]]
        start = int(params.get("NextToken", 0))
        reply: dict[str, Any] = {"AlarmHistoryItems": items[start:start + 1]}
        if start + 1 < len(items):
            reply["NextToken"] = str(start + 1)
        return reply


def test_alarm_history_moves_each_alarms_cursor_page_by_page_and_tags_the_alarm_once():
    history = [{"AlarmName": "checkout-5xx", "AlarmType": "MetricAlarm", "HistoryItemType": "StateUpdate",
                "Timestamp": T0 + timedelta(seconds=s), "HistorySummary": f"Alarm updated from OK to {to}",
                "HistoryData": "{}"} for s, to in ((1, "ALARM"), (2, "OK"), (2, "ALARM"))]
    api = ScriptedAlarms(history)
    records, marks = poll(api, 10_000, {}, "alarm_history", alarm_history_pages)
    assert [r["item"]["HistorySummary"][-5:] for r in records] == ["ALARM", "to OK", "ALARM"]
    assert records[0]["item"]["Timestamp"] == "2024-05-01T12:00:01+00:00"
    assert records[0]["alarm"]["Tags"] == [{"Key": "severity", "Value": "critical"}]
    assert records[0]["alarm"]["StateUpdatedTimestamp"] == "2024-05-01T12:00:00+00:00"
    assert api.tag_calls == 1
    assert set(marks) == {"alarm:checkout-5xx"}
    again, _ = poll(api, 20_000, marks, "alarm_history", alarm_history_pages)
    assert again == [] and api.tag_calls == 1  # nothing new: the tags are not even asked for
