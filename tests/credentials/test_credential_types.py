"""Credential types: parsing, the registry of required parts, plugin acceptance, masked reprs."""

from __future__ import annotations

import json
import pickle

import pytest
from pydantic import SecretStr

from integrations.credentials import (
    CREDENTIAL_TYPES,
    GitHubAppCredential,
    credential_type,
    parse_credential,
    validate_for_plugin,
)
from integrations.errors import CredentialError

SECRET = "s3cr3t-value-that-must-never-show"


def test_the_registry_has_every_type_of_the_issue():
    assert set(CREDENTIAL_TYPES) == {"api_key", "oauth2", "github_pat", "github_app", "aws_access_keys",
                                     "aws_assume_role", "service_account", "webhook_secret"}
    assert credential_type("github_app").required_parts == ("app_id", "installation_id", "private_key")
    assert credential_type("github_app").secret_parts == ("private_key",)
    assert credential_type("oauth2").required_parts == ("token_url", "client_id", "refresh_token")
    assert set(credential_type("oauth2").secret_parts) == {"client_secret", "refresh_token", "access_token"}


def test_an_unknown_type_lists_the_valid_ones_and_guesses_the_slip():
    with pytest.raises(CredentialError) as info:
        credential_type("github-app")
    assert "did you mean 'github_app'" in str(info.value)
    assert "webhook_secret" in info.value.hint


def test_a_missing_part_is_named_and_no_value_is_echoed(app_key):
    with pytest.raises(CredentialError) as info:
        parse_credential("oauth2", {"token_url": "https://idp.example/token", "client_id": "cid",
                                    "client_secret": SECRET})
    text = info.value.render()
    assert "missing 'refresh_token'" in text
    assert "required parts token_url, client_id, refresh_token" in text
    assert SECRET not in text and SECRET not in repr(info.value)


def test_an_invalid_part_is_named_without_its_value():
    with pytest.raises(CredentialError) as info:
        parse_credential("github_app", {"app_id": 7, "installation_id": 9, "private_key": SECRET})
    assert "'private_key' is not an unencrypted PEM-encoded private key" in str(info.value)
    assert SECRET not in info.value.render()
    with pytest.raises(CredentialError) as info:
        parse_credential("api_key", {"key": SECRET, "kee": SECRET})
    assert "unknown part 'kee'" in str(info.value) and SECRET not in info.value.render()


def test_a_bare_secret_is_accepted_only_by_one_secret_types():
    assert parse_credential("github_pat", "ghp_" + SECRET).token.get_secret_value() == "ghp_" + SECRET
    assert parse_credential("webhook_secret", SECRET).secret.get_secret_value() == SECRET
    with pytest.raises(CredentialError, match="an oauth2 credential needs a JSON object"):
        parse_credential("oauth2", SECRET)


def test_a_service_account_key_file_can_be_given_as_is_and_its_missing_parts_are_named():
    key_file = {"type": "service_account", "project_id": "p1", "client_email": "bot@p1.iam.example",
                "private_key": SECRET, "token_uri": "https://oauth2.example/token"}
    cred = parse_credential("service_account", key_file)
    assert cred.key_data()["private_key"] == SECRET
    assert cred.metadata() == {"client_email": "bot@p1.iam.example", "project_id": "p1"}
    with pytest.raises(CredentialError) as info:
        parse_credential("service_account", {"key": {"client_email": "bot@p1.iam.example"}})
    assert "is missing 'private_key'" in str(info.value)


def test_aws_assume_role_names_a_half_given_source_key_pair():
    with pytest.raises(CredentialError, match="source_access_key_id and source_secret_access_key go together"):
        parse_credential("aws_assume_role", {"role_arn": "arn:aws:iam::123456789012:role/reader",
                                             "source_access_key_id": "AKIAEXAMPLE"})
    with pytest.raises(CredentialError, match="'role_arn' must be an IAM role ARN"):
        parse_credential("aws_assume_role", {"role_arn": "reader"})


def test_a_plugin_refuses_a_type_it_does_not_accept_and_names_what_it_accepts():
    accepted = ("github_pat", "github_app", "webhook_secret")
    cred = parse_credential("aws_access_keys", {"access_key_id": "AKIAEXAMPLE", "secret_access_key": SECRET})
    with pytest.raises(CredentialError) as info:
        validate_for_plugin(cred, accepted, plugin="github", name="main")
    assert "plugin 'github' does not accept credential 'main' of type aws_access_keys" in str(info.value)
    assert info.value.hint == "plugin 'github' accepts: github_pat, github_app, webhook_secret"
    assert validate_for_plugin(parse_credential("github_pat", SECRET), accepted).type == "github_pat"


def test_a_plugin_check_on_raw_input_names_the_missing_part():
    with pytest.raises(CredentialError, match="missing 'installation_id'"):
        validate_for_plugin({"type": "github_app", "app_id": 1}, ("github_app",), plugin="github")
    with pytest.raises(CredentialError, match="no 'type'"):
        validate_for_plugin({"token": SECRET}, ("github_pat",), plugin="github")
    with pytest.raises(CredentialError, match="unknown credential type 'gitlab_pat'"):
        validate_for_plugin(parse_credential("github_pat", SECRET), ("gitlab_pat",))


def test_reprs_strs_dumps_and_pickles_mask_secrets(app_key):
    creds = [
        parse_credential("github_app", {"app_id": 1, "installation_id": 2, "private_key": app_key.private_pem}),
        parse_credential("oauth2", {"token_url": "https://idp.example/t", "client_id": "c", "client_secret": SECRET,
                                    "refresh_token": SECRET + "r", "access_token": SECRET + "a"}),
        parse_credential("api_key", SECRET),
    ]
    key_line = app_key.private_pem.splitlines()[1]
    for cred in creds:
        for text in (repr(cred), str(cred), cred.model_dump_json(), json.dumps(cred.model_dump(mode="json")),
                     repr(cred.metadata())):
            assert SECRET not in text and key_line not in text
    assert isinstance(creds[0], GitHubAppCredential) and creds[0].app_id == "1"
    assert creds[1].reveal()["client_secret"] == SECRET  # only reveal() shows it, for encryption
    error = CredentialError("x", hint="y")
    assert pickle.loads(pickle.dumps(error)).hint == "y"


def test_input_may_name_its_type_but_not_another_one():
    assert parse_credential("github_pat", {"type": "github_pat", "token": SECRET}).type == "github_pat"
    with pytest.raises(CredentialError, match="says type 'api_key' but 'github_pat' was asked for"):
        parse_credential("github_pat", {"type": "api_key", "key": SECRET})
    assert isinstance(parse_credential("api_key", {"key": SecretStr(SECRET)}).key, SecretStr)


def test_the_package_exports_an_explicit_sorted_all():
    import integrations.credentials as package

    names = package.__all__
    assert all(hasattr(package, name) for name in names)
    constants = [n for n in names if n.isupper()]
    assert names == sorted(constants) + sorted(n for n in names if not n.isupper() and n[0].isupper()) + \
        sorted(n for n in names if n[0].islower())
