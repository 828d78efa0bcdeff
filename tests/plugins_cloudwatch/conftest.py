"""Fixtures for the CloudWatch plugin: moto's server, the fault proxy in front of it, AWS clients.

- `moto_url`: `ThreadedMotoServer` on 127.0.0.1 and a free port, once per session; reset before each
  test that uses `aws` (its state is global to the server).
- `proxy`: the `FaultProxy` (fault_proxy.py) under uvicorn on 127.0.0.1, forwarding to moto; reset
  per test. The plugin and the tests talk to the proxy, never to moto directly.
- `aws`: boto3 clients (logs, cloudwatch) at the proxy with access keys made up for this test.
- `tenant`: writes a tenant file for a cloudwatch integration in poll mode (and anything else).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import yaml

from tests.conftest import free_port, start_uvicorn
from tests.plugins_cloudwatch.fault_proxy import FaultProxy

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account


@pytest.fixture(autouse=True)
def _no_ambient_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the keys a test makes are used: nothing from the environment, no instance metadata."""
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


@pytest.fixture(scope="session")
def moto_url() -> str:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _proxy_session(moto_url: str):
    proxy = FaultProxy(moto_url)
    port = free_port()
    server, thread = start_uvicorn(proxy.app, port)
    proxy.url = f"http://127.0.0.1:{port}"
    try:
        yield proxy
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def proxy(_proxy_session: FaultProxy, moto_url: str) -> FaultProxy:
    httpx.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    _proxy_session.reset()
    return _proxy_session


@dataclass
class Aws:
    """boto3 clients at the proxy, and the keys they sign with."""

    url: str
    access_key_id: str
    secret_access_key: str

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key)

    @property
    def logs(self) -> Any:
        return self.client("logs")

    @property
    def cloudwatch(self) -> Any:
        return self.client("cloudwatch")


@pytest.fixture
def aws(proxy: FaultProxy) -> Aws:
    return Aws(proxy.url, "AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))


@pytest.fixture
def tenant(tmp_path: Path):
    """`tenant(settings, sources, extra_integrations)` -> the tenants folder with tenants/acme.yaml."""

    def write(settings: dict, sources: list[str], *, credentials: dict | None = None,
              others: dict | None = None, name: str = "acme") -> Path:
        folder = tmp_path / "tenants"
        folder.mkdir(exist_ok=True)
        integrations = {"cloudwatch": {"credentials": credentials if credentials is not None else {"aws": "cw"},
                                       "settings": settings,
                                       "sources": [{"name": s, "mode": "poll"} for s in sources]}}
        integrations.update(others or {})
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({"tenant": name, "integrations": integrations}))
        return folder

    return write
