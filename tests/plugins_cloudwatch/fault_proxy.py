"""A small HTTP proxy in front of moto's server: faults on demand, and the one API moto lacks.

    proxy = FaultProxy(upstream=moto_url)          # a starlette app; serve it with uvicorn
    proxy.fail("FilterLogEvents", "throttle", times=2)
    proxy.fail("GetMetricData", "5xx")
    proxy.count("FilterLogEvents")                 # requests that reached the proxy

Everything else is forwarded to moto unchanged (httpx). The proxy reads what botocore sends: the
service from the SigV4 credential scope (`.../monitoring/aws4_request`), the operation from
`X-Amz-Target` (JSON protocols: logs, and cloudwatch, which botocore 1.44 calls with JSON 1.0 in
"query mode") or the `Action` form field (query protocol: sts). Errors are written in the shape
each protocol uses, so botocore raises the `ClientError` AWS would cause:

    JSON      HTTP 400 {"__type": "ThrottlingException", "message": ...}; cloudwatch (query
              compatible) adds `x-amzn-query-error: Throttling;Sender`, the code botocore reports
    query     HTTP 400 <ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>...

moto has no DescribeAlarmHistory, so the proxy keeps the history itself: it watches PutMetricAlarm
and SetAlarmState pass through to moto and answers DescribeAlarmHistory in the documented response
shape (AlarmHistoryItems of AlarmName, AlarmType, Timestamp, HistoryItemType, HistorySummary and
HistoryData, the JSON string `{"version": "1.0", "oldState": {...}, "newState": {...}}`), filtered by
AlarmName, HistoryItemType, StartDate and EndDate, ordered by ScanBy, paged by MaxRecords/NextToken.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import parse_qs

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/[^/]+/([^/]+)/aws4_request")
_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "content-encoding", "keep-alive"}

# fault kind -> (HTTP status, JSON __type, query-protocol code, message)
FAULTS = {
    "throttle": (400, "ThrottlingException", "Throttling", "Rate exceeded"),
    "limit_exceeded": (400, "LimitExceededException", "LimitExceeded", "Resource limit exceeded."),
    "5xx": (503, "ServiceUnavailableException", "ServiceUnavailable", "Service Unavailable"),
    "access_denied": (400, "AccessDeniedException", "AccessDenied",
                      "User: arn:aws:iam::123456789012:user/poller is not authorized to perform this action"),
    "expired_token": (400, "ExpiredTokenException", "ExpiredToken",
                      "The security token included in the request is expired"),
}


@dataclass
class _Fault:
    operation: str
    kind: str
    times: int  # -1: every time


@dataclass
class _Alarm:
    alarm_type: str = "MetricAlarm"
    state: str = "INSUFFICIENT_DATA"
    reason: str = "Unchecked: Initial alarm creation"
    history: list[dict] = field(default_factory=list)


class FaultProxy:
    """Forwards to `upstream`, failing the operations it is told to, and plays DescribeAlarmHistory."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.lock = threading.Lock()
        self.faults: list[_Fault] = []
        self.seen: list[tuple[str, str]] = []     # (service, operation) of every request
        self.signers: list[tuple[str, str]] = []  # (operation, access key id it was signed with)
        self.alarms: dict[str, _Alarm] = {}
        self.clock = lambda: datetime.now(timezone.utc)
        self._client: httpx.AsyncClient | None = None
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT", "DELETE"])])

    # -- what tests call ---------------------------------------------------------------------

    def fail(self, operation: str, kind: str, times: int = 1) -> None:
        """Answer the next `times` calls of `operation` (every call: -1) with the fault `kind`."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; faults: {', '.join(FAULTS)}")
        with self.lock:
            self.faults.append(_Fault(operation, kind, times))

    def count(self, operation: str) -> int:
        with self.lock:
            return sum(1 for _, op in self.seen if op == operation)

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.seen.clear()
            self.signers.clear()
            self.alarms.clear()

    # -- the HTTP side -----------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        signer, service = _scope(request.headers.get("authorization", ""))
        operation, params, protocol = _operation(request.headers, body)
        with self.lock:
            self.seen.append((service, operation))
            self.signers.append((operation, signer))
            fault = self._take_fault(operation)
        if fault is not None:
            return _error(service, protocol, fault)
        if service == "monitoring" and operation == "DescribeAlarmHistory":
            if protocol != "json":
                return Response(f"the fault proxy answers DescribeAlarmHistory in the JSON protocol only, "
                                f"botocore sent {protocol}", status_code=501)
            return self._history(params)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        if self._client is None:  # made on the server's own event loop, once (making one costs ~0.1 s)
            self._client = httpx.AsyncClient(timeout=30)
        upstream = await self._client.request(request.method, self.upstream + request.url.path,
                                              params=request.query_params, headers=headers, content=body)
        if service == "monitoring" and upstream.status_code == 200:
            self._watch_alarms(operation, params)
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
        return Response(upstream.content, status_code=upstream.status_code, headers=out_headers)

    def _take_fault(self, operation: str) -> str | None:
        for fault in self.faults:
            if fault.operation == operation and fault.times != 0:
                if fault.times > 0:
                    fault.times -= 1
                return fault.kind
        return None

    # -- alarm history -----------------------------------------------------------------------

    def _watch_alarms(self, operation: str, params: dict) -> None:
        now = self.clock()
        with self.lock:
            if operation in ("PutMetricAlarm", "PutCompositeAlarm"):
                name = params["AlarmName"]
                alarm = self.alarms.setdefault(name, _Alarm(
                    alarm_type="CompositeAlarm" if operation == "PutCompositeAlarm" else "MetricAlarm"))
                alarm.history.append(_item(name, alarm.alarm_type, now, "ConfigurationUpdate",
                                           f'Alarm "{name}" created', {"version": "1.0", "type": "Create"}))
            elif operation == "SetAlarmState":
                name = params["AlarmName"]
                alarm = self.alarms.setdefault(name, _Alarm())
                new = {"stateValue": params["StateValue"], "stateReason": params.get("StateReason", "")}
                if params.get("StateReasonData"):
                    new["stateReasonData"] = json.loads(params["StateReasonData"])
                old = {"stateValue": alarm.state, "stateReason": alarm.reason}
                data = {"version": "1.0", "oldState": old, "newState": new}
                alarm.history.append(_item(name, alarm.alarm_type, now, "StateUpdate",
                                           f"Alarm updated from {alarm.state} to {new['stateValue']}", data))
                alarm.state, alarm.reason = new["stateValue"], new["stateReason"]

    def _history(self, params: dict) -> Response:
        with self.lock:
            items = [dict(i) for name, a in self.alarms.items() for i in a.history
                     if params.get("AlarmName") in (None, name)]
        if params.get("HistoryItemType"):
            items = [i for i in items if i["HistoryItemType"] == params["HistoryItemType"]]
        if params.get("StartDate") is not None:
            items = [i for i in items if i["Timestamp"] >= float(params["StartDate"])]
        if params.get("EndDate") is not None:
            items = [i for i in items if i["Timestamp"] <= float(params["EndDate"])]
        newest_first = params.get("ScanBy", "TimestampDescending") != "TimestampAscending"
        items.sort(key=lambda i: i["Timestamp"], reverse=newest_first)
        start = int(params.get("NextToken") or 0)
        size = int(params.get("MaxRecords") or 50)
        page = items[start:start + size]
        body: dict = {"AlarmHistoryItems": page}
        if start + size < len(items):
            body["NextToken"] = str(start + size)
        return Response(json.dumps(body), media_type="application/x-amz-json-1.0",
                        headers={"x-amzn-requestid": str(uuid.uuid4())})


def _item(name: str, alarm_type: str, when: datetime, kind: str, summary: str, data: dict) -> dict:
    return {"AlarmName": name, "AlarmType": alarm_type, "Timestamp": round(when.timestamp(), 3),
            "HistoryItemType": kind, "HistorySummary": summary, "HistoryData": json.dumps(data)}


def _scope(authorization: str) -> tuple[str, str]:
    """(access key id, service) of a SigV4 Authorization header."""
    match = _SCOPE.search(authorization)
    return (match.group(1), match.group(2)) if match else ("", "unknown")


def _operation(headers, body: bytes) -> tuple[str, dict, str]:
    """(operation, parameters, protocol) of a request botocore sent."""
    target = headers.get("x-amz-target")
    if target:
        params = json.loads(body) if body else {}
        return target.rsplit(".", 1)[-1], params, "json"
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        return form.get("Action", "unknown"), form, "query"
    return "unknown", {}, "other"


def _error(service: str, protocol: str, kind: str) -> Response:
    status, json_type, query_code, message = FAULTS[kind]
    request_id = str(uuid.uuid4())
    if protocol == "query":
        xml = (f'<ErrorResponse xmlns="https://{service}.amazonaws.com/doc/"><Error><Type>'
               f'{"Receiver" if status >= 500 else "Sender"}</Type><Code>{query_code}</Code><Message>{message}'
               f"</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>")
        return Response(xml, status_code=status, media_type="text/xml", headers={"x-amzn-requestid": request_id})
    headers = {"x-amzn-requestid": request_id}
    if service == "monitoring":  # awsQueryCompatible: botocore reports the query error code
        headers["x-amzn-query-error"] = f"{query_code};{'Receiver' if status >= 500 else 'Sender'}"
    body = json.dumps({"__type": json_type, "message": message})
    return Response(body, status_code=status, media_type="application/x-amz-json-1.1", headers=headers)
