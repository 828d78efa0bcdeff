"""Credentials: typed, envelope-encrypted per tenant, renewed before they expire, never logged.

    master key (env / 0600 file) ─wraps─▶ tenant data key (versioned) ─encrypts─▶ credential row
                                          AAD: tenant, version          AAD: tenant, plugin, name, type

`CredentialManager` stores and hands out credentials; `parse_credential()` turns input into one
of the typed models; `validate_for_plugin()` checks a credential against what a plugin accepts;
`provider_for()` / `CredentialManager.provider()` give tokens and AWS sessions that renew
themselves; `authenticate_credential()` is the hook the plugin framework calls to prove a
credential works; `redact()` and the installed log masker keep secret values out of output.
"""

from integrations.credentials._authenticate import AuthCheck, authenticate_credential
from integrations.credentials._crypto import credential_aad, data_key_aad
from integrations.credentials._manager import CredentialInfo, CredentialManager, RotationReport
from integrations.credentials._master_key import (
    DEFAULT_KEY_FILE,
    ENV_KEY,
    ENV_KEY_FILE,
    ENV_OLD_KEY,
    EnvironmentMasterKeys,
    MasterKey,
    MasterKeyProvider,
    StaticMasterKeys,
    create_key_file,
    read_key_file,
)
from integrations.credentials._providers import (
    AccessToken,
    AwsAccessKeysProvider,
    AwsAssumeRoleProvider,
    AwsSessionProvider,
    GitHubAppTokenProvider,
    OAuth2TokenProvider,
    StaticTokenProvider,
    TokenProvider,
    provider_for,
)
from integrations.credentials._redact import SecretMaskingFilter, install_secret_masking, redact, register_secret
from integrations.credentials._types import (
    CREDENTIAL_TYPES,
    ApiKeyCredential,
    AwsAccessKeysCredential,
    AwsAssumeRoleCredential,
    Credential,
    CredentialModel,
    CredentialType,
    GitHubAppCredential,
    GitHubPatCredential,
    OAuth2Credential,
    ServiceAccountCredential,
    WebhookSecretCredential,
    credential_type,
    parse_credential,
    validate_for_plugin,
)

__all__ = [
    "CREDENTIAL_TYPES",
    "DEFAULT_KEY_FILE",
    "ENV_KEY",
    "ENV_KEY_FILE",
    "ENV_OLD_KEY",
    "AccessToken",
    "ApiKeyCredential",
    "AuthCheck",
    "AwsAccessKeysCredential",
    "AwsAccessKeysProvider",
    "AwsAssumeRoleCredential",
    "AwsAssumeRoleProvider",
    "AwsSessionProvider",
    "Credential",
    "CredentialInfo",
    "CredentialManager",
    "CredentialModel",
    "CredentialType",
    "EnvironmentMasterKeys",
    "GitHubAppCredential",
    "GitHubAppTokenProvider",
    "GitHubPatCredential",
    "MasterKey",
    "MasterKeyProvider",
    "OAuth2Credential",
    "OAuth2TokenProvider",
    "RotationReport",
    "SecretMaskingFilter",
    "ServiceAccountCredential",
    "StaticMasterKeys",
    "StaticTokenProvider",
    "TokenProvider",
    "WebhookSecretCredential",
    "authenticate_credential",
    "create_key_file",
    "credential_aad",
    "credential_type",
    "data_key_aad",
    "install_secret_masking",
    "parse_credential",
    "provider_for",
    "read_key_file",
    "redact",
    "register_secret",
    "validate_for_plugin",
]
