"""Envelope encryption: a master key wraps per-tenant data keys; data keys encrypt credentials.

Both layers are AES-256-GCM with associated data, so a ciphertext only opens in the row it was
written for:

- a data key is wrapped with AAD `data-key \\x1f tenant \\x1f key_version`: a wrapped key copied to
  another tenant (or version) does not unwrap;
- a credential is encrypted with AAD `tenant \\x1f plugin \\x1f name \\x1f type`: a ciphertext
  copied to another tenant's, plugin's or credential's row, or relabelled with another type,
  fails to decrypt.

Layout of both blobs: one format byte (1), a 12-byte random nonce, then the GCM ciphertext and tag.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretBytes

from integrations.errors import CredentialError

FORMAT_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
SEPARATOR = "\x1f"


def check_label(kind: str, value: str) -> str:
    """Tenant ids, plugin and credential names: non-empty, and free of the AAD separator."""
    if not isinstance(value, str) or not value.strip():
        raise CredentialError(f"{kind} must be a non-empty name", field=kind)
    if SEPARATOR in value or "\x00" in value:
        raise CredentialError(f"{kind} must not contain control characters", field=kind)
    return value


def credential_aad(tenant_id: str, plugin: str, name: str, type_name: str) -> bytes:
    return SEPARATOR.join((tenant_id, plugin, name, type_name)).encode("utf-8")


def data_key_aad(tenant_id: str, key_version: int) -> bytes:
    return SEPARATOR.join(("data-key", tenant_id, str(key_version))).encode("utf-8")


def new_data_key() -> SecretBytes:
    return SecretBytes(AESGCM.generate_key(bit_length=KEY_BYTES * 8))


def seal(key: SecretBytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return bytes([FORMAT_VERSION]) + nonce + AESGCM(key.get_secret_value()).encrypt(nonce, plaintext, aad)


def open_sealed(key: SecretBytes, blob: bytes, aad: bytes, *, what: str) -> bytes:
    """Decrypt a blob from `seal`; any alteration, or the wrong key or row, is a CredentialError."""
    blob = bytes(blob)
    if len(blob) < 1 + NONCE_BYTES + 16 or blob[0] != FORMAT_VERSION:
        raise CredentialError(f"cannot decrypt {what}: the stored ciphertext is damaged or of an unknown format",
                              hint="set the credential again with `integrations credentials set`")
    nonce, body = blob[1:1 + NONCE_BYTES], blob[1 + NONCE_BYTES:]
    try:
        return AESGCM(key.get_secret_value()).decrypt(nonce, body, aad)
    except InvalidTag:
        raise CredentialError(
            f"cannot decrypt {what}: the ciphertext was altered, copied from another row, or encrypted "
            "with another key", hint="set the credential again with `integrations credentials set`") from None


def wrap_data_key(master: SecretBytes, data_key: SecretBytes, tenant_id: str, key_version: int) -> bytes:
    return seal(master, data_key.get_secret_value(), data_key_aad(tenant_id, key_version))


def unwrap_data_key(master: SecretBytes, wrapped: bytes, tenant_id: str, key_version: int) -> SecretBytes:
    raw = open_sealed(master, wrapped, data_key_aad(tenant_id, key_version),
                      what=f"data key v{key_version} of tenant '{tenant_id}'")
    return SecretBytes(raw)
