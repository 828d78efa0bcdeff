"""Fixtures of the health tests: a fake clock, and a real flaky HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from integrations.health import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FlakyScript:
    """Per key: `errors_500` answers of 500, then `errors_429` answers of 429 (Retry-After: 1), then 200."""

    def __init__(self, errors_500: int = 2, errors_429: int = 2) -> None:
        self.errors_500 = errors_500
        self.errors_429 = errors_429
        self.hits: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    async def flaky(self, request: Request):
        key = request.path_params["key"]
        with self.lock:
            self.hits[key] += 1
            n = self.hits[key]
        if n <= self.errors_500:
            return PlainTextResponse("boom", status_code=500)
        if n <= self.errors_500 + self.errors_429:
            return PlainTextResponse("slow down", status_code=429, headers={"Retry-After": "1"})
        return JSONResponse({"key": key, "hits": n})


@pytest.fixture(scope="module")
def flaky_server() -> Iterator[tuple[str, FlakyScript]]:
    """A starlette app under uvicorn in a thread, once per module; yields (base URL, script)."""
    script = FlakyScript()
    app = Starlette(routes=[Route("/flaky/{key}", script.flaky)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="flaky-http-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the flaky test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", script
    finally:
        server.should_exit = True
        thread.join(timeout=5)


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (the port was bound, then released)."""
    return f"http://127.0.0.1:{free_port()}"
