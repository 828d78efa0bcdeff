"""Fixtures for the webhook receiver: a real uvicorn server on 127.0.0.1, started once per module."""

from __future__ import annotations

import secrets
import sqlite3
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import uvicorn

from integrations.webhooks import Inbox, create_app, signature_for

PUSH_PAYLOAD = Path(__file__).with_name("push_payload.json")
TEST_MAX_BODY_BYTES = 64 * 1024


@dataclass
class LiveReceiver:
    """A running receiver: its base URL, inbox file and the tenants' secrets (made at test time)."""

    url: str
    inbox_path: Path
    secrets: dict[str, bytes]
    max_body_bytes: int

    def path(self, tenant: str) -> str:
        return f"/webhooks/github/{tenant}"

    def headers(self, tenant: str, body: bytes, *, event: str = "push", delivery: str | None = None,
                content_type: str = "application/json", secret: bytes | None = None) -> dict[str, str]:
        """The headers GitHub sends with `body`, signed with the tenant's secret (or `secret`)."""
        return {
            "Content-Type": content_type,
            "User-Agent": "GitHub-Hookshot/044aadd",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "292430182",
            "X-GitHub-Hook-Installation-Target-ID": "186853002",
            "X-GitHub-Hook-Installation-Target-Type": "repository",
            "X-Hub-Signature-256": signature_for(secret or self.secrets[tenant], body),
        }


def backdate_drained(path: Path, days: float) -> None:
    """Make every drained delivery of the file look drained `days` ago."""
    when = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat(timespec="microseconds")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE deliveries SET drained_at = ? WHERE drained_at IS NOT NULL", (when,))


@pytest.fixture(scope="session")
def push_body() -> bytes:
    """A push delivery's body in GitHub's documented shape, as GitHub sends it (UTF-8 JSON)."""
    return PUSH_PAYLOAD.read_bytes()


@pytest.fixture(scope="module")
def tenant_secrets() -> dict[str, bytes]:
    return {name: secrets.token_hex(20).encode() for name in ("acme", "globex", "load", "samples")}


def start_server(app, host: str = "127.0.0.1") -> tuple[uvicorn.Server, threading.Thread, str]:
    """Serve `app` under uvicorn in a thread on a free port; returns once it accepts connections."""
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on connections of a socket whose proto
    # says TCP, and without it every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test receiver did not start")
        time.sleep(0.01)
    return server, thread, f"http://{host}:{port}"


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory, tenant_secrets: dict[str, bytes]):
    inbox_path = tmp_path_factory.mktemp("webhooks") / "inbox" / "github.sqlite"
    inbox = Inbox(inbox_path)
    app = create_app(inbox, tenant_secrets.get, max_body_bytes=TEST_MAX_BODY_BYTES)
    server, thread, url = start_server(app)
    try:
        yield LiveReceiver(url=url, inbox_path=inbox_path, secrets=tenant_secrets,
                           max_body_bytes=TEST_MAX_BODY_BYTES)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        inbox.close()


@pytest.fixture
def serve():
    """Start extra apps under uvicorn for one test: `url = serve(app)`; all stopped afterwards."""
    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app) -> str:
        server, thread, url = start_server(app)
        started.append((server, thread))
        return url

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=10)
