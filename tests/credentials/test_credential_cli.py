"""`integrations credentials ...` end to end through main(), on a tmp store and key file."""

from __future__ import annotations

import json
import os
import stat

import pytest

from integrations.credentials import CredentialManager, EnvironmentMasterKeys, MasterKey, StaticMasterKeys
from integrations.store import EventStore

SECRET = "ghp_cli_secret_value_0123456789"


@pytest.fixture
def paths(tmp_path):
    return {"db": str(tmp_path / "store.duckdb"), "key": str(tmp_path / "data" / "master.key")}


def opts(paths, *extra):
    return ["--db", paths["db"], *extra]


def keyed(paths, *extra):
    return ["--db", paths["db"], "--key-file", paths["key"], *extra]


def test_set_from_stdin_then_list_test_and_delete(cli, paths):
    result = cli("credentials", "set", *keyed(paths, "--tenant", "acme", "--plugin", "github", "--name", "pat",
                                              "--type", "github_pat"), input=SECRET + "\n")
    assert result.code == 0, result
    assert result.out.strip() == "stored github_pat credential 'pat' for plugin 'github' of tenant 'acme' (data key v1)"
    assert "LOCAL USE ONLY" in result.err  # the first set created the local master key
    assert stat.S_IMODE(os.stat(paths["key"]).st_mode) == 0o600

    listed = cli("credentials", "list", *opts(paths, "--tenant", "acme", "--json"))
    [row] = listed.json_lines()
    assert {k: row[k] for k in ("plugin", "name", "type", "key_version")} == \
        {"plugin": "github", "name": "pat", "type": "github_pat", "key_version": 1}
    assert "ciphertext" not in row
    table = cli("credentials", "list", *opts(paths, "--tenant", "acme"))
    assert "github_pat" in table.out and "base_url=https://api.github.com" in table.out

    tested = cli("credentials", "test", *keyed(paths, "--tenant", "acme", "--plugin", "github", "--name", "pat",
                                               "--accept", "github_pat", "--accept", "github_app"))
    assert tested.code == 0 and tested.out.startswith("ok: github_pat credential 'pat' of plugin 'github'")

    refused = cli("credentials", "test", *keyed(paths, "--tenant", "acme", "--plugin", "github", "--name", "pat",
                                                "--accept", "github_app"))
    assert refused.code == 1 and "plugin 'github' does not accept credential 'pat' of type github_pat" in refused.err

    assert cli("credentials", "delete", *opts(paths, "--tenant", "acme", "--plugin", "github", "--name", "pat")).code == 0
    gone = cli("credentials", "delete", *opts(paths, "--tenant", "acme", "--plugin", "github", "--name", "pat"))
    assert gone.code == 1 and "has no credential 'pat'" in gone.err
    for result in (result, listed, table, tested, refused, gone):
        assert SECRET not in result.out + result.err


def test_set_takes_a_json_object_and_non_secret_parts_as_options(cli, paths, app_key):
    result = cli("credentials", "set", *keyed(paths, "--tenant", "acme", "--plugin", "github", "--name", "app",
                                              "--type", "github_app", "--part", "app_id=123",
                                              "--part", "installation_id=456"), input=app_key.private_pem)
    assert result.code == 0, result
    [row] = cli("credentials", "list", *opts(paths, "--tenant", "acme", "--json")).json_lines()
    assert row["metadata"] == {"app_id": "123", "installation_id": 456, "base_url": "https://api.github.com"}


def test_secret_parts_are_refused_on_the_command_line(cli, paths):
    result = cli("credentials", "set", *keyed(paths, "--tenant", "acme", "--plugin", "x", "--name", "k",
                                              "--type", "api_key", "--part", f"key={SECRET}"), input="")
    assert result.code == 2
    assert "--part key: secret parts are never taken from the command line" in result.err
    assert SECRET not in result.err and not os.path.exists(paths["db"])


