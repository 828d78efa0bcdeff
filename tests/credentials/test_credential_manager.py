"""The credential manager against a real DuckDB file: storage, isolation, and both rotations."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pytest

from integrations.credentials import (
    CredentialManager,
    MasterKey,
    StaticMasterKeys,
    credential_aad,
    parse_credential,
)
from integrations.errors import CredentialError
from integrations.store import _credentials as sql

SECRET = "pat-0123456789-secret"


def pat(value: str = SECRET):
    return parse_credential("github_pat", value)


def rows(store, table: str) -> list[tuple]:
    with store.reader() as conn:
        return conn.execute(f"SELECT * FROM {table}").fetchall()


def test_set_get_list_delete(cred_store, keys, clock):
    manager = CredentialManager(cred_store, keys, clock=clock)
    info = manager.set("acme", "github", "main", pat())
    assert (info.type, info.key_version, info.rotated_at, info.created_at) == ("github_pat", 1, None, clock.now)
    assert manager.get("acme", "github", "main").token.get_secret_value() == SECRET

    clock.advance(hours=1)
    replaced = manager.set("acme", "github", "main", pat(SECRET + "-2"))
    assert replaced.created_at == info.created_at and replaced.rotated_at == clock.now
    assert manager.get("acme", "github", "main").token.get_secret_value() == SECRET + "-2"

    [listed] = manager.list("acme")
    assert listed.metadata == {"base_url": "https://api.github.com"}
    assert not hasattr(listed, "ciphertext")
    assert manager.delete("acme", "github", "main") is True
    assert manager.delete("acme", "github", "main") is False
    with pytest.raises(CredentialError, match="tenant 'acme' has no credential 'main' for plugin 'github'"):
        manager.get("acme", "github", "main")


def test_listing_needs_no_master_key_and_an_empty_store_lists_nothing(cred_store, keys, tmp_path):
    CredentialManager(cred_store, keys).set("acme", "github", "main", pat())

    class NoKey:
        def current(self):
            raise AssertionError("list must not need the master key")

        def previous(self):
            return ()

    assert [i.name for i in CredentialManager(cred_store, NoKey()).list("acme")] == ["main"]
    from integrations.store import EventStore

    empty = CredentialManager(EventStore(tmp_path / "absent.duckdb"), keys)
    assert empty.list("acme") == []
    with pytest.raises(CredentialError, match="has no credential"):
        empty.get("acme", "github", "main")
    assert not (tmp_path / "absent.duckdb").exists()


def test_a_tenant_never_sees_another_tenants_credentials(cred_store, keys):
    manager = CredentialManager(cred_store, keys)
    manager.set("acme", "github", "main", pat("acme-token-123"))
    manager.set("globex", "github", "other", pat("globex-token-456"))
    assert [i.name for i in manager.list("acme")] == ["main"]
    assert [i.name for i in manager.list("globex")] == ["other"]
    with pytest.raises(CredentialError, match="tenant 'globex' has no credential 'main'"):
        manager.get("globex", "github", "main")
    # each tenant has its own data key
    data_keys = rows(cred_store, "data_keys")
    assert sorted(r[0] for r in data_keys) == ["acme", "globex"]
    assert len({bytes(r[2]) for r in data_keys}) == 2


def test_names_with_the_aad_separator_are_refused(cred_store, keys):
    manager = CredentialManager(cred_store, keys)
    with pytest.raises(CredentialError, match="plugin must not contain control characters"):
        manager.set("acme", "git\x1fhub", "main", pat())
    with pytest.raises(CredentialError, match="tenant must be a non-empty name"):
        manager.list(" ")


def test_a_wrapped_data_key_copied_to_another_tenant_does_not_unwrap(cred_store, keys):
    manager = CredentialManager(cred_store, keys)
    manager.set("acme", "github", "main", pat("acme-token-123"))
    manager.set("globex", "github", "main", pat("globex-token-456"))
    with cred_store.transaction() as conn:
        wrapped = sql.data_key(conn, "acme", 1).wrapped_key
        conn.execute("UPDATE data_keys SET wrapped_key = ? WHERE tenant_id = 'globex'", [wrapped])
    with pytest.raises(CredentialError, match="cannot decrypt data key v1 of tenant 'globex'"):
        manager.get("globex", "github", "main")
    assert manager.get("acme", "github", "main").token.get_secret_value() == "acme-token-123"


def test_the_aad_binds_tenant_plugin_name_and_type():
    assert credential_aad("a", "github", "main", "github_pat") == b"a\x1fgithub\x1fmain\x1fgithub_pat"


# -- rotate-tenant ---------------------------------------------------------------------------


def seed(manager: CredentialManager, tenant: str, count: int) -> dict[str, str]:
    values = {f"cred{i}": f"{tenant}-secret-{i:04d}" for i in range(count)}
    for name, value in values.items():
        manager.set(tenant, "github", name, pat(value))
    return values


def test_rotate_tenant_reencrypts_under_a_new_data_key_and_retires_the_old(cred_store, keys, clock):
    manager = CredentialManager(cred_store, keys, clock=clock)
    acme = seed(manager, "acme", 3)
    seed(manager, "globex", 1)
    before = {r[2]: bytes(r[4]) for r in rows(cred_store, "credentials") if r[0] == "acme"}
    clock.advance(days=30)
    report = manager.rotate_tenant("acme")
    assert (report.done, report.key_version, report.retired_versions) == (3, 2, [1])
    for name, value in acme.items():
        assert manager.get("acme", "github", name).token.get_secret_value() == value
    after = {r[2]: (bytes(r[4]), r[5], r[7]) for r in rows(cred_store, "credentials") if r[0] == "acme"}
    assert all(after[n][0] != before[n] and after[n][1] == 2 and after[n][2] == clock.now for n in acme)
    # the other tenant was not touched
    assert [(r[0], r[1], r[5]) for r in rows(cred_store, "data_keys") if r[0] == "globex"] == [("globex", 1, None)]
    assert manager.rotate_tenant("acme").key_version == 3  # a finished rotation: the next one starts anew


def test_an_interrupted_rotate_tenant_keeps_everything_readable_and_is_resumed(cred_store, keys, monkeypatch):
    manager = CredentialManager(cred_store, keys)
    manager.REENCRYPT_BATCH = 2
    values = seed(manager, "acme", 5)
    real = sql.reencrypt_credential
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("power cut")
        return real(*args, **kwargs)

    monkeypatch.setattr(sql, "reencrypt_credential", failing)
    with pytest.raises(KeyboardInterrupt):
        manager.rotate_tenant("acme")
    monkeypatch.setattr(sql, "reencrypt_credential", real)

    versions = sorted(r[5] for r in rows(cred_store, "credentials"))
    assert versions == [1, 1, 1, 2, 2]  # the first batch committed, the second rolled back
    for name, value in values.items():  # old and new ciphertexts both read
        assert manager.get("acme", "github", name).token.get_secret_value() == value
    manager.set("acme", "github", "new", pat("written-mid-rotation"))  # new writes use the new key
    assert manager.list("acme")[-1].key_version == 2

    report = manager.rotate_tenant("acme")  # resumes the same rotation
    assert (report.key_version, report.done, report.retired_versions) == (2, 3, [1])
    assert {r[5] for r in rows(cred_store, "credentials")} == {2}
    for name, value in values.items():
        assert manager.get("acme", "github", name).token.get_secret_value() == value


def test_rotate_tenant_without_credentials_does_nothing(cred_store, keys):
    report = CredentialManager(cred_store, keys).rotate_tenant("nobody")
    assert report.key_version is None and report.done == 0


# -- rotate-master ---------------------------------------------------------------------------


def test_rotate_master_rewraps_every_data_key_and_the_old_key_is_then_not_needed(cred_store):
    old, new = MasterKey.generate(), MasterKey.generate()
    values = {t: seed(CredentialManager(cred_store, old), t, 2) for t in ("acme", "globex", "initech")}
    CredentialManager(cred_store, old).rotate_tenant("acme")  # acme has two data key versions

    report = CredentialManager(cred_store, StaticMasterKeys(new, [old])).rotate_master()
    assert (report.done, report.already, report.tenants) == (4, 0, ["acme", "globex", "initech"])
    assert {r[3] for r in rows(cred_store, "data_keys")} == {new.key_id}
    only_new = CredentialManager(cred_store, new)
    for tenant, creds in values.items():
        for name, value in creds.items():
            assert only_new.get(tenant, "github", name).token.get_secret_value() == value
    with pytest.raises(CredentialError, match="cannot decrypt data key"):
        _unwrap_with(cred_store, old)  # the old master key no longer opens anything


def _unwrap_with(store, key: MasterKey):
    """Unwrap acme's data key with `key` pretending it is the current one (ids aside)."""
    from integrations.credentials._crypto import unwrap_data_key

    with store.reader() as conn:
        row = sql.data_keys(conn, "acme")[-1]
    unwrap_data_key(key.key, row.wrapped_key, "acme", row.key_version)


