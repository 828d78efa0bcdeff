"""`authenticate_credential()`: the one place that proves a stored credential works.

`integrations credentials test` calls it today; the plugin framework calls it with the plugin's
own `authenticate()` hook (`plugin_authenticate`) once plugins exist. Without a hook it decrypts
the credential, checks it against the types the plugin accepts, and for the renewable types
(github_app, oauth2, aws_assume_role) obtains a real token through the provider. The result
says what was proven and never carries a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from integrations.credentials._manager import CredentialManager
from integrations.credentials._providers import (
    AwsAssumeRoleProvider,
    AwsSessionProvider,
    GitHubAppTokenProvider,
    OAuth2TokenProvider,
    TokenProvider,
)
from integrations.credentials._redact import redact
from integrations.credentials._types import CredentialModel
from integrations.errors import CredentialError, IntegrationsError

PluginAuthenticate = Callable[[CredentialModel, "TokenProvider | AwsSessionProvider | None"], Any]


@dataclass(frozen=True)
class AuthCheck:
    """The outcome of authenticating one credential (no secrets)."""

    tenant_id: str
    plugin: str
    name: str
    type: str
    ok: bool
    detail: str
    expires_at: datetime | None = None


def authenticate_credential(manager: CredentialManager, tenant_id: str, plugin: str, name: str, *,
                            accepted: Iterable[str] | None = None,
                            plugin_authenticate: PluginAuthenticate | None = None) -> AuthCheck:
    """Authenticate with a stored credential; raises CredentialError when it does not work.

    `plugin_authenticate(credential, provider)` is the plugin's hook: it may return a detail
    string (or anything with a `detail` attribute); raising an IntegrationsError fails the check.
    """
    credential = manager.get(tenant_id, plugin, name, accepted=accepted)
    provider = manager.provider(tenant_id, plugin, name)
    expires_at = credential.expires_at
    if plugin_authenticate is not None:
        try:
            outcome = plugin_authenticate(credential, provider)
        except IntegrationsError:
            raise
        except Exception as err:  # a plugin bug or a library error: report it without its arguments
            raise CredentialError(f"plugin '{plugin}' could not authenticate with credential '{name}': "
                                  f"{type(err).__name__}: {redact(str(err))[:200]}") from None
        detail = getattr(outcome, "detail", outcome) if outcome is not None else "the plugin accepted it"
        return AuthCheck(tenant_id, plugin, name, credential.type, True, str(detail), expires_at)
    if isinstance(provider, (GitHubAppTokenProvider, OAuth2TokenProvider)):
        token = provider.token()
        return AuthCheck(tenant_id, plugin, name, credential.type, True,
                         f"obtained {'an' if provider.kind[0] in 'AEIOU' else 'a'} {provider.kind}"
                         f"{_until(token.expires_at)}", token.expires_at)
    if isinstance(provider, AwsAssumeRoleProvider):
        provider.frozen()
        return AuthCheck(tenant_id, plugin, name, credential.type, True,
                         f"assumed {provider.credential.role_arn}{_until(provider.expires_at)}", provider.expires_at)
    return AuthCheck(tenant_id, plugin, name, credential.type, True,
                     "decrypted; every required part is present (not yet checked against the service)", expires_at)


def _until(moment: datetime | None) -> str:
    return f", valid until {moment.isoformat()}" if moment else ""