def test_an_incomplete_credential_names_the_missing_part_and_never_the_secret(cli, paths):
    payload = json.dumps({"token_url": "https://idp.example/token", "client_secret": SECRET})
    result = cli("credentials", "set", *keyed(paths, "--tenant", "acme", "--plugin", "jira", "--name", "o",
                                              "--type", "oauth2"), input=payload)
    assert result.code == 1
    assert "oauth2 credential: missing 'client_id', 'refresh_token'" in result.err
    assert SECRET not in result.out + result.err
    bad_json = cli("credentials", "set", *keyed(paths, "--tenant", "acme", "--plugin", "jira", "--name", "o",
                                                "--type", "oauth2"), input='{"client_secret": "' + SECRET)
    assert "stdin is not a valid JSON object (line 1 column" in bad_json.err and SECRET not in bad_json.err
    empty = cli("credentials", "set", *keyed(paths, "--tenant", "acme", "--plugin", "jira", "--name", "o",
                                             "--type", "github_pat"), input="")
    assert "no github_pat credential on stdin" in empty.err


def test_a_world_readable_key_file_is_refused_with_the_chmod_fix(cli, paths):
    cli("credentials", "set", *keyed(paths, "--tenant", "acme", "--plugin", "github", "--name", "pat",
                                     "--type", "github_pat"), input=SECRET)
    os.chmod(paths["key"], 0o644)
    result = cli("credentials", "test", *keyed(paths, "--tenant", "acme", "--plugin", "github", "--name", "pat"))
    assert result.code == 1
    assert "accessible to other users (mode 0644)" in result.err
    assert f"hint: chmod 600 {paths['key']}" in result.err


def test_rotate_tenant_and_rotate_master_from_the_command_line(cli, paths, tmp_path):
    for name in ("a", "b"):
        cli("credentials", "set", *keyed(paths, "--tenant", "acme", "--plugin", "github", "--name", name,
                                         "--type", "github_pat"), input=f"{SECRET}-{name}")
    rotated = cli("credentials", "rotate-tenant", *keyed(paths, "--tenant", "acme"))
    assert rotated.out.strip() == "re-encrypted 2 credential(s) of tenant 'acme' under data key v2; retired v1"
    nothing = cli("credentials", "rotate-tenant", *keyed(paths, "--tenant", "nobody"))
    assert "nothing to rotate" in nothing.out

    old_path = tmp_path / "master.key.old"
    os.rename(paths["key"], old_path)
    missing_old = cli("credentials", "rotate-master", *keyed(paths))
    assert missing_old.code == 1 and "not given" in missing_old.err and "--old-key-file" in missing_old.err
    result = cli("credentials", "rotate-master", *keyed(paths, "--old-key-file", str(old_path)))
    assert result.code == 0, result
    assert result.out.strip() == "re-wrapped 2 data key(s) across 1 tenant(s); 0 already under the current master key"
    again = cli("credentials", "rotate-master", *keyed(paths, "--old-key-file", str(old_path)))
    assert "re-wrapped 0 data key(s) across 1 tenant(s); 2 already" in again.out

    new_only = CredentialManager(EventStore(paths["db"]), EnvironmentMasterKeys(key_file=paths["key"], environ={}))
    assert new_only.get("acme", "github", "a").token.get_secret_value() == f"{SECRET}-a"


def test_the_master_key_can_come_from_the_environment(cli, paths, monkeypatch):
    key = MasterKey.generate()
    monkeypatch.setenv("INTEGRATIONS_MASTER_KEY", key.to_text())
    result = cli("credentials", "set", *keyed(paths, "--tenant", "acme", "--plugin", "github", "--name", "pat",
                                              "--type", "github_pat"), input=SECRET)
    assert result.code == 0 and "LOCAL USE ONLY" not in result.err and not os.path.exists(paths["key"])
    manager = CredentialManager(EventStore(paths["db"]), StaticMasterKeys(key))
    assert manager.get("acme", "github", "pat").token.get_secret_value() == SECRET
