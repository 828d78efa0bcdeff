"""Shared fixtures: the repository's paths, a fresh store file, the CLI, and spec schemas."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "tests" / "data" / "specs"

# Property tests: at least 100 examples, no deadline (CI machines are slow and shared).
settings.register_profile("default", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Commands resolve mappings/ and data/samples/ from the working directory: the repository.

    Nothing a test runs may write into the repository's data/: keys, inboxes and stores go to tmp.
    """
    monkeypatch.chdir(ROOT)
    private = tmp_path_factory.mktemp("private")
    for name in ("INTEGRATIONS_STORE", "INTEGRATIONS_MASTER_KEY", "INTEGRATIONS_MASTER_KEY_OLD", "INTEGRATIONS_ACTOR",
                 "INTEGRATIONS_TENANTS", "INTEGRATIONS_MAPPINGS", "INTEGRATIONS_SAMPLES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INTEGRATIONS_MASTER_KEY_FILE", str(private / "master.key"))
    monkeypatch.setenv("INTEGRATIONS_WEBHOOK_INBOX", str(private / "inbox.sqlite"))


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store.duckdb"


@pytest.fixture
def store(store_path: Path):
    from integrations.store import EventStore

    return EventStore(store_path)


class Cli:
    """Runs `integrations ...` in-process through main(), returning (exit code, stdout, stderr)."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> "CliResult":
        from integrations.cli import main

        code_box: list[int] = []

        def entry() -> None:
            code_box.append(main(list(args)))

        import click

        @click.command(context_settings={"ignore_unknown_options": True})
        def shim() -> None:
            entry()

        result = self.runner.invoke(shim, [], input=input, catch_exceptions=False)
        return CliResult(code_box[0] if code_box else result.exit_code, result.stdout, result.stderr)


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


@pytest.fixture
def cli() -> Cli:
    return Cli()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def cloudevents_validator():
    from jsonschema import Draft7Validator

    return Draft7Validator(json.loads((SPECS / "cloudevents" / "cloudevents.json").read_text()))


class ScriptedServer:
    """A real HTTP server on 127.0.0.1 whose answers tests script per path (starlette under uvicorn).

    `script(path, [(status, headers, json_body), ...])` queues answers; when a path's queue is empty
    it answers its `default` (200 and `{}` unless set). Every request is recorded in `hits`.
    """

    def __init__(self) -> None:
        import threading

        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        self.queues: dict[str, list[tuple[int, dict, object]]] = {}
        self.defaults: dict[str, tuple[int, dict, object]] = {}
        self.hits: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()

        async def handle(request: Request) -> JSONResponse:
            path = request.url.path
            with self.lock:
                self.hits.append((request.method, path + (f"?{request.url.query}" if request.url.query else ""),
                                  dict(request.headers)))
                queue = self.queues.get(path)
                status, headers, body = queue.pop(0) if queue else self.defaults.get(path, (200, {}, {}))
            return JSONResponse(body, status_code=status, headers=headers)

        self.app = Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST", "PUT", "DELETE"])])

    def script(self, path: str, answers: list[tuple[int, dict, object]], default: tuple[int, dict, object] | None = None) -> None:
        with self.lock:
            self.queues[path] = list(answers)
            if default is not None:
                self.defaults[path] = default

    def reset(self) -> None:
        with self.lock:
            self.queues.clear()
            self.defaults.clear()
            self.hits.clear()


def start_uvicorn(app, port: int):
    """Run an ASGI app under uvicorn in a daemon thread on 127.0.0.1:port; returns (server, thread)."""
    import threading
    import time

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread


@pytest.fixture(scope="session")
def scripted_server():
    """One scripted HTTP server for the whole test session; reset between tests."""
    server = ScriptedServer()
    port = free_port()
    uv, thread = start_uvicorn(server.app, port)
    server.base_url = f"http://127.0.0.1:{port}"
    yield server
    uv.should_exit = True
    thread.join(10)


@pytest.fixture
def http_server(scripted_server):
    scripted_server.reset()
    yield scripted_server
    scripted_server.reset()
