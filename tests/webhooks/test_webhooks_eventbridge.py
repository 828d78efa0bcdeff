"""AWS EventBridge deliveries (API destinations) at POST /webhooks/cloudwatch/{tenant}.

A real uvicorn server on 127.0.0.1; the bodies are AWS's documented events (the golden examples
under mappings/cloudwatch/examples); API keys are made at test time. The last test runs the real
runner over what the receiver stored.
"""

from __future__ import annotations

import copy
import json
import secrets
from pathlib import Path

import httpx
import pytest

from integrations.errors import RecordError
from integrations.mapping import PythonEngine, load_mapping
from integrations.store import EventStore
from integrations.webhooks import Inbox, cloudwatch_source, create_app, inbox_path_for
from integrations.webhooks._eventbridge import delivery_id
from runner import RunOptions, run
from tests.webhooks.conftest import backdate_drained, start_server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "mappings" / "cloudwatch" / "examples"


def _example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.input.json").read_text(encoding="utf-8"))


# Every documented event AWS pushes that the receiver takes, with the source that maps it.
PUSHED = {
    "alarm_state_change/single_metric_alarm": "alarm_state_change",
    "alarm_state_change/metric_math_alarm": "alarm_state_change",
    "alarm_state_change/anomaly_detection_alarm": "alarm_state_change",
    "alarm_state_change/composite_alarm_with_suppressor": "alarm_state_change",
    "alarm_state_change/lambda_alarm_action_repaired_times": "alarm_state_change",
    "cloudtrail/eventbridge_put_object": "cloudtrail",
}
ALARM = _example("alarm_state_change/single_metric_alarm")


@pytest.mark.parametrize(("name", "source"), sorted(PUSHED.items()))
def test_each_documented_event_is_filed_under_the_source_whose_mapping_reads_it(name: str, source: str):
    payload = _example(name)
    assert cloudwatch_source(payload) == source
    mapping = load_mapping(ROOT / "mappings" / "cloudwatch" / f"{source}.yaml")
    result = PythonEngine().map(mapping, [payload], tenant_id="acme")
    assert result.mapped == 1 and result.events, [r.reason for r in result.rejections]


def test_a_console_sign_in_event_goes_to_cloudtrail():
    event = dict(_example("cloudtrail/eventbridge_put_object"), **{"detail-type": "AWS Console Sign In via CloudTrail"})
    assert cloudwatch_source(event) == "cloudtrail"


@pytest.mark.parametrize("detail_type", ["EC2 Instance State-change Notification", None, 7])
def test_an_event_no_source_reads_is_an_error_that_names_its_detail_type(detail_type):
    event = {"id": "x", "detail-type": detail_type, "source": "aws.ec2", "detail": {}}
    with pytest.raises(RecordError) as caught:
        cloudwatch_source(event)
    assert caught.value.field == "detail-type"
    assert (repr(detail_type) if detail_type is not None else "none") in caught.value.message


def test_the_delivery_id_is_the_event_id_and_else_the_body_hash():
    body = json.dumps(ALARM).encode()
    assert delivery_id(ALARM, body) == ALARM["id"]
    lambda_event = _example("alarm_state_change/lambda_alarm_action_repaired_times")
    raw = json.dumps(lambda_event).encode()
    assert delivery_id(lambda_event, raw).startswith("sha256:")
    assert delivery_id(lambda_event, raw) == delivery_id(lambda_event, raw)


# -- the live receiver ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[str, bytes]:
    return {name: secrets.token_urlsafe(32).encode() for name in ("acme", "globex")}


@pytest.fixture(scope="module")
def aws_receiver(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, bytes]):
    folder = tmp_path_factory.mktemp("eventbridge") / "inbox"
    github_secrets = {"acme": secrets.token_hex(20).encode()}
    inbox, aws_inbox = Inbox(folder / "github.sqlite"), Inbox(inbox_path_for("cloudwatch", folder / "github.sqlite"))
    app = create_app(inbox, github_secrets.get, aws_inbox=aws_inbox, aws_secret_lookup=keys.get)
    server, thread, url = start_server(app)
    try:
        yield url, aws_inbox, github_secrets
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        inbox.close()
        aws_inbox.close()


def _post(url: str, tenant: str, event: dict | bytes, key: bytes | None) -> httpx.Response:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Amazon/EventBridge/ApiDestinations"}
    if key is not None:
        headers["x-api-key"] = key.decode()
    return httpx.post(f"{url}/webhooks/cloudwatch/{tenant}", content=body, headers=headers)


def _event(**changes) -> dict:
    event = copy.deepcopy(ALARM)
    event["id"] = secrets.token_hex(16)
    event.update(changes)
    return event


def test_an_event_with_the_tenants_key_is_accepted_and_filed_under_its_source(aws_receiver, keys):
    url, inbox, _ = aws_receiver
    event = _event()
    answer = _post(url, "acme", event, keys["acme"])
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"status": "accepted", "delivery": event["id"]}
    stored = [d for d in inbox.pending("acme", 1000, event_name="alarm_state_change") if d.delivery_id == event["id"]]
    assert [d.payload for d in stored] == [event]
    assert "x-api-key" not in {k.lower() for k in stored[0].headers}  # the key is never stored


def test_a_retried_event_is_answered_duplicate_and_stored_once(aws_receiver, keys):
    url, inbox, _ = aws_receiver
    event = _event()
    assert _post(url, "acme", event, keys["acme"]).status_code == 202
    again = _post(url, "acme", event, keys["acme"])
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert sum(d.delivery_id == event["id"] for d in inbox.pending("acme", 1000)) == 1


