"""The credential types: one pydantic model per way of authenticating, joined on `type`.

Secret parts are `SecretStr`, so a model's repr, str and default dump show `'**********'`;
only `reveal()` (used by the encryption layer and the token providers) reads the values. Input
is parsed into a model with `parse_credential()`; its errors name the type and the missing or
wrong part and never repeat a value. A plugin declares the types it accepts
(`accepted_credentials = ("github_pat", "github_app")`) and `validate_for_plugin()` refuses any
other, naming what the plugin accepts.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from integrations.errors import CredentialError


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
_IdText = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v)]
_GITHUB_API = "https://api.github.com"


class CredentialModel(BaseModel):
    """What every credential type shares: the `type` tag and an optional expiry."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    type: str
    expires_at: AwareDatetime | None = Field(default=None, description="When the credential itself expires.")

    # Non-secret fields worth showing in `credentials list` (never a SecretStr).
    public_fields: ClassVar[tuple[str, ...]] = ()
    # Secret parts that can be given alone on stdin (a bare token instead of a JSON object).
    bare_secret_field: ClassVar[str | None] = None

    def metadata(self) -> dict[str, Any]:
        """Non-secret facts for listing (app id, role arn, token url...)."""
        return {name: getattr(self, name) for name in self.public_fields if getattr(self, name) is not None}

    def reveal(self) -> dict[str, Any]:
        """Every field with secret values in clear: for encryption only, never for output."""
        return reveal(self)


def reveal(model: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, datetime):
            value = value.isoformat()
        out[name] = value
    return out


def secret_values(model: BaseModel) -> list[str]:
    """The clear values of a model's secret parts (to register with the log masker)."""
    return [getattr(model, name).get_secret_value() for name in type(model).model_fields
            if isinstance(getattr(model, name), SecretStr)]


class ApiKeyCredential(CredentialModel):
    """A static API key sent in a header."""

    type: Literal["api_key"] = "api_key"
    key: SecretStr
    header: str = "Authorization"
    scheme: str | None = Field(default="Bearer", description="Prefix before the key in the header (None for none).")

    public_fields: ClassVar[tuple[str, ...]] = ("header",)
    bare_secret_field: ClassVar[str | None] = "key"