def test_an_interrupted_rotate_master_keeps_credentials_readable_and_is_resumed(cred_store, monkeypatch):
    old, new = MasterKey.generate(), MasterKey.generate()
    values = {t: seed(CredentialManager(cred_store, old), t, 2) for t in ("acme", "globex", "initech")}
    rotating = CredentialManager(cred_store, StaticMasterKeys(new, [old]))
    real = sql.rewrap_data_key

    def failing(conn, tenant_id, *args, **kwargs):
        if tenant_id == "globex":
            raise KeyboardInterrupt("killed")
        return real(conn, tenant_id, *args, **kwargs)

    monkeypatch.setattr(sql, "rewrap_data_key", failing)
    with pytest.raises(KeyboardInterrupt):
        rotating.rotate_master()
    monkeypatch.setattr(sql, "rewrap_data_key", real)

    by_tenant = {r[0]: r[3] for r in rows(cred_store, "data_keys")}
    assert by_tenant == {"acme": new.key_id, "globex": old.key_id, "initech": old.key_id}
    for tenant, creds in values.items():  # mid-rotation, both generations of wrapping read
        for name, value in creds.items():
            assert rotating.get(tenant, "github", name).token.get_secret_value() == value
    # without the old key, the tenants not yet re-wrapped say what to do
    with pytest.raises(CredentialError) as info:
        CredentialManager(cred_store, new).get("globex", "github", "cred0")
    assert old.key_id in str(info.value) and "INTEGRATIONS_MASTER_KEY_OLD" in info.value.hint

    report = rotating.rotate_master()
    assert (report.done, report.already) == (2, 1)
    for tenant, creds in values.items():
        for name, value in creds.items():
            assert CredentialManager(cred_store, new).get(tenant, "github", name).token.get_secret_value() == value


