"""The receiver as a real server on 127.0.0.1, driven by httpx."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import sqlite3
import uuid
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from integrations.webhooks import Inbox, inbox_reader, signature_for


@pytest.fixture(scope="module")
def client(receiver):
    with httpx.Client(base_url=receiver.url, timeout=10) as c:
        yield c


def stored_rows(receiver, tenant: str, delivery_id: str | None = None) -> list[sqlite3.Row]:
    """Rows read through a separate, fresh SQLite connection (not the server's)."""
    conn = sqlite3.connect(receiver.inbox_path)
    conn.row_factory = sqlite3.Row
    try:
        sql, args = "SELECT * FROM deliveries WHERE tenant_id = ?", [tenant]
        if delivery_id is not None:
            sql += " AND delivery_id = ?"
            args.append(delivery_id)
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


# -- signatures ------------------------------------------------------------------------------


def test_a_well_signed_delivery_is_accepted_and_stored(receiver, client, push_body):
    headers = receiver.headers("acme", push_body)
    delivery = headers["X-GitHub-Delivery"]
    answer = client.post(receiver.path("acme"), content=push_body, headers=headers)
    assert answer.status_code == 202
    assert answer.json() == {"status": "accepted", "delivery": delivery}

    [row] = stored_rows(receiver, "acme", delivery)
    assert row["event_name"] == "push"
    assert bytes(row["body"]) == push_body  # the raw body, byte for byte
    assert row["hook_id"] == "292430182"
    assert row["installation_target"] == "repository:186853002"
    assert row["drained_at"] is None
    kept = json.loads(row["headers"])
    assert kept["X-GitHub-Delivery"] == delivery
    assert kept["User-Agent"].startswith("GitHub-Hookshot/")
    assert not any("signature" in name.lower() for name in kept)
    assert headers["X-Hub-Signature-256"] not in row["headers"]


def test_the_delivery_is_on_disk_before_the_answer_arrives(receiver, client, push_body):
    """Durability: as soon as the 2xx is read, a fresh connection and a fresh Inbox both see it."""
    headers = receiver.headers("acme", push_body)
    delivery = headers["X-GitHub-Delivery"]
    assert client.post(receiver.path("acme"), content=push_body, headers=headers).status_code == 202
    assert len(stored_rows(receiver, "acme", delivery)) == 1
    with Inbox(receiver.inbox_path) as fresh:
        found = {d.delivery_id: d for d in fresh.pending("acme", limit=10_000)}
    assert found[delivery].payload == json.loads(push_body)
    assert found[delivery].event_name == "push"


@pytest.mark.parametrize("case", ["other tenant's secret", "tampered body", "garbage", "sha1 header only"])
def test_a_wrong_signature_is_401_and_nothing_is_stored(receiver, client, push_body, case):
    headers = receiver.headers("acme", push_body)
    if case == "other tenant's secret":
        headers["X-Hub-Signature-256"] = signature_for(receiver.secrets["globex"], push_body)
    elif case == "tampered body":
        headers["X-Hub-Signature-256"] = signature_for(receiver.secrets["acme"], push_body + b" ")
    elif case == "garbage":
        headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    else:
        del headers["X-Hub-Signature-256"]
        headers["X-Hub-Signature"] = "sha1=0123456789abcdef0123456789abcdef01234567"
    answer = client.post(receiver.path("acme"), content=push_body, headers=headers)
    assert answer.status_code == 401
    assert answer.json() == {"error": "X-Hub-Signature-256 missing or wrong"}
    assert receiver.secrets["acme"].decode() not in answer.text
    assert stored_rows(receiver, "acme", headers["X-GitHub-Delivery"]) == []


def test_a_missing_signature_is_401(receiver, client, push_body):
    headers = receiver.headers("acme", push_body)
    del headers["X-Hub-Signature-256"]
    answer = client.post(receiver.path("acme"), content=push_body, headers=headers)
    assert answer.status_code == 401
    assert stored_rows(receiver, "acme", headers["X-GitHub-Delivery"]) == []


@pytest.mark.parametrize("tenant", ["initech", "no%20such", "..%2Fetc", "ACME", "a" * 300])
def test_an_unknown_tenant_is_404_with_nothing_revealed(receiver, client, push_body, tenant):
    headers = receiver.headers("acme", push_body)  # a valid signature for *another* tenant
    answer = client.post(f"/webhooks/github/{tenant}", content=push_body, headers=headers)
    assert answer.status_code == 404
    assert answer.json() == {"error": "not found"}
    assert stored_rows(receiver, "acme", headers["X-GitHub-Delivery"]) == []


# -- de-duplication --------------------------------------------------------------------------


def test_a_replayed_delivery_is_answered_duplicate_and_stored_once(receiver, client, push_body):
    headers = receiver.headers("acme", push_body)
    first = client.post(receiver.path("acme"), content=push_body, headers=headers)
    again = client.post(receiver.path("acme"), content=push_body, headers=headers)
    assert (first.status_code, first.json()["status"]) == (202, "accepted")
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert len(stored_rows(receiver, "acme", headers["X-GitHub-Delivery"])) == 1


def test_the_same_delivery_id_for_two_tenants_is_two_deliveries(receiver, client, push_body):
    delivery = str(uuid.uuid4())
    for tenant in ("acme", "globex"):
        answer = client.post(receiver.path(tenant), content=push_body,
                             headers=receiver.headers(tenant, push_body, delivery=delivery))
        assert answer.status_code == 202
        assert len(stored_rows(receiver, tenant, delivery)) == 1


# -- bodies ----------------------------------------------------------------------------------


def test_an_oversized_body_is_413_and_nothing_is_stored(receiver, client):
    body = json.dumps({"zen": "x" * (receiver.max_body_bytes + 10_000)}).encode()
    headers = receiver.headers("acme", body)
    answer = client.post(receiver.path("acme"), content=body, headers=headers)
    assert answer.status_code == 413
    assert answer.json()["limit_bytes"] == receiver.max_body_bytes
    assert stored_rows(receiver, "acme", headers["X-GitHub-Delivery"]) == []


def test_an_oversized_streamed_body_is_cut_off_while_it_streams(receiver):
    """No Content-Length (chunked): the limit is enforced on the bytes as they arrive."""
    chunk = b"x" * 8192
    chunks = receiver.max_body_bytes // len(chunk) + 4

    async def body():
        for _ in range(chunks):
            yield chunk

    async def send() -> httpx.Response:
        headers = receiver.headers("acme", chunk * chunks)
        async with httpx.AsyncClient(base_url=receiver.url, timeout=10) as c:
            return await c.post(receiver.path("acme"), content=body(), headers=headers), headers

    answer, headers = asyncio.run(send())
    assert answer.status_code == 413
    assert stored_rows(receiver, "acme", headers["X-GitHub-Delivery"]) == []


def test_a_huge_declared_length_is_refused_before_the_body_is_read(receiver):
    """A raw request announcing 1 GB and sending none of it still gets its 413 at once."""
    host, port = urlsplit(receiver.url).hostname, urlsplit(receiver.url).port
    request = (f"POST /webhooks/github/acme HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {10**9}\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: {uuid.uuid4()}\r\n\r\n")
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(request.encode())
        reply = sock.recv(4096).decode("latin-1")
    assert reply.startswith("HTTP/1.1 413")


@pytest.mark.parametrize("body", [b'{"ref": "refs/heads/main",', b"not json at all", b"\xff\xfe{}", b"[1, 2, 3]", b""])
def test_a_body_that_is_not_a_json_object_is_400_and_nothing_is_stored(receiver, client, body):
    headers = receiver.headers("acme", body)
    answer = client.post(receiver.path("acme"), content=body, headers=headers)
    assert answer.status_code == 400
    assert "JSON" in answer.json()["error"]
    assert stored_rows(receiver, "acme", headers["X-GitHub-Delivery"]) == []


def test_a_form_encoded_delivery_is_accepted_and_signed_over_the_raw_body(receiver, client, push_body):
    raw = urlencode({"payload": push_body.decode("utf-8")}).encode()
    headers = receiver.headers("acme", raw, content_type="application/x-www-form-urlencoded")
    answer = client.post(receiver.path("acme"), content=raw, headers=headers)
    assert answer.status_code == 202
    [row] = stored_rows(receiver, "acme", headers["X-GitHub-Delivery"])
    assert bytes(row["body"]) == raw
    with Inbox(receiver.inbox_path) as fresh:
        [found] = [d for d in fresh.pending("acme", 10_000) if d.delivery_id == headers["X-GitHub-Delivery"]]
    assert found.payload == json.loads(push_body)

    # signed over the decoded JSON instead of the raw form body: refused
    forged = receiver.headers("acme", push_body, content_type="application/x-www-form-urlencoded")
    assert client.post(receiver.path("acme"), content=raw, headers=forged).status_code == 401


def test_a_form_without_a_payload_field_is_400(receiver, client):
    raw = b"other=1"
    headers = receiver.headers("acme", raw, content_type="application/x-www-form-urlencoded")
    answer = client.post(receiver.path("acme"), content=raw, headers=headers)
    assert answer.status_code == 400
    assert stored_rows(receiver, "acme", headers["X-GitHub-Delivery"]) == []


@pytest.mark.parametrize("missing", ["X-GitHub-Delivery", "X-GitHub-Event"])
def test_a_delivery_without_its_github_headers_is_400(receiver, client, push_body, missing):
    headers = receiver.headers("acme", push_body)
    delivery = headers["X-GitHub-Delivery"]
    del headers[missing]
    answer = client.post(receiver.path("acme"), content=push_body, headers=headers)
    assert answer.status_code == 400
    assert missing in answer.json()["error"]
    assert stored_rows(receiver, "acme", delivery) == []


# -- ping, health, methods -------------------------------------------------------------------


def test_ping_is_answered_pong_and_not_stored(receiver, client):
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 292430182}).encode()
    headers = receiver.headers("acme", body, event="ping")
    answer = client.post(receiver.path("acme"), content=body, headers=headers)
    assert answer.status_code == 200
    assert answer.json() == {"status": "pong"}
    assert stored_rows(receiver, "acme", headers["X-GitHub-Delivery"]) == []