class OAuth2Credential(CredentialModel):
    """An OAuth 2.0 access token with the refresh token that renews it at `token_url`."""

    type: Literal["oauth2"] = "oauth2"
    token_url: str
    client_id: str
    client_secret: SecretStr | None = None
    refresh_token: SecretStr
    access_token: SecretStr | None = None
    scope: str | None = None
    client_auth: Literal["body", "basic"] = Field(
        default="body", description="Send client id/secret in the form body or as HTTP Basic auth.")

    public_fields: ClassVar[tuple[str, ...]] = ("token_url", "client_id", "scope")

    @field_validator("token_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value


class GitHubPatCredential(CredentialModel):
    """A GitHub personal access token (classic or fine-grained)."""

    type: Literal["github_pat"] = "github_pat"
    token: SecretStr
    base_url: str = _GITHUB_API

    public_fields: ClassVar[tuple[str, ...]] = ("base_url",)
    bare_secret_field: ClassVar[str | None] = "token"


class GitHubAppCredential(CredentialModel):
    """A GitHub App: its id and private key sign a JWT exchanged for an installation token."""

    type: Literal["github_app"] = "github_app"
    app_id: _IdText = Field(description="The App ID (or its client ID), used as the JWT issuer.")
    installation_id: int
    private_key: SecretStr = Field(description="The app's PEM-encoded RSA private key.")
    base_url: str = _GITHUB_API

    public_fields: ClassVar[tuple[str, ...]] = ("app_id", "installation_id", "base_url")
    bare_secret_field: ClassVar[str | None] = "private_key"

    @field_validator("private_key")
    @classmethod
    def _rsa_pem(cls, value: SecretStr) -> SecretStr:
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:  # a shape check: the provider loads the key with its full (slow) consistency check
            key = load_pem_private_key(value.get_secret_value().encode("utf-8"), password=None,
                                       unsafe_skip_rsa_key_validation=True)
        except (ValueError, TypeError):
            raise ValueError("is not an unencrypted PEM-encoded private key") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("must be an RSA key (GitHub signs app JWTs with RS256)")
        return value


class AwsAccessKeysCredential(CredentialModel):
    """Long-lived AWS access keys (optionally with a session token)."""

    type: Literal["aws_access_keys"] = "aws_access_keys"
    access_key_id: SecretStr
    secret_access_key: SecretStr
    session_token: SecretStr | None = None
    region: str | None = None

    public_fields: ClassVar[tuple[str, ...]] = ("region",)


class AwsAssumeRoleCredential(CredentialModel):
    """An IAM role assumed through STS, renewed before its temporary keys expire.

    The source keys are optional: without them the default AWS credential chain of the
    process assumes the role.
    """

    type: Literal["aws_assume_role"] = "aws_assume_role"
    role_arn: str
    session_name: str = Field(default="integrations", min_length=2, max_length=64, pattern=r"^[\w+=,.@-]+$")
    external_id: SecretStr | None = None
    duration_seconds: int = Field(default=3600, ge=900, le=43200)
    region: str | None = None
    sts_endpoint_url: str | None = None
    source_access_key_id: SecretStr | None = None
    source_secret_access_key: SecretStr | None = None
    source_session_token: SecretStr | None = None

    public_fields: ClassVar[tuple[str, ...]] = ("role_arn", "session_name", "region", "duration_seconds")

    @field_validator("role_arn")
    @classmethod
    def _arn(cls, value: str) -> str:
        if not value.startswith("arn:") or ":role/" not in value:
            raise ValueError("must be an IAM role ARN like arn:aws:iam::123456789012:role/name")
        return value

    @model_validator(mode="after")
    def _pair(self) -> "AwsAssumeRoleCredential":
        if (self.source_access_key_id is None) != (self.source_secret_access_key is None):
            raise ValueError("source_access_key_id and source_secret_access_key go together")
        return self


_SERVICE_ACCOUNT_PARTS = ("client_email", "private_key")


class ServiceAccountCredential(CredentialModel):
    """A service-account JSON key (Google-style: client_email, private_key, token_uri...)."""

    type: Literal["service_account"] = "service_account"
    key: SecretStr = Field(description="The JSON key file's content.")

    @field_validator("key", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            data = dict(value)
        else:
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if not isinstance(text, str):
                raise ValueError("must be a JSON object")
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"is not valid JSON (line {err.lineno} column {err.colno})") from None
        if not isinstance(data, dict):
            raise ValueError("must be a JSON object")
        missing = [part for part in _SERVICE_ACCOUNT_PARTS if not data.get(part)]
        if missing:
            raise ValueError(f"is missing {', '.join(repr(p) for p in missing)}")
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def key_data(self) -> dict[str, Any]:
        return json.loads(self.key.get_secret_value())

    def metadata(self) -> dict[str, Any]:
        data = self.key_data()
        return {k: data[k] for k in ("client_email", "project_id") if data.get(k)}


class WebhookSecretCredential(CredentialModel):
    """The shared secret a service signs its webhook deliveries with."""

    type: Literal["webhook_secret"] = "webhook_secret"
    secret: SecretStr

    bare_secret_field: ClassVar[str | None] = "secret"


Credential = Annotated[
    Union[ApiKeyCredential, OAuth2Credential, GitHubPatCredential, GitHubAppCredential, AwsAccessKeysCredential,
          AwsAssumeRoleCredential, ServiceAccountCredential, WebhookSecretCredential],
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Credential)


@dataclass(frozen=True)
class CredentialType:
    """One entry of the registry: a type's name, model, and which parts it needs."""

    name: str
    model: type[CredentialModel]

    @property
    def required_parts(self) -> tuple[str, ...]:
        return tuple(n for n, f in self.model.model_fields.items() if f.is_required() and n != "type")

    @property
    def optional_parts(self) -> tuple[str, ...]:
        return tuple(n for n, f in self.model.model_fields.items() if not f.is_required() and n != "type")

    @property
    def secret_parts(self) -> tuple[str, ...]:
        return tuple(n for n, f in self.model.model_fields.items() if "SecretStr" in str(f.annotation))

    @property
    def description(self) -> str:
        return (self.model.__doc__ or "").strip().splitlines()[0]


CREDENTIAL_TYPES: dict[str, CredentialType] = {
    model.model_fields["type"].default: CredentialType(model.model_fields["type"].default, model)
    for model in (ApiKeyCredential, OAuth2Credential, GitHubPatCredential, GitHubAppCredential,
                  AwsAccessKeysCredential, AwsAssumeRoleCredential, ServiceAccountCredential,
                  WebhookSecretCredential)
}


def credential_type(name: str) -> CredentialType:
    """The registry entry for `name`; an unknown name lists the valid ones and the likely slip."""
    try:
        return CREDENTIAL_TYPES[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), CREDENTIAL_TYPES, n=1)
        guess = f"; did you mean '{close[0]}'?" if close else ""
        raise CredentialError(f"unknown credential type '{name}'{guess}",
                              hint=f"valid types: {', '.join(CREDENTIAL_TYPES)}") from None


