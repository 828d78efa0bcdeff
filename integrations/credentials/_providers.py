"""Token providers: a current token (or AWS session) for a credential, renewed before it expires.

- `StaticTokenProvider`: API keys and personal access tokens; nothing to renew.
- `GitHubAppTokenProvider`: signs an RS256 JWT with the app's private key (`iat` 60 s in the past
  for clock drift, `exp` under GitHub's 10-minute limit, `iss` the app id), exchanges it at
  `POST {base_url}/app/installations/{id}/access_tokens`, caches the installation token and
  renews it when less than `renew_before` (5 minutes) remains.
- `OAuth2TokenProvider`: a `grant_type=refresh_token` form POST to the token URL before the
  access token expires; a rotated refresh token is handed to `on_refresh` to be stored encrypted.
- `AwsAssumeRoleProvider`: STS AssumeRole behind botocore's `DeferredRefreshableCredentials`,
  which renews in its advisory window (15 minutes before expiry) and must renew in its mandatory
  one (10 minutes); `session()` is a `boto3.Session` that always signs with current keys.
- `AwsAccessKeysProvider`: a `boto3.Session` from long-lived keys.

All take an injected `httpx.Client` (or STS endpoint) and a clock, so tests drive the real code
against servers on 127.0.0.1 and move time by hand. Every token they obtain is registered with
the log masker.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import jwt
from pydantic import SecretStr

from integrations.credentials._redact import redact, register_secret
from integrations.credentials._types import (
    ApiKeyCredential,
    AwsAccessKeysCredential,
    AwsAssumeRoleCredential,
    CredentialModel,
    GitHubAppCredential,
    GitHubPatCredential,
    OAuth2Credential,
)
from integrations.errors import CredentialError

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, repr=False)
class AccessToken:
    """A token and when it expires (None: it does not)."""

    value: SecretStr
    expires_at: datetime | None = None

    def remaining(self, now: datetime) -> timedelta | None:
        return None if self.expires_at is None else self.expires_at - now

    def __repr__(self) -> str:
        return f"AccessToken(value=SecretStr('**********'), expires_at={self.expires_at!r})"


class TokenProvider(abc.ABC):
    """Gives a current bearer token for one credential."""

    #: what `describe()` says the token is
    kind = "token"

    @abc.abstractmethod
    def token(self) -> AccessToken:
        """A token that is valid now, renewed first if it is about to expire."""

    def headers(self) -> dict[str, str]:
        """HTTP headers that authenticate a request with the current token."""
        return {"Authorization": f"Bearer {self.token().value.get_secret_value()}"}


class StaticTokenProvider(TokenProvider):
    """A token that never changes (API key, personal access token)."""

    kind = "static token"

    def __init__(self, value: SecretStr, *, header: str = "Authorization", scheme: str | None = "Bearer",
                 expires_at: datetime | None = None) -> None:
        register_secret(value)
        self._token = AccessToken(value, expires_at)
        self.header = header
        self.scheme = scheme

    def token(self) -> AccessToken:
        return self._token

    def headers(self) -> dict[str, str]:
        secret = self._token.value.get_secret_value()
        return {self.header: f"{self.scheme} {secret}" if self.scheme else secret}


def _http_failure(what: str, err: httpx.HTTPError) -> CredentialError:
    url = getattr(getattr(err, "request", None), "url", None) if isinstance(err, httpx.RequestError) else None
    where = f" at {url.copy_with(query=None)}" if url is not None else ""
    return CredentialError(f"{what}: could not reach the server{where} ({type(err).__name__})",
                           hint="check the base/token URL and the network")


def _error_text(response: httpx.Response) -> str:
    """The service's own error message, redacted, without echoing the request."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [str(body[k]) for k in ("error", "error_description", "message") if body.get(k)]
    return redact(": ".join(parts))[:200]