def test_an_unsigned_ping_is_401(receiver, client):
    body = b'{"zen": "x"}'
    headers = receiver.headers("acme", body, event="ping", secret=b"not-the-secret")
    assert client.post(receiver.path("acme"), content=body, headers=headers).status_code == 401


def test_healthz_reports_the_inbox(receiver, client):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "inbox": "ok"}


def test_only_post_is_allowed_on_the_webhook_path(receiver, client):
    assert client.get(receiver.path("acme")).status_code == 405


# -- the bundled samples, through the receiver and back out of the inbox -------------------------

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def test_every_bundled_github_sample_goes_through_the_receiver_unchanged(receiver, client):
    """Each sample body is POSTed as GitHub would; the run loop's reader hands back the same payloads."""
    files = sorted(SAMPLES.glob("*/github/*.jsonl"))
    if not files:
        pytest.skip("no GitHub samples under data/samples")
    sent: dict[str, list[dict]] = {}
    for path in files:
        event = path.stem  # a webhook source is named after its X-GitHub-Event
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            body = line.encode("utf-8")
            answer = client.post(receiver.path("samples"), content=body,
                                 headers=receiver.headers("samples", body, event=event))
            assert answer.status_code == 202, (path, answer.text)
            sent.setdefault(event, []).append(json.loads(line))
    with Inbox(receiver.inbox_path) as inbox:
        read = inbox_reader(inbox)
        for event, payloads in sent.items():
            got, acknowledge = read("samples", "github", event)
            assert got == payloads
            acknowledge()
        assert inbox.counts("samples") == {"pending": 0, "drained": sum(map(len, sent.values()))}