def parse_credential(type_name: str, data: Mapping[str, Any] | str) -> CredentialModel:
    """Build a credential of `type_name` from a JSON object (or a bare secret for one-secret types).

    Errors name the type and the missing or invalid part; they never contain a submitted value.
    """
    ctype = credential_type(type_name)
    if isinstance(data, str):
        if ctype.model.bare_secret_field is None:
            raise CredentialError(
                f"{_a(type_name)} credential needs a JSON object, not a bare value",
                hint=f"give a JSON object with {_parts_text(ctype)}")
        data = {ctype.model.bare_secret_field: data}
    if not isinstance(data, Mapping):
        raise CredentialError(f"{_a(type_name)} credential must be a JSON object",
                              hint=f"give a JSON object with {_parts_text(ctype)}")
    payload = dict(data)
    if type_name == "service_account" and "key" not in payload and "private_key" in payload:
        payload = {"key": payload}  # the key file itself was given
    given_type = payload.setdefault("type", type_name)
    if given_type != type_name:
        raise CredentialError(f"the input says type '{given_type}' but '{type_name}' was asked for", field="type")
    return _validate(payload, context=type_name)


def credential_from_plaintext(data: Mapping[str, Any]) -> CredentialModel:
    """A decrypted payload back as its model (the type tag is inside)."""
    return _validate(dict(data), context=str(data.get("type")))


def _validate(payload: dict[str, Any], *, context: str) -> CredentialModel:
    try:
        return _ADAPTER.validate_python(payload)
    except ValidationError as err:
        raise _credential_error(err, context) from None


def _credential_error(err: ValidationError, type_name: str) -> CredentialError:
    """Turn pydantic's errors into one message naming parts, never values."""
    ctype = CREDENTIAL_TYPES.get(type_name)
    missing: list[str] = []
    problems: list[str] = []
    for item in err.errors(include_url=False, include_input=False, include_context=False):
        loc = [str(p) for p in item["loc"] if str(p) != type_name]
        part = ".".join(loc)
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            missing.append(part)
        elif item["type"] == "extra_forbidden":
            problems.append(f"unknown part '{part}'")
        elif not part:  # a rule about several parts
            problems.append(msg)
        else:
            problems.append(f"'{part}' {msg[0].lower() + msg[1:] if msg else 'is invalid'}")
    pieces = []
    if missing:
        pieces.append(f"missing {', '.join(repr(m) for m in missing)}")
    pieces.extend(problems)
    return CredentialError(f"{type_name} credential: {'; '.join(pieces)}",
                           hint=f"{_a(type_name)} credential has {_parts_text(ctype)}" if ctype else None)


def _a(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def _parts_text(ctype: CredentialType) -> str:
    text = f"required parts {', '.join(ctype.required_parts)}"
    if ctype.optional_parts:
        text += f" (optional: {', '.join(p for p in ctype.optional_parts)})"
    return text


def validate_for_plugin(credential: CredentialModel | Mapping[str, Any], accepted: Iterable[str], *,
                        plugin: str | None = None, name: str | None = None) -> CredentialModel:
    """Check a credential against the types a plugin accepts; returns the parsed credential.

    A mapping is parsed first, so a missing part is named; a type the plugin does not accept is
    refused with the list of types it does.
    """
    accepted = tuple(accepted)
    for type_name in accepted:
        credential_type(type_name)  # a plugin declaring an unknown type is a bug worth naming
    if isinstance(credential, Mapping):
        type_name = credential.get("type")
        if not type_name:
            raise CredentialError("the credential has no 'type'", field="type",
                                  hint=f"{plugin or 'the plugin'} accepts {', '.join(accepted)}")
        credential = parse_credential(str(type_name), credential)
    who = f"plugin '{plugin}'" if plugin else "the plugin"
    label = f"credential '{name}'" if name else "the credential"
    if credential.type not in accepted:
        raise CredentialError(f"{who} does not accept {label} of type {credential.type}",
                              field="type", hint=f"{who} accepts: {', '.join(accepted)}")
    return credential