def test_rotate_master_without_the_old_key_names_what_it_needs(cred_store):
    old, new = MasterKey.generate(), MasterKey.generate()
    seed(CredentialManager(cred_store, old), "acme", 1)
    with pytest.raises(CredentialError) as info:
        CredentialManager(cred_store, new).rotate_master()
    assert f"{old.key_id} (tenants acme)" in str(info.value)
    assert "--old-key-file" in info.value.hint


def test_rotations_are_compare_and_set(cred_store, keys):
    manager = CredentialManager(cred_store, keys)
    seed(manager, "acme", 1)
    with cred_store.transaction() as conn:
        assert not sql.reencrypt_credential(conn, "acme", "github", "cred0", ciphertext=b"x", key_version=9,
                                            expected_key_version=7, rotated_at=None)
        assert not sql.rewrap_data_key(conn, "acme", 1, b"x", "new", expected_master_key_id="not-this-one")
    assert manager.get("acme", "github", "cred0").token.get_secret_value().startswith("acme-secret")


def test_expiry_and_metadata_columns_are_filled_from_the_credential(cred_store, keys, clock):
    manager = CredentialManager(cred_store, keys, clock=clock)
    expires = clock.now + timedelta(days=90)
    manager.set("acme", "aws", "role", parse_credential("aws_assume_role", {
        "role_arn": "arn:aws:iam::123456789012:role/reader", "expires_at": expires.isoformat(),
        "source_access_key_id": "AKIAEXAMPLE1", "source_secret_access_key": "source-secret-value"}))
    [info] = manager.list("acme")
    assert info.expires_at == expires
    assert info.metadata == {"role_arn": "arn:aws:iam::123456789012:role/reader", "session_name": "integrations",
                             "duration_seconds": 3600}
    with duckdb.connect(str(cred_store.path), read_only=True) as conn:
        meta = conn.execute("SELECT metadata FROM credentials").fetchone()[0]
    assert "source-secret-value" not in meta and "AKIAEXAMPLE1" not in meta