@pytest.mark.parametrize("case", ["missing", "wrong", "other_tenants", "github_secret"])
def test_a_missing_or_wrong_key_is_401_and_nothing_is_stored(aws_receiver, keys, case):
    url, inbox, github_secrets = aws_receiver
    key = {"missing": None, "wrong": secrets.token_urlsafe(32).encode(), "other_tenants": keys["globex"],
           "github_secret": github_secrets["acme"]}[case]
    event = _event()
    answer = _post(url, "acme", event, key)
    assert answer.status_code == 401
    assert keys["acme"].decode() not in answer.text
    assert all(d.delivery_id != event["id"] for d in inbox.pending("acme", 1000))


def test_a_tenant_without_a_key_is_404(aws_receiver, keys):
    url, _, _ = aws_receiver
    assert _post(url, "initech", _event(), keys["acme"]).status_code == 404


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b""])
def test_a_body_that_is_not_a_json_object_is_400(aws_receiver, keys, body):
    url, _, _ = aws_receiver
    assert _post(url, "acme", body, keys["acme"]).status_code == 400


def test_an_event_no_source_reads_is_400_with_the_reason_for_the_rules_dead_letter_queue(aws_receiver, keys):
    url, inbox, _ = aws_receiver
    event = _event(**{"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2"})
    answer = _post(url, "acme", event, keys["acme"])
    assert answer.status_code == 400
    assert "EC2 Instance State-change Notification" in answer.json()["error"]
    assert answer.json()["field"] == "detail-type" and "CloudWatch Alarm State Change" in answer.json()["hint"]
    assert all(d.delivery_id != event["id"] for d in inbox.pending("acme", 1000))


def test_the_same_event_for_two_tenants_is_two_deliveries(aws_receiver, keys):
    url, inbox, _ = aws_receiver
    event = _event()
    assert _post(url, "acme", event, keys["acme"]).status_code == 202
    assert _post(url, "globex", event, keys["globex"]).status_code == 202
    for tenant in ("acme", "globex"):
        assert sum(d.delivery_id == event["id"] for d in inbox.pending(tenant, 1000)) == 1


def test_without_an_aws_inbox_the_path_is_not_found(serve, tmp_path: Path):
    inbox = Inbox(tmp_path / "github.sqlite")
    try:
        url = serve(create_app(inbox, {"acme": b"s" * 20}.get))
        assert _post(url, "acme", _event(), b"s" * 20).status_code == 404
    finally:
        inbox.close()


# -- into the store --------------------------------------------------------------------------------


def test_the_runner_drains_the_tenants_eventbridge_deliveries_into_its_events(tmp_path: Path, serve):
    """Receiver and runner as deployed: EventBridge POSTs, `integrations run` maps what was stored."""
    keys = {"acme": secrets.token_urlsafe(32).encode(), "globex": secrets.token_urlsafe(32).encode()}
    github_inbox = tmp_path / "inbox" / "github.sqlite"
    inbox, aws_inbox = Inbox(github_inbox), Inbox(inbox_path_for("cloudwatch", github_inbox))
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    for tenant in keys:
        (tenants / f"{tenant}.yaml").write_text(
            f"tenant: {tenant}\nintegrations:\n  cloudwatch:\n    settings: {{region: us-east-1}}\n    sources:\n"
            "      - {name: alarm_state_change, mode: webhook}\n      - {name: cloudtrail, mode: webhook}\n",
            encoding="utf-8")
    try:
        url = serve(create_app(inbox, {}.get, aws_inbox=aws_inbox, aws_secret_lookup=keys.get))
        for name in PUSHED:
            assert _post(url, "acme", _example(name), keys["acme"]).status_code == 202
    finally:
        inbox.close()
        aws_inbox.close()

    store_path = tmp_path / "events.duckdb"
    report = run(RunOptions(store_path=store_path, tenants=["acme", "globex"], tenants_dir=tenants,
                            inbox=github_inbox))
    by_source = {(s.tenant_id, s.source): s for s in report.sources}
    assert by_source[("acme", "alarm_state_change")].mapped == 5
    assert by_source[("acme", "cloudtrail")].mapped == 1
    assert by_source[("globex", "alarm_state_change")].read == 0  # another tenant's deliveries stay its own
    with EventStore(store_path).reader() as conn:
        kinds = conn.execute("SELECT tenant_id, kind, count(*) FROM events GROUP BY ALL ORDER BY ALL").fetchall()
    assert kinds == [("acme", "alarm", 5), ("acme", "audit", 1)]
    with Inbox(inbox_path_for("cloudwatch", github_inbox)) as drained:
        assert drained.counts("acme") == {"pending": 0, "drained": 6}
    again = run(RunOptions(store_path=store_path, tenants=["acme"], tenants_dir=tenants, inbox=github_inbox))
    assert sum(s.read for s in again.sources) == 0

    # A week later the runner prunes what it drained; the inbox does not grow forever.
    backdate_drained(inbox_path_for("cloudwatch", github_inbox), 8)
    run(RunOptions(store_path=store_path, tenants=["acme"], tenants_dir=tenants, inbox=github_inbox))
    with Inbox(inbox_path_for("cloudwatch", github_inbox)) as pruned:
        assert pruned.counts("acme") == {"pending": 0, "drained": 0}
