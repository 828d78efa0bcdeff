"""Signatures, payload decoding and secret lookups: the receiver's pure parts."""

from __future__ import annotations

import json
import secrets
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import integrations.webhooks as webhooks
from integrations.errors import RecordError
from integrations.webhooks import (
    cached_secret,
    env_secret_lookup,
    first_secret,
    parse_payload,
    secret_env_name,
    signature_for,
    verify_signature,
)


def test_public_names_are_exactly_all():
    assert webhooks.__all__ == sorted(name for name in dir(webhooks) if not name.startswith("_"))


def test_githubs_documented_test_vector():
    """The values from GitHub's "Validating webhook deliveries" page."""
    secret, body = b"It's a Secret to Everybody", b"Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature_for(secret, body) == expected
    assert verify_signature(secret, body, expected)


@pytest.mark.parametrize("header", [
    None, "", "sha256=",
    "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",  # without its sha256= prefix
    "SHA256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17",
    "sha1=757107ea0eb2509fc211221cce984b8a37570b6d",
    "sha256=ünïcode",
])
def test_missing_or_malformed_headers_do_not_verify(header):
    assert not verify_signature(b"It's a Secret to Everybody", b"Hello, World!", header)


def test_an_empty_secret_never_verifies():
    assert not verify_signature(b"", b"body", signature_for(b"", b"body"))


@settings(max_examples=200, deadline=None)
@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(max_size=2048), data=st.data())
def test_property_only_the_exact_body_and_secret_verify(secret, body, data):
    """Feature: integrations, Property 3: Universal Authentication Support.

    A delivery verifies under its own secret and body; flipping any one byte of the body, or
    using any other secret, makes it fail.
    """
    header = signature_for(secret, body)
    assert verify_signature(secret, body, header)
    if body:
        i = data.draw(st.integers(0, len(body) - 1))
        tampered = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1:]
        assert not verify_signature(secret, tampered, header)
    other = data.draw(st.binary(min_size=1, max_size=64).filter(lambda s: s != secret))
    assert not verify_signature(other, body, header)


# -- payloads --------------------------------------------------------------------------------


def test_json_and_form_payloads_decode_to_the_same_object():
    payload = {"zen": "Design for failure.", "hook_id": 1}
    as_json = json.dumps(payload).encode()
    as_form = urlencode({"payload": json.dumps(payload)}).encode()
    assert parse_payload(as_json, "application/json; charset=utf-8") == payload
    assert parse_payload(as_json, None) == payload
    assert parse_payload(as_form, "application/x-www-form-urlencoded") == payload


@pytest.mark.parametrize(("body", "content_type", "message"), [
    (b"{", "application/json", "not JSON"),
    (b'"a string"', "application/json", "not an object"),
    (b"\xff", "application/json", "not JSON"),
    (b"payload=%7B", "application/x-www-form-urlencoded", "not JSON"),
    (b"other=1", "application/x-www-form-urlencoded", "no 'payload' field"),
    (b"\xff=1", "application/x-www-form-urlencoded", "not URL-encoded"),
])
def test_bodies_without_a_json_object_are_record_errors(body, content_type, message):
    with pytest.raises(RecordError, match=message) as err:
        parse_payload(body, content_type)
    assert err.value.field == "body"


# -- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("tenant", "name"), [
    ("acme", "INTEGRATIONS_WEBHOOK_SECRET_ACME"),
    ("acme-prod", "INTEGRATIONS_WEBHOOK_SECRET_ACME_PROD"),
    ("a.b_c", "INTEGRATIONS_WEBHOOK_SECRET_A_B_C"),
])
def test_the_environment_variable_names(tenant, name):
    assert secret_env_name(tenant) == name


def test_env_lookup_reads_the_tenants_variable_and_ignores_empty_ones(monkeypatch):
    secret = secrets.token_hex(16)
    monkeypatch.setenv("INTEGRATIONS_WEBHOOK_SECRET_ACME_PROD", secret)
    monkeypatch.setenv("INTEGRATIONS_WEBHOOK_SECRET_GLOBEX", "")
    lookup = env_secret_lookup()
    assert lookup("acme-prod") == secret.encode()
    assert lookup("globex") is None
    assert lookup("initech") is None
    assert env_secret_lookup({"INTEGRATIONS_WEBHOOK_SECRET_X": "s"})("x") == b"s"


def test_first_secret_asks_in_order():
    asked: list[str] = []

    def second(tenant: str) -> bytes | None:
        asked.append(tenant)
        return b"from-second"

    lookup = first_secret({"acme": b"from-first"}.get, second)
    assert lookup("acme") == b"from-first" and asked == []
    assert lookup("globex") == b"from-second" and asked == ["globex"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cached_secret_reuses_answers_for_the_ttl_and_survives_a_failing_source():
    clock, calls = FakeClock(), []
    source = {"acme": b"one"}

    def lookup(tenant: str) -> bytes | None:
        calls.append(tenant)
        if source.get("down"):
            raise RuntimeError("credential store busy")
        return source.get(tenant)

    cached = cached_secret(lookup, ttl_seconds=60, clock=clock)
    assert cached("acme") == b"one" and cached("acme") == b"one" and calls == ["acme"]
    assert cached("nobody") is None and cached("nobody") is None and calls == ["acme", "nobody"]

    source["acme"] = b"two"  # rotated
    clock.now += 61
    assert cached("acme") == b"two"

    source["down"] = b"yes"
    clock.now += 61
    assert cached("acme") == b"two"  # the last answer, while the source is down
    with pytest.raises(RuntimeError):
        cached("never-seen")


def test_cached_secret_is_bounded():
    calls: list[str] = []
    cached = cached_secret(lambda tenant: calls.append(tenant), ttl_seconds=60, max_entries=10, clock=FakeClock())
    for i in range(95):
        cached(f"probe-{i}")
    assert len(calls) == 95
    cached("probe-94")  # recent: still remembered
    assert len(calls) == 95
    cached("probe-0")  # long forgotten: asked again
    assert len(calls) == 96