# -- load ------------------------------------------------------------------------------------


def test_concurrent_deliveries_are_neither_lost_nor_duplicated(receiver, push_body):
    """250 deliveries at once (200 distinct ids, 50 of them sent twice): the inbox holds each id once."""
    distinct = [str(uuid.uuid4()) for _ in range(200)]
    resent = random.Random(7).sample(distinct, 50)
    sends = distinct + resent
    random.Random(11).shuffle(sends)

    async def deliver_all() -> list[tuple[str, httpx.Response]]:
        # Several clients, each with its own connections: every delivery is on the wire at once, as
        # GitHub's are (one httpx pool with hundreds of connections is itself the bottleneck).
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(httpx.AsyncClient(base_url=receiver.url, timeout=60))
                       for _ in range(25)]

            async def one(i: int, delivery: str) -> tuple[str, httpx.Response]:
                body = json.dumps({**json.loads(push_body), "after": delivery}).encode()
                headers = receiver.headers("load", body, delivery=delivery)
                return delivery, await clients[i % len(clients)].post(receiver.path("load"), content=body,
                                                                      headers=headers)
            return await asyncio.gather(*(one(i, d) for i, d in enumerate(sends)))

    results = asyncio.run(deliver_all())

    assert all(r.status_code in (200, 202) for _d, r in results), {r.status_code for _d, r in results}
    accepted = [d for d, r in results if r.status_code == 202]
    duplicates = [d for d, r in results if r.status_code == 200]
    assert sorted(accepted) == sorted(distinct)  # each id accepted exactly once
    assert sorted(duplicates) == sorted(resent)
    assert all(r.json()["status"] == "duplicate" for _d, r in results if r.status_code == 200)

    rows = stored_rows(receiver, "load")
    assert len(rows) == len(distinct)
    assert {row["delivery_id"] for row in rows} == set(distinct)
    for row in rows:  # each stored body is the one sent with its id
        assert json.loads(bytes(row["body"]))["after"] == row["delivery_id"]
