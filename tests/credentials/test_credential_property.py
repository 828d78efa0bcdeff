"""Property 3 of the design: every credential type is stored securely and renewed in time."""

from __future__ import annotations

import contextlib
import itertools
import string
from datetime import timedelta, timezone

import duckdb
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.credentials import (
    CREDENTIAL_TYPES,
    CredentialManager,
    GitHubAppTokenProvider,
    MasterKey,
    OAuth2TokenProvider,
    parse_credential,
)
from integrations.errors import CredentialError
from integrations.store import EventStore, migrate
from integrations.store import _credentials as sql

# The GitHub App key for generated credentials, made when this module is collected.
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
APP_PEM = _KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()
APP_PUBLIC_PEM = _KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo).decode()

TENANT_POOL = ("acme", "globex", "initech", "umbrella")
_unique = itertools.count()

secret = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=60).filter(
    lambda s: s.strip())
label = st.text(string.ascii_letters + string.digits + "-_.:/@", min_size=1, max_size=24)
moment = st.datetimes(timezones=st.just(timezone.utc))
optional = lambda strategy: st.none() | strategy  # noqa: E731


def _drop_none(data: dict) -> dict:
    return {k: v for k, v in data.items() if v is not None}


@st.composite
def credentials(draw):
    """Any credential of any type, built through `parse_credential` as user input would be."""
    kind = draw(st.sampled_from(sorted(CREDENTIAL_TYPES)))
    data = {
        "api_key": lambda: {"key": draw(secret), "header": draw(st.sampled_from(["Authorization", "X-API-Key"])),
                            "scheme": draw(st.none() | st.just("Token"))},
        "oauth2": lambda: {"token_url": f"https://idp.example/{draw(label)}/token", "client_id": draw(label),
                           "client_secret": draw(optional(secret)), "refresh_token": draw(secret),
                           "access_token": draw(optional(secret)), "scope": draw(optional(label)),
                           "client_auth": draw(st.sampled_from(["body", "basic"]))},
        "github_pat": lambda: {"token": draw(secret)},
        "github_app": lambda: {"app_id": draw(st.integers(1, 10**9) | label), "private_key": APP_PEM,
                               "installation_id": draw(st.integers(1, 10**12))},
        "aws_access_keys": lambda: {"access_key_id": draw(secret), "secret_access_key": draw(secret),
                                    "session_token": draw(optional(secret)),
                                    "region": draw(optional(st.sampled_from(["eu-west-1", "us-east-1"])))},
        "aws_assume_role": lambda: {
            "role_arn": f"arn:aws:iam::{draw(st.integers(10**11, 10**12 - 1))}:role/{draw(label)}",
            "external_id": draw(optional(secret)), "duration_seconds": draw(st.integers(900, 43200)),
            **({"source_access_key_id": draw(secret), "source_secret_access_key": draw(secret)}
               if draw(st.booleans()) else {})},
        "service_account": lambda: {"key": {"type": "service_account", "client_email": f"{draw(label)}@iam.example",
                                            "private_key": draw(secret), "project_id": draw(label)}},
        "webhook_secret": lambda: {"secret": draw(secret)},
    }[kind]()
    data["expires_at"] = draw(optional(moment))
    return parse_credential(kind, _drop_none(data))


class OneConnectionStore(EventStore):
    """The real DuckDB file, schema and SQL, on one long-lived connection.

    The event store opens a connection per operation (about 20 ms each), which is right for a
    runner sharing the file but would make a hundred examples of several operations each slow.
    """

    def __init__(self, path) -> None:
        super().__init__(path)
        self._conn = duckdb.connect(str(path))
        migrate(self._conn)

    @contextlib.contextmanager
    def transaction(self):
        self._conn.execute("BEGIN TRANSACTION")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def reader(self):
        yield self._conn

    def close(self) -> None:
        self._conn.close()


@pytest.fixture(scope="module")
def prop_store(tmp_path_factory):
    store = OneConnectionStore(tmp_path_factory.mktemp("property3") / "store.duckdb")
    yield store
    store.close()


@pytest.fixture(scope="module")
def prop_manager(prop_store) -> CredentialManager:
    manager = CredentialManager(prop_store, MasterKey.generate())
    for tenant in TENANT_POOL:  # every pooled tenant has data key v1, so a moved row finds a key
        manager.set(tenant, "seed", "seed", parse_credential("webhook_secret", f"seed-secret-{tenant}"))
    return manager


def _copy_row(conn, source: tuple[str, str, str], target: tuple[str, str, str], *, ciphertext: bytes,
              type_name: str, key_version: int) -> None:
    conn.execute("DELETE FROM credentials WHERE tenant_id = ? AND plugin = ? AND name = ?", list(target))
    conn.execute("INSERT INTO credentials (tenant_id, plugin, name, type, ciphertext, key_version, created_at) "
                 "VALUES (?, ?, ?, ?, ?, ?, now())", [*target, type_name, ciphertext, key_version])


