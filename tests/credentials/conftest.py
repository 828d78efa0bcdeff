"""Fixtures for the credential tests: a fake clock, keys made at test time, and real servers.

- `token_server`: a starlette app under uvicorn on 127.0.0.1 playing GitHub's app-installation
  token endpoint (it verifies the app JWT's RS256 signature with the app's public key and checks
  `iat`/`exp`/`iss` against the test's clock) and an OAuth 2.0 token endpoint (refresh grant,
  client authentication, refresh-token rotation). Started once per session.
- `sts_endpoint`: moto's threaded server on 127.0.0.1 for STS AssumeRole. Started once per session.
"""

from __future__ import annotations

import base64
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from integrations.credentials import MasterKey, StaticMasterKeys
from integrations.store import EventStore


class FakeClock:
    """Time that moves only when a test says so (aware UTC datetimes, like `utcnow`)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(timezone.utc).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture(autouse=True)
def _no_ambient_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their master keys; nothing from the environment leaks in."""
    for name in ("INTEGRATIONS_MASTER_KEY", "INTEGRATIONS_MASTER_KEY_OLD", "INTEGRATIONS_MASTER_KEY_FILE",
                 "INTEGRATIONS_STS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def master_key() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture
def cred_store(tmp_path: Path) -> EventStore:
    return EventStore(tmp_path / "store.duckdb")


@pytest.fixture
def keys(master_key: MasterKey) -> StaticMasterKeys:
    return StaticMasterKeys(master_key)


@dataclass(frozen=True)
class RsaKey:
    private_pem: str
    public_pem: str


def make_rsa_key() -> RsaKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return RsaKey(private, public)


@pytest.fixture(scope="session")
def app_key() -> RsaKey:
    """The GitHub App's key pair, generated for this test run."""
    return make_rsa_key()


@pytest.fixture(scope="session")
def other_key() -> RsaKey:
    """A key that does not belong to the app."""
    return make_rsa_key()


# -- the token server ------------------------------------------------------------------------


@dataclass
class TokenServerState:
    """What the fake GitHub/OAuth server knows, and what it saw. Reset for every test."""

    clock: FakeClock = field(default_factory=FakeClock)
    app_public_keys: dict[str, str] = field(default_factory=dict)       # app id -> public PEM
    installations: dict[int, str] = field(default_factory=dict)         # installation id -> app id
    installation_token_lifetime: timedelta = timedelta(hours=1)
    issued_installation_tokens: list[str] = field(default_factory=list)
    jwt_claims: list[dict] = field(default_factory=list)
    oauth_clients: dict[str, str] = field(default_factory=dict)         # client id -> secret
    refresh_tokens: dict[str, str] = field(default_factory=dict)        # client id -> current refresh token
    rotate_refresh_tokens: bool = True
    access_token_lifetime: timedelta = timedelta(hours=1)
    issued_access_tokens: list[str] = field(default_factory=list)
    refresh_calls: list[datetime] = field(default_factory=list)
    exchange_calls: list[datetime] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _github_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message, "documentation_url": "https://docs.github.com/rest"}, status_code=status)


def build_token_app(state_box: list[TokenServerState]) -> Starlette:
    async def installation_token(request: Request) -> JSONResponse:
        state = state_box[0]
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return _github_error(401, "Requires authentication")
        token = auth.removeprefix("Bearer ")
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            app_id = str(unverified["iss"])
            public = state.app_public_keys[app_id]
            claims = jwt.decode(token, public, algorithms=["RS256"],
                                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                                         "require": ["iat", "exp", "iss"]})
        except (jwt.PyJWTError, KeyError):
            return _github_error(401, "A JSON web token could not be decoded")
        now = state.clock().timestamp()
        if not (claims["iat"] <= now < claims["exp"]) or claims["exp"] - claims["iat"] > 600:
            return _github_error(401, "'Expiration time' claim ('exp') is too far in the future")
        installation = int(request.path_params["installation_id"])
        if state.installations.get(installation) != app_id:
            return _github_error(404, "Not Found")
        value = "ghs_" + secrets.token_urlsafe(27)
        expires = state.clock() + state.installation_token_lifetime
        with state.lock:
            state.jwt_claims.append(claims)
            state.issued_installation_tokens.append(value)
            state.exchange_calls.append(state.clock())
        return JSONResponse({"token": value, "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                             "permissions": {"contents": "read"}, "repository_selection": "all"}, status_code=201)

    async def oauth_token(request: Request) -> JSONResponse:
        state = state_box[0]
        form = await request.form()
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("authorization", "")
        if auth.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
        if client_id not in state.oauth_clients or state.oauth_clients[client_id] != client_secret:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") != "refresh_token":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if form.get("refresh_token") != state.refresh_tokens.get(client_id):
            return JSONResponse({"error": "invalid_grant", "error_description": "refresh token is not valid"},
                                status_code=400)
        access = "at_" + secrets.token_urlsafe(24)
        body = {"access_token": access, "token_type": "Bearer",
                "expires_in": int(state.access_token_lifetime.total_seconds())}
        with state.lock:
            if state.rotate_refresh_tokens:
                state.refresh_tokens[client_id] = body["refresh_token"] = "rt_" + secrets.token_urlsafe(24)
            state.issued_access_tokens.append(access)
            state.refresh_calls.append(state.clock())
        return JSONResponse(body)

    return Starlette(routes=[
        Route("/api/v3/app/installations/{installation_id}/access_tokens", installation_token, methods=["POST"]),
        Route("/oauth/token", oauth_token, methods=["POST"]),
    ])


def start_server(app) -> tuple[uvicorn.Server, threading.Thread, str]:
    """Serve `app` under uvicorn in a thread on a free 127.0.0.1 port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test token server did not start")
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{port}"


@dataclass
class TokenServer:
    url: str
    box: list[TokenServerState]

    @property
    def state(self) -> TokenServerState:
        return self.box[0]

    @property
    def github_base_url(self) -> str:
        return f"{self.url}/api/v3"

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth/token"


@pytest.fixture(scope="session")
def _token_server_session():
    box = [TokenServerState()]
    server, thread, url = start_server(build_token_app(box))
    try:
        yield TokenServer(url, box)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def token_server(_token_server_session: TokenServer, clock: FakeClock) -> TokenServer:
    """The server with fresh state sharing the test's clock."""
    _token_server_session.box[0] = TokenServerState(clock=clock)
    return _token_server_session


@pytest.fixture
def fresh_token_server(_token_server_session: TokenServer):
    """For property tests: call it per example to reset the server with a new fake clock."""

    def reset() -> tuple[TokenServer, FakeClock, TokenServerState]:
        clock = FakeClock()
        state = _token_server_session.box[0] = TokenServerState(clock=clock)
        return _token_server_session, clock, state

    return reset


# -- moto's STS ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sts_endpoint() -> str:
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
