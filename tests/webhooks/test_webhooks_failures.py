"""The receiver when its parts fail, and what it writes to the log (never a secret or signature)."""

from __future__ import annotations

import logging
import secrets
import uuid

import httpx
import pytest

from integrations.errors import ConfigError, CredentialError
from integrations.webhooks import Inbox, create_app, signature_for


def github_headers(secret: bytes, body: bytes, event: str = "push") -> dict[str, str]:
    return {"Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": signature_for(secret, body)}


def test_healthz_is_503_when_the_inbox_is_unreachable(tmp_path, serve):
    inbox = Inbox(tmp_path / "github.sqlite")
    url = serve(create_app(inbox, {}.get))
    assert httpx.get(f"{url}/healthz").status_code == 200
    inbox.close()
    answer = httpx.get(f"{url}/healthz")
    assert answer.status_code == 503
    assert answer.json() == {"status": "unavailable", "inbox": "unreachable"}


def test_a_delivery_the_inbox_cannot_store_is_503_never_2xx(tmp_path, serve):
    secret = secrets.token_hex(20).encode()
    inbox = Inbox(tmp_path / "github.sqlite")
    url = serve(create_app(inbox, {"acme": secret}.get))
    inbox.close()
    body = b'{"ref": "refs/heads/main"}'
    answer = httpx.post(f"{url}/webhooks/github/acme", content=body, headers=github_headers(secret, body))
    assert answer.status_code == 503
    assert answer.json() == {"error": "inbox unavailable"}


@pytest.mark.parametrize(("error", "logged"), [
    (CredentialError("no master key: INTEGRATIONS_MASTER_KEY is not set"), "no master key"),
    (RuntimeError("driver said: password=s3cr3t-k3y"), "RuntimeError"),
])
def test_a_failing_secret_source_is_503_and_leaks_nothing(tmp_path, serve, caplog, error, logged):
    def broken(tenant: str) -> bytes | None:
        raise error

    with Inbox(tmp_path / "github.sqlite") as inbox:
        url = serve(create_app(inbox, broken))
        body = b"{}"
        with caplog.at_level(logging.INFO, logger="integrations.webhooks"):
            answer = httpx.post(f"{url}/webhooks/github/acme", content=body, headers=github_headers(b"x", body))
        assert answer.status_code == 503
        assert answer.json() == {"error": "webhook secret unavailable"}
        assert logged in caplog.text
        assert "s3cr3t" not in answer.text and "s3cr3t" not in caplog.text


def test_the_log_names_deliveries_but_never_a_secret_or_signature(tmp_path, serve, caplog):
    secret = secrets.token_hex(20).encode()
    with Inbox(tmp_path / "github.sqlite") as inbox:
        url = serve(create_app(inbox, {"acme": secret}.get))
        body = b'{"ref": "refs/heads/main"}'
        good = github_headers(secret, body)
        bad = github_headers(b"wrong", body)
        with caplog.at_level(logging.DEBUG):
            assert httpx.post(f"{url}/webhooks/github/acme", content=body, headers=good).status_code == 202
            assert httpx.post(f"{url}/webhooks/github/acme", content=body, headers=bad).status_code == 401
    assert good["X-GitHub-Delivery"] in caplog.text and bad["X-GitHub-Delivery"] in caplog.text
    for leak in (secret.decode(), good["X-Hub-Signature-256"], bad["X-Hub-Signature-256"],
                 good["X-Hub-Signature-256"].removeprefix("sha256=")):
        assert leak not in caplog.text


def test_a_non_positive_body_limit_is_a_config_error(tmp_path):
    with Inbox(tmp_path / "github.sqlite") as inbox, pytest.raises(ConfigError, match="max_body_bytes"):
        create_app(inbox, {}.get, max_body_bytes=0)