@settings(max_examples=100, deadline=None)
@given(cred=credentials(), tenant=st.sampled_from(TENANT_POOL) | label, plugin=label,
       move=st.sampled_from(["tenant", "plugin", "name", "type"]), data=st.data())
def test_property_3_every_type_round_trips_and_moved_or_altered_ciphertexts_fail(
        prop_manager, prop_store, cred, tenant, plugin, move, data):
    """Feature: integrations, Property 3: Universal Authentication Support - for any credential
    type a plugin may require, the credential manager stores it encrypted and gives it back intact;
    a ciphertext with any byte altered, or moved to another tenant's, plugin's or credential's row
    (or relabelled with another type), fails to decrypt with a CredentialError."""
    name = f"cred-{next(_unique)}"
    prop_manager.set(tenant, plugin, name, cred)
    got = prop_manager.get(tenant, plugin, name)
    assert type(got) is type(cred) and got.reveal() == cred.reveal()
    assert got == cred

    with prop_store.transaction() as conn:
        row = sql.get_credential(conn, tenant, plugin, name)
        original = row.ciphertext
        index = data.draw(st.integers(0, len(original) - 1), label="byte")
        flip = data.draw(st.integers(1, 255), label="xor")
        tampered = bytearray(original)
        tampered[index] ^= flip
        conn.execute("UPDATE credentials SET ciphertext = ? WHERE tenant_id = ? AND plugin = ? AND name = ?",
                     [bytes(tampered), tenant, plugin, name])
        if move != "type":
            target = {"tenant": (data.draw(st.sampled_from([t for t in TENANT_POOL if t != tenant]), label="to"),
                                 plugin, name),
                      "plugin": (tenant, plugin + "-other", name),
                      "name": (tenant, plugin, name + "-other")}[move]
            _copy_row(conn, (tenant, plugin, name), target, ciphertext=original, type_name=row.type,
                      key_version=row.key_version)
    with pytest.raises(CredentialError, match="cannot decrypt"):
        prop_manager.get(tenant, plugin, name)
    if move == "type":
        other_type = data.draw(st.sampled_from([t for t in CREDENTIAL_TYPES if t != cred.type]), label="as")
        with prop_store.transaction() as conn:
            conn.execute("UPDATE credentials SET ciphertext = ?, type = ? "
                         "WHERE tenant_id = ? AND plugin = ? AND name = ?",
                         [original, other_type, tenant, plugin, name])
        target = (tenant, plugin, name)
    with pytest.raises(CredentialError, match="cannot decrypt"):
        prop_manager.get(*target)


@pytest.fixture(scope="module")
def prop_http():
    with httpx.Client(timeout=10) as client:
        yield client


@settings(max_examples=100, deadline=None)
@given(kind=st.sampled_from(["github_app", "oauth2"]),
       lifetime=st.integers(10 * 60, 2 * 3600),
       steps=st.lists(st.integers(0, 40 * 60), min_size=1, max_size=8))
def test_property_3_tokens_are_renewed_before_they_expire(fresh_token_server, prop_http, kind, lifetime, steps):
    """Feature: integrations, Property 3: Universal Authentication Support - for the renewable
    types (GitHub App installation tokens, OAuth 2.0 access tokens) the provider never hands out a
    token with less than its renewal margin left, renews only when that margin is reached, and so
    renews before expiry whenever it is used within the margin; time is a fake clock shared with
    the real token server on 127.0.0.1."""
    token_server, clock, state = fresh_token_server()
    if kind == "github_app":
        state.app_public_keys["77"] = APP_PUBLIC_PEM
        state.installations[5] = "77"
        state.installation_token_lifetime = timedelta(seconds=lifetime)
        provider = GitHubAppTokenProvider(parse_credential("github_app", {
            "app_id": 77, "installation_id": 5, "private_key": APP_PEM,
            "base_url": token_server.github_base_url}), http=prop_http, clock=clock)
        calls = state.exchange_calls
    else:
        state.oauth_clients["c"] = "client-secret-prop"
        state.refresh_tokens["c"] = "rt_first_refresh"
        state.access_token_lifetime = timedelta(seconds=lifetime)
        provider = OAuth2TokenProvider(parse_credential("oauth2", {
            "token_url": token_server.token_url, "client_id": "c", "client_secret": "client-secret-prop",
            "refresh_token": "rt_first_refresh"}), http=prop_http, clock=clock)
        calls = state.refresh_calls

    held = None
    for step in [0, *steps]:
        clock.advance(seconds=step)
        before = len(calls)
        needs_renewal = held is None or held.expires_at - clock.now <= provider.renew_before
        token = provider.token()
        assert len(calls) - before == (1 if needs_renewal else 0)
        if needs_renewal and held is not None and clock.now < held.expires_at:
            assert calls[-1] < held.expires_at  # renewed while the old token still worked
        assert token.expires_at - clock.now > provider.renew_before
        held = token
