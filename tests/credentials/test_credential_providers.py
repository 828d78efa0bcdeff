"""Token providers against real servers on 127.0.0.1 with a fake clock.

GitHub App and OAuth 2.0 run against the session's starlette token server (which verifies the
app JWT with the app's public key); AssumeRole runs against moto's STS server.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import jwt
import pytest

from integrations.credentials import (
    AwsAssumeRoleProvider,
    CredentialManager,
    GitHubAppTokenProvider,
    OAuth2TokenProvider,
    authenticate_credential,
    parse_credential,
)
from integrations.errors import CredentialError

APP_ID = "424242"
INSTALLATION = 31337
ROLE_ARN = "arn:aws:iam::123456789012:role/integrations-reader"


@pytest.fixture
def http():
    with httpx.Client(timeout=10) as client:
        yield client


def github_app(token_server, app_key, **extra):
    token_server.state.app_public_keys[APP_ID] = app_key.public_pem
    token_server.state.installations[INSTALLATION] = APP_ID
    return parse_credential("github_app", {"app_id": APP_ID, "installation_id": INSTALLATION,
                                           "private_key": app_key.private_pem,
                                           "base_url": token_server.github_base_url, **extra})


def oauth(token_server, *, access_token=None, expires_at=None, client_auth="body"):
    token_server.state.oauth_clients["client-1"] = "client-secret-xyz"
    token_server.state.refresh_tokens["client-1"] = "rt_initial_refresh_token"
    data = {"token_url": token_server.token_url, "client_id": "client-1", "client_secret": "client-secret-xyz",
            "refresh_token": "rt_initial_refresh_token", "client_auth": client_auth}
    if access_token:
        data["access_token"] = access_token
    if expires_at:
        data["expires_at"] = expires_at.isoformat()
    return parse_credential("oauth2", data)


# -- GitHub App ------------------------------------------------------------------------------


def test_the_app_jwt_is_rs256_backdated_short_lived_and_issued_by_the_app(token_server, app_key, clock, http):
    provider = GitHubAppTokenProvider(github_app(token_server, app_key), http=http, clock=clock)
    token = provider.app_jwt()
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, app_key.public_pem, algorithms=["RS256"],
                        options={"verify_exp": False, "verify_iat": False})
    now = int(clock.now.timestamp())
    assert claims["iss"] == APP_ID
    assert claims["iat"] == now - 60
    assert claims["exp"] - now <= 600 and claims["exp"] - claims["iat"] <= 600


def test_an_installation_token_is_exchanged_cached_and_renewed_before_expiry(token_server, app_key, clock, http):
    provider = GitHubAppTokenProvider(github_app(token_server, app_key), http=http, clock=clock)
    first = provider.token()
    assert first.value.get_secret_value() == token_server.state.issued_installation_tokens[0]
    assert first.expires_at == clock.now + timedelta(hours=1)

    clock.advance(minutes=54)  # 6 minutes left: still cached
    assert provider.token() is first
    assert len(token_server.state.issued_installation_tokens) == 1

    clock.advance(minutes=1, seconds=1)  # under 5 minutes left: renewed, before it expired
    second = provider.token()
    assert clock.now < first.expires_at
    assert second.value.get_secret_value() == token_server.state.issued_installation_tokens[1] != \
        first.value.get_secret_value()
    assert provider.headers() == {"Authorization": f"Bearer {second.value.get_secret_value()}"}
    assert provider.exchanges == 2


def test_a_jwt_signed_by_another_key_is_refused_with_a_clear_message(token_server, app_key, other_key, clock, http):
    cred = github_app(token_server, app_key).model_copy(update={"private_key": parse_credential(
        "github_app", {"app_id": 1, "installation_id": 1, "private_key": other_key.private_pem}).private_key})
    provider = GitHubAppTokenProvider(cred, http=http, clock=clock)
    with pytest.raises(CredentialError) as info:
        provider.token()
    text = info.value.render()
    assert f"GitHub App {APP_ID} installation {INSTALLATION}: GitHub refused the token exchange (HTTP 401" in text
    assert "A JSON web token could not be decoded" in text
    assert "private key belongs to the app" in text
    assert other_key.private_pem.splitlines()[1] not in text


def test_an_unknown_installation_and_an_unreachable_server_are_credential_errors(token_server, app_key, clock, http):
    cred = github_app(token_server, app_key).model_copy(update={"installation_id": 1})
    with pytest.raises(CredentialError, match="HTTP 404: Not Found"):
        GitHubAppTokenProvider(cred, http=http, clock=clock).token()


def test_the_provider_works_through_the_manager_and_authenticate_credential(token_server, app_key, clock, http,
                                                                            cred_store, keys):
    manager = CredentialManager(cred_store, keys, clock=clock, http=http)
    manager.set("acme", "github", "app", github_app(token_server, app_key))
    check = authenticate_credential(manager, "acme", "github", "app", accepted=("github_pat", "github_app"))
    assert check.ok and check.detail.startswith("obtained a GitHub App installation token, valid until")
    assert manager.provider("acme", "github", "app") is manager.provider("acme", "github", "app")  # cached
    manager.provider("acme", "github", "app").token()
    assert len(token_server.state.issued_installation_tokens) == 1  # the cached token was reused


# -- OAuth 2.0 -------------------------------------------------------------------------------


@pytest.mark.parametrize("client_auth", ["body", "basic"])
def test_oauth_refreshes_before_expiry_and_keeps_the_rotated_refresh_token(token_server, clock, http, client_auth):
    stored = []
    cred = oauth(token_server, access_token="at_initial_access", expires_at=clock.now + timedelta(minutes=30),
                 client_auth=client_auth)
    provider = OAuth2TokenProvider(cred, http=http, clock=clock, on_refresh=stored.append)
    assert provider.token().value.get_secret_value() == "at_initial_access"
    clock.advance(minutes=24)
    assert provider.token().value.get_secret_value() == "at_initial_access"
    assert token_server.state.refresh_calls == []

    clock.advance(minutes=2)  # 4 minutes left: refreshed
    fresh = provider.token()
    assert fresh.value.get_secret_value() == token_server.state.issued_access_tokens[0]
    assert fresh.expires_at == clock.now + timedelta(hours=1)
    assert token_server.state.refresh_calls == [clock.now]
    [updated] = stored
    assert updated.refresh_token.get_secret_value() == token_server.state.refresh_tokens["client-1"] != \
        "rt_initial_refresh_token"

    clock.advance(minutes=56)  # the rotated refresh token works for the next refresh
    assert provider.token().value.get_secret_value() == token_server.state.issued_access_tokens[1]


def test_oauth_without_an_access_token_refreshes_at_first_use(token_server, clock, http):
    provider = OAuth2TokenProvider(oauth(token_server), http=http, clock=clock)
    assert provider.token().value.get_secret_value() == token_server.state.issued_access_tokens[0]


def test_an_oauth_refresh_the_server_refuses_names_the_error_not_the_token(token_server, clock, http):
    cred = oauth(token_server)
    token_server.state.refresh_tokens["client-1"] = "rt_someone_else"
    with pytest.raises(CredentialError) as info:
        OAuth2TokenProvider(cred, http=http, clock=clock).token()
    text = info.value.render()
    assert "refused the refresh (HTTP 400: invalid_grant: refresh token is not valid)" in text
    assert "rt_initial_refresh_token" not in text and "client-secret-xyz" not in text
    assert "authorize again" in text


def test_a_refreshed_oauth_token_is_stored_encrypted_through_the_manager(token_server, clock, http, cred_store, keys):
    manager = CredentialManager(cred_store, keys, clock=clock, http=http)
    manager.set("acme", "jira", "oauth", oauth(token_server))
    provider = manager.provider("acme", "jira", "oauth")
    token = provider.token()
    again = manager.get("acme", "jira", "oauth")
    assert again.access_token.get_secret_value() == token.value.get_secret_value()
    assert again.refresh_token.get_secret_value() == token_server.state.refresh_tokens["client-1"]
    [info] = manager.list("acme")
    assert info.expires_at == token.expires_at and info.rotated_at == clock.now
    # a second manager (another process) uses the stored token without refreshing
    other = CredentialManager(cred_store, keys, clock=clock, http=http)
    assert other.provider("acme", "jira", "oauth").token().value == token.value
    assert len(token_server.state.refresh_calls) == 1


def test_an_unreachable_token_endpoint_is_a_credential_error(clock, http):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cred = parse_credential("oauth2", {"token_url": f"http://127.0.0.1:{port}/token", "client_id": "c",
                                       "refresh_token": "rt_unreachable_case"})
    with pytest.raises(CredentialError, match="could not reach the server at http://127.0.0.1"):
        OAuth2TokenProvider(cred, http=http, clock=clock).token()


# -- AWS AssumeRole --------------------------------------------------------------------------


def assume_role(**extra):
    return parse_credential("aws_assume_role", {
        "role_arn": ROLE_ARN, "session_name": "integrations-test", "region": "us-east-1",
        "source_access_key_id": "AKIASOURCEKEY0001", "source_secret_access_key": "source-secret-access-key",
        **extra})


def test_assume_role_against_moto_gives_a_working_boto3_session(sts_endpoint, clock):
    provider = AwsAssumeRoleProvider(assume_role(), clock=clock, sts_endpoint_url=sts_endpoint)
    assert provider.refreshed_at == []  # deferred: nothing fetched until needed
    session = provider.session()
    frozen = session.get_credentials().get_frozen_credentials()
    assert frozen.access_key.startswith("ASIA") and frozen.token
    identity = session.client("sts", endpoint_url=sts_endpoint).get_caller_identity()
    assert identity["Arn"].startswith("arn:aws:sts::123456789012:assumed-role/integrations-reader/")
    assert provider.refreshed_at == [clock.now]


def test_assumed_role_keys_are_renewed_before_they_expire(sts_endpoint, clock):
    provider = AwsAssumeRoleProvider(assume_role(duration_seconds=3600), clock=clock, sts_endpoint_url=sts_endpoint)
    first = provider.frozen()
    expires = provider.expires_at
    assert expires is not None
    clock.now = expires - timedelta(minutes=16)  # outside botocore's advisory window: cached
    assert provider.frozen().access_key == first.access_key
    assert len(provider.refreshed_at) == 1
    clock.now = expires - timedelta(minutes=14)  # inside it: renewed while the old keys still work
    renewed = provider.frozen()
    assert renewed.access_key != first.access_key
    assert len(provider.refreshed_at) == 2 and provider.refreshed_at[-1] < expires
    assert provider.expires_at > expires


def test_assume_role_through_authenticate_credential(sts_endpoint, clock, cred_store, keys):
    manager = CredentialManager(cred_store, keys, clock=clock, sts_endpoint_url=sts_endpoint)
    manager.set("acme", "cloudwatch", "role", assume_role())
    check = authenticate_credential(manager, "acme", "cloudwatch", "role")
    assert check.detail.startswith(f"assumed {ROLE_ARN}, valid until")


def test_an_unreachable_sts_is_a_credential_error(clock, monkeypatch):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(AwsAssumeRoleProvider, "STS_MAX_ATTEMPTS", 1)
    provider = AwsAssumeRoleProvider(assume_role(sts_endpoint_url=f"http://127.0.0.1:{port}"), clock=clock)
    with pytest.raises(CredentialError) as info:
        provider.frozen()
    assert f"AssumeRole for {ROLE_ARN} failed: EndpointConnectionError" in str(info.value)
    assert "source-secret-access-key" not in info.value.render()
