"""`integrations webhooks serve`: the command line, and the real command serving on 127.0.0.1."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from integrations.cli.webhooks import command, secret_lookup
from integrations.errors import CredentialError
from integrations.webhooks import Inbox, signature_for


def test_serve_is_a_subcommand_with_the_documented_options():
    runner = CliRunner()
    assert "serve" in runner.invoke(command, ["--help"]).output
    help_text = runner.invoke(command, ["serve", "--help"]).output
    for option in ("--host", "--port", "--inbox", "--cloudwatch-inbox", "--max-body-bytes", "127.0.0.1", "8000"):
        assert option in help_text


def test_the_default_lookup_reads_the_environment(monkeypatch):
    secret = secrets.token_hex(16)
    monkeypatch.setenv("INTEGRATIONS_WEBHOOK_SECRET_ACME", secret)
    lookup, sources = secret_lookup()
    assert lookup("acme") == secret.encode()
    assert lookup("globex") is None
    assert any("INTEGRATIONS_WEBHOOK_SECRET_" in name for name in sources)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_receives_a_delivery_end_to_end(tmp_path: Path, push_body: bytes):
    """Run the real command in its own process, deliver to it, stop it, find the delivery in the inbox."""
    secret = secrets.token_hex(20)
    inbox_path = tmp_path / "inbox" / "github.sqlite"
    port = free_port()
    api_key = secrets.token_urlsafe(32)
    env = {**os.environ, "INTEGRATIONS_WEBHOOK_SECRET_ACME_PROD": secret, "PYTHONUNBUFFERED": "1",
           "INTEGRATIONS_CLOUDWATCH_WEBHOOK_SECRET_ACME_PROD": api_key,
           "INTEGRATIONS_TENANTS": str(tmp_path / "tenants")}
    env.pop("INTEGRATIONS_WEBHOOK_INBOX", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "integrations", "--log-level", "INFO", "webhooks", "serve", "--port", str(port),
         "--inbox", str(inbox_path), "--max-body-bytes", "100000", "--db", str(tmp_path / "events.duckdb")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.05)
        delivery = str(uuid.uuid4())
        headers = {"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
                   "X-Hub-Signature-256": signature_for(secret.encode(), push_body)}
        answer = httpx.post(f"{url}/webhooks/github/acme-prod", content=push_body, headers=headers)
        assert answer.status_code == 202
        assert httpx.post(f"{url}/webhooks/github/acme", content=push_body, headers=headers).status_code == 404
        big = b'{"x": "' + b"y" * 100_000 + b'"}'
        assert httpx.post(f"{url}/webhooks/github/acme-prod", content=big, headers=headers).status_code == 413
        alarm = (Path(__file__).resolve().parents[2] / "mappings" / "cloudwatch" / "examples" / "alarm_state_change"
                 / "single_metric_alarm.input.json").read_bytes()
        aws_headers = {"Content-Type": "application/json", "x-api-key": api_key}
        assert httpx.post(f"{url}/webhooks/cloudwatch/acme-prod", content=alarm, headers=aws_headers).status_code == 202
        assert httpx.post(f"{url}/webhooks/cloudwatch/acme-prod", content=alarm,
                          headers={**aws_headers, "x-api-key": secret}).status_code == 401  # GitHub's secret is not the key
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=15)
    assert "Receiving GitHub webhooks on http://127.0.0.1" in output
    assert f"Receiving AWS EventBridge events on http://127.0.0.1:{port}/webhooks/cloudwatch/<tenant>" in output
    assert secret not in output and headers["X-Hub-Signature-256"] not in output and api_key not in output
    with Inbox(inbox_path) as inbox:
        assert [d.delivery_id for d in inbox.pending("acme-prod")] == [delivery]
    with Inbox(inbox_path.with_name("cloudwatch.sqlite")) as inbox:
        assert [(d.event_name, d.payload) for d in inbox.pending("acme-prod")] == [("alarm_state_change",
                                                                                      json.loads(alarm))]


def test_secrets_come_from_the_credential_store_under_the_tenant_files_name(tmp_path: Path, monkeypatch):
    from integrations.credentials import CredentialManager, MasterKey, parse_credential
    from integrations.store import EventStore

    key = MasterKey.generate()
    monkeypatch.setenv("INTEGRATIONS_MASTER_KEY", key.to_text())
    monkeypatch.delenv("INTEGRATIONS_WEBHOOK_SECRET_ACME", raising=False)
    store = EventStore(tmp_path / "events.duckdb")
    manager = CredentialManager(store, key)
    named, default = secrets.token_hex(20), secrets.token_hex(20)
    manager.set("acme", "github", "acme-hook", parse_credential("webhook_secret", named))
    manager.set("globex", "github", "webhook-secret", parse_credential("webhook_secret", default))
    manager.set("initech", "github", "webhook-secret", parse_credential("github_pat", "ghp_" + "a" * 36))
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "acme.yaml").write_text(
        "tenant: acme\nintegrations:\n  github:\n    credentials: {webhook_secret: acme-hook}\n"
        "    sources:\n      - {name: push, mode: webhook}\n")

    lookup, sources = secret_lookup(store, tenants=tenants)
    assert len(sources) == 2
    assert lookup("acme") == named.encode()  # the name the tenant file gives the role
    assert lookup("globex") == default.encode()  # no tenant file: the default name
    assert lookup("nobody") is None
    with pytest.raises(CredentialError):  # a credential of the wrong type is refused, not used
        lookup("initech")

    monkeypatch.setenv("INTEGRATIONS_WEBHOOK_SECRET_ACME", "from-env")
    assert lookup("acme") == b"from-env"  # the environment comes first

    # EventBridge API keys: the cloudwatch plugin's credentials and variables, never GitHub's.
    api_key = secrets.token_urlsafe(32)
    manager.set("acme", "cloudwatch", "webhook-secret", parse_credential("webhook_secret", api_key))
    aws_lookup, aws_sources = secret_lookup(store, plugin="cloudwatch", tenants=tenants)
    assert "plugin cloudwatch" in aws_sources[1] and "INTEGRATIONS_CLOUDWATCH_WEBHOOK_SECRET_" in aws_sources[0]
    assert aws_lookup("acme") == api_key.encode()
    assert aws_lookup("globex") is None
    monkeypatch.setenv("INTEGRATIONS_CLOUDWATCH_WEBHOOK_SECRET_ACME", "key-from-env")
    assert aws_lookup("acme") == b"key-from-env"