def _parse_time(value: Any, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise CredentialError(f"{what}: the server sent an unreadable expiry time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class GitHubAppTokenProvider(TokenProvider):
    """Installation tokens for a GitHub App, cached and renewed before they expire."""

    kind = "GitHub App installation token"
    JWT_BACKDATE = timedelta(seconds=60)
    JWT_LIFETIME = timedelta(minutes=9)  # with the backdating: exp - iat = 10 minutes, GitHub's limit

    def __init__(self, credential: GitHubAppCredential, *, http: httpx.Client | None = None, clock: Clock = utcnow,
                 renew_before: timedelta = timedelta(minutes=5)) -> None:
        self.credential = credential
        self._http = http
        self.clock = clock
        self.renew_before = renew_before
        self._cached: AccessToken | None = None
        self._lock = threading.Lock()
        self._signing_key: Any = None  # loaded once: RSA key loading checks the key and is slow
        self.exchanges = 0  # how many tokens were fetched (for health figures and tests)
        register_secret(credential.private_key)

    def app_jwt(self) -> str:
        """The short-lived JWT that authenticates as the app itself."""
        now = self.clock()
        claims = {"iat": int((now - self.JWT_BACKDATE).timestamp()),
                  "exp": int((now + self.JWT_LIFETIME).timestamp()),
                  "iss": self.credential.app_id}
        if self._signing_key is None:
            from cryptography.hazmat.primitives.serialization import load_pem_private_key

            self._signing_key = load_pem_private_key(
                self.credential.private_key.get_secret_value().encode("utf-8"), password=None)
        token = jwt.encode(claims, self._signing_key, algorithm="RS256")
        register_secret(token)
        return token

    def token(self) -> AccessToken:
        with self._lock:
            cached = self._cached
            if cached is not None and cached.remaining(self.clock()) > self.renew_before:
                return cached
            self._cached = self._exchange()
            return self._cached

    def _exchange(self) -> AccessToken:
        cred = self.credential
        what = f"GitHub App {cred.app_id} installation {cred.installation_id}"
        url = f"{cred.base_url.rstrip('/')}/app/installations/{cred.installation_id}/access_tokens"
        headers = {"Authorization": f"Bearer {self.app_jwt()}", "Accept": "application/vnd.github+json",
                   "X-GitHub-Api-Version": "2022-11-28"}
        client = self._http or httpx.Client(timeout=15.0)
        try:
            response = client.post(url, headers=headers)
        except httpx.HTTPError as err:
            raise _http_failure(what, err) from None
        finally:
            if self._http is None:
                client.close()
        if response.status_code not in (200, 201):
            detail = _error_text(response)
            raise CredentialError(
                f"{what}: GitHub refused the token exchange (HTTP {response.status_code}"
                f"{': ' + detail if detail else ''})",
                hint="check the app id, the installation id and that the private key belongs to the app")
        try:
            body = response.json()
            value = body["token"]
            expires_at = _parse_time(body["expires_at"], what)
        except (ValueError, KeyError, TypeError):
            raise CredentialError(f"{what}: GitHub's reply lacks 'token' or 'expires_at'") from None
        register_secret(value)
        self.exchanges += 1
        return AccessToken(SecretStr(value), expires_at)


class OAuth2TokenProvider(TokenProvider):
    """An OAuth 2.0 access token, refreshed with the refresh token before it expires."""

    kind = "OAuth 2.0 access token"

    def __init__(self, credential: OAuth2Credential, *, http: httpx.Client | None = None, clock: Clock = utcnow,
                 renew_before: timedelta = timedelta(minutes=5),
                 on_refresh: Callable[[OAuth2Credential], None] | None = None) -> None:
        self.credential = credential
        self._http = http
        self.clock = clock
        self.renew_before = renew_before
        self.on_refresh = on_refresh
        self._lock = threading.Lock()
        self.refreshes = 0

    def token(self) -> AccessToken:
        with self._lock:
            cred = self.credential
            if cred.access_token is not None:
                current = AccessToken(cred.access_token, cred.expires_at)
                remaining = current.remaining(self.clock())
                if remaining is None or remaining > self.renew_before:
                    return current
            self.credential = self._refresh(cred)
            self.refreshes += 1
            if self.on_refresh is not None:
                self.on_refresh(self.credential)
            assert self.credential.access_token is not None
            return AccessToken(self.credential.access_token, self.credential.expires_at)

    def _refresh(self, cred: OAuth2Credential) -> OAuth2Credential:
        what = f"OAuth client {cred.client_id} at {cred.token_url}"
        form = {"grant_type": "refresh_token", "refresh_token": cred.refresh_token.get_secret_value()}
        if cred.scope:
            form["scope"] = cred.scope
        auth = None
        secret = cred.client_secret.get_secret_value() if cred.client_secret else None
        if cred.client_auth == "basic":
            auth = httpx.BasicAuth(cred.client_id, secret or "")
        else:
            form["client_id"] = cred.client_id
            if secret is not None:
                form["client_secret"] = secret
        client = self._http or httpx.Client(timeout=15.0)
        now = self.clock()
        try:
            response = client.post(cred.token_url, data=form, auth=auth, headers={"Accept": "application/json"})
        except httpx.HTTPError as err:
            raise _http_failure(what, err) from None
        finally:
            if self._http is None:
                client.close()
        if response.status_code != 200:
            detail = _error_text(response)
            raise CredentialError(
                f"{what}: the token endpoint refused the refresh (HTTP {response.status_code}"
                f"{': ' + detail if detail else ''})",
                hint="authorize again and store the new tokens with `integrations credentials set`")
        try:
            body = response.json()
            access = body["access_token"]
        except (ValueError, KeyError, TypeError):
            raise CredentialError(f"{what}: the token endpoint's reply lacks 'access_token'") from None
        expires_in = body.get("expires_in")
        update: dict[str, Any] = {
            "access_token": SecretStr(access),
            "expires_at": now + timedelta(seconds=int(expires_in)) if expires_in is not None else None,
        }
        if body.get("refresh_token"):
            update["refresh_token"] = SecretStr(body["refresh_token"])
        register_secret(access, body.get("refresh_token"))
        return cred.model_copy(update=update)


class AwsSessionProvider(abc.ABC):
    """Gives boto3 sessions signed with current AWS keys."""

    kind = "AWS credentials"

    @abc.abstractmethod
    def credentials(self) -> Any:
        """botocore credentials (refreshable ones renew themselves)."""

    @abc.abstractmethod
    def session(self) -> Any:
        """A boto3.Session using these credentials."""

    def frozen(self) -> Any:
        """The keys valid now (botocore ReadOnlyCredentials), renewed first when due."""
        return self.credentials().get_frozen_credentials()


class AwsAccessKeysProvider(AwsSessionProvider):
    """A session from long-lived access keys."""

    kind = "AWS access keys"

    def __init__(self, credential: AwsAccessKeysCredential) -> None:
        self.credential = credential
        register_secret(credential.access_key_id, credential.secret_access_key, credential.session_token)

    def session(self) -> Any:
        import boto3

        cred = self.credential
        return boto3.Session(
            aws_access_key_id=cred.access_key_id.get_secret_value(),
            aws_secret_access_key=cred.secret_access_key.get_secret_value(),
            aws_session_token=cred.session_token.get_secret_value() if cred.session_token else None,
            region_name=cred.region)

    def credentials(self) -> Any:
        return self.session().get_credentials()


class AwsAssumeRoleProvider(AwsSessionProvider):
    """Temporary keys from STS AssumeRole, renewed by botocore before they expire."""

    kind = "AWS assumed-role credentials"
    DEFAULT_REGION = "us-east-1"
    STS_MAX_ATTEMPTS = 3  # botocore "standard" retries, the first call included

    def __init__(self, credential: AwsAssumeRoleCredential, *, clock: Clock = utcnow,
                 sts_endpoint_url: str | None = None) -> None:
        from botocore.credentials import DeferredRefreshableCredentials

        self.credential = credential
        self.clock = clock
        self.sts_endpoint_url = sts_endpoint_url or credential.sts_endpoint_url
        self.refreshed_at: list[datetime] = []  # when each AssumeRole call happened (clock time)
        register_secret(credential.source_access_key_id, credential.source_secret_access_key,
                        credential.source_session_token, credential.external_id)
        self._credentials = DeferredRefreshableCredentials(refresh_using=self._assume_role,
                                                           method="integrations-assume-role", time_fetcher=clock)

    @property
    def region(self) -> str:
        return self.credential.region or self.DEFAULT_REGION

    def _sts(self) -> Any:
        import boto3
        from botocore.config import Config

        cred = self.credential
        source = boto3.session.Session(
            aws_access_key_id=cred.source_access_key_id.get_secret_value() if cred.source_access_key_id else None,
            aws_secret_access_key=(cred.source_secret_access_key.get_secret_value()
                                   if cred.source_secret_access_key else None),
            aws_session_token=cred.source_session_token.get_secret_value() if cred.source_session_token else None,
            region_name=self.region)
        config = Config(connect_timeout=5, read_timeout=15,
                        retries={"mode": "standard", "max_attempts": self.STS_MAX_ATTEMPTS})
        return source.client("sts", endpoint_url=self.sts_endpoint_url, config=config)

    def _assume_role(self) -> dict[str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        cred = self.credential
        params: dict[str, Any] = {"RoleArn": cred.role_arn, "RoleSessionName": cred.session_name,
                                  "DurationSeconds": cred.duration_seconds}
        if cred.external_id is not None:
            params["ExternalId"] = cred.external_id.get_secret_value()
        try:
            reply = self._sts().assume_role(**params)["Credentials"]
        except ClientError as err:
            error = err.response.get("Error", {})
            raise CredentialError(f"STS refused AssumeRole for {cred.role_arn} ({error.get('Code', 'error')}: "
                                  f"{redact(str(error.get('Message', '')))[:200]})",
                                  hint="check the role's trust policy, the external id and the source keys") from None
        except BotoCoreError as err:
            raise CredentialError(f"AssumeRole for {cred.role_arn} failed: {type(err).__name__}: "
                                  f"{redact(str(err))[:200]}") from None
        register_secret(reply["AccessKeyId"], reply["SecretAccessKey"], reply["SessionToken"])
        self.refreshed_at.append(self.clock())
        expiration = reply["Expiration"]
        return {"access_key": reply["AccessKeyId"], "secret_key": reply["SecretAccessKey"],
                "token": reply["SessionToken"],
                "expiry_time": expiration.isoformat() if isinstance(expiration, datetime) else str(expiration)}

    def credentials(self) -> Any:
        return self._credentials

    @property
    def expires_at(self) -> datetime | None:
        """When the current temporary keys expire (None before the first AssumeRole)."""
        return getattr(self._credentials, "_expiry_time", None)

    def session(self) -> Any:
        import boto3
        import botocore.session
        from botocore.credentials import CredentialProvider, CredentialResolver

        refreshable = self._credentials

        class _AssumedRole(CredentialProvider):
            METHOD = "integrations-assume-role"
            CANONICAL_NAME = "IntegrationsAssumeRole"

            def load(self) -> Any:
                return refreshable

        core = botocore.session.Session()
        core.register_component("credential_provider", CredentialResolver(providers=[_AssumedRole()]))
        return boto3.Session(botocore_session=core, region_name=self.region)


def provider_for(credential: CredentialModel, *, http: httpx.Client | None = None, clock: Clock = utcnow,
                 sts_endpoint_url: str | None = None,
                 on_refresh: Callable[[OAuth2Credential], None] | None = None
                 ) -> TokenProvider | AwsSessionProvider | None:
    """The provider for a credential; None for types used as they are (webhook secrets, JSON keys)."""
    if isinstance(credential, GitHubAppCredential):
        return GitHubAppTokenProvider(credential, http=http, clock=clock)
    if isinstance(credential, OAuth2Credential):
        return OAuth2TokenProvider(credential, http=http, clock=clock, on_refresh=on_refresh)
    if isinstance(credential, AwsAssumeRoleCredential):
        return AwsAssumeRoleProvider(credential, clock=clock, sts_endpoint_url=sts_endpoint_url)
    if isinstance(credential, AwsAccessKeysCredential):
        return AwsAccessKeysProvider(credential)
    if isinstance(credential, GitHubPatCredential):
        return StaticTokenProvider(credential.token, expires_at=credential.expires_at)
    if isinstance(credential, ApiKeyCredential):
        return StaticTokenProvider(credential.key, header=credential.header, scheme=credential.scheme,
                                   expires_at=credential.expires_at)
    return None
