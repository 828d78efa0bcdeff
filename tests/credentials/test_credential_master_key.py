"""The master key: from the environment, from a private file, or generated for local use."""

from __future__ import annotations

import base64
import io
import os
import stat

import pytest

from integrations.credentials import EnvironmentMasterKeys, MasterKey, create_key_file, read_key_file
from integrations.errors import CredentialError


def test_a_generated_key_file_is_private_and_comes_with_a_local_use_warning(tmp_path):
    path = tmp_path / "data" / "master.key"
    warnings = io.StringIO()
    key = EnvironmentMasterKeys(key_file=path, create=True, environ={}, warn_to=warnings).current()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "LOCAL USE ONLY" in warnings.getvalue() and str(path) in warnings.getvalue()
    assert key.to_text() not in warnings.getvalue()
    again = EnvironmentMasterKeys(key_file=path, create=True, environ={}, warn_to=warnings).current()
    assert again.key_id == key.key_id  # read back, not regenerated
    assert warnings.getvalue().count("LOCAL USE ONLY") == 1


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_key_file_others_can_read_is_refused_with_the_fix(tmp_path, mode):
    path = tmp_path / "master.key"
    create_key_file(path, warn_to=io.StringIO())
    os.chmod(path, mode)
    with pytest.raises(CredentialError) as info:
        read_key_file(path)
    assert f"accessible to other users (mode {mode:04o})" in str(info.value)
    assert info.value.hint == f"chmod 600 {path}"
    assert info.value.file == str(path)
    os.chmod(path, 0o600)
    assert read_key_file(path).key_id


def test_without_a_key_and_without_create_the_error_says_how_to_get_one(tmp_path):
    with pytest.raises(CredentialError) as info:
        EnvironmentMasterKeys(key_file=tmp_path / "none.key", environ={}).current()
    assert "INTEGRATIONS_MASTER_KEY is not set" in str(info.value)
    assert not (tmp_path / "none.key").exists()


def test_the_environment_wins_over_the_file_and_takes_base64_or_hex(tmp_path):
    raw = os.urandom(32)
    file_key = create_key_file(tmp_path / "master.key", warn_to=io.StringIO())
    for text in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(), raw.hex()):
        key = EnvironmentMasterKeys(key_file=tmp_path / "master.key", environ={"INTEGRATIONS_MASTER_KEY": text}).current()
        assert key.key.get_secret_value() == raw and key.key_id != file_key.key_id
        assert key.source == "INTEGRATIONS_MASTER_KEY"


def test_a_wrong_length_key_is_refused_without_echoing_it():
    text = base64.b64encode(b"short-key-material").decode()
    with pytest.raises(CredentialError) as info:
        MasterKey.from_text(text, "INTEGRATIONS_MASTER_KEY")
    assert "18 bytes; it must be 32" in str(info.value)
    assert text not in info.value.render()
    with pytest.raises(CredentialError, match="neither base64 nor hex"):
        MasterKey.from_text("not a key!", "INTEGRATIONS_MASTER_KEY")


def test_previous_keys_come_from_the_old_variable_and_old_key_files(tmp_path):
    old_file = create_key_file(tmp_path / "old.key", warn_to=io.StringIO())
    old_env = MasterKey.generate()
    keys = EnvironmentMasterKeys(key_file=tmp_path / "new.key", old_key_files=[tmp_path / "old.key"],
                                 environ={"INTEGRATIONS_MASTER_KEY_OLD": old_env.to_text()})
    assert [k.key_id for k in keys.previous()] == [old_env.key_id, old_file.key_id]


def test_a_master_keys_repr_shows_its_id_never_its_bytes():
    key = MasterKey.generate()
    for text in (repr(key), str(key), repr(key.key)):
        assert key.to_text() not in text and key.key.get_secret_value().hex() not in text
    assert key.key_id in repr(key)
    assert MasterKey.from_text(key.to_text(), "x").key_id == key.key_id
