"""Every SQL statement on the `data_keys` and `credentials` tables. Each one names its tenant.

The functions take an open connection (from `EventStore.transaction()` or `reader()`), so a
caller groups them into one transaction. Only `tenants_with_data_keys()`, used by the master-key
rotation that by nature spans tenants, reads across tenants, and it returns tenant ids only.
Updates are compare-and-set on the version they expect, so a rotation that lost a race, or is
resumed, never overwrites newer work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb


@dataclass(frozen=True)
class DataKeyRow:
    tenant_id: str
    key_version: int
    wrapped_key: bytes
    master_key_id: str
    created_at: datetime
    retired_at: datetime | None

    def __repr__(self) -> str:  # the wrapped key is encrypted, but there is no reason to print it
        return (f"DataKeyRow(tenant_id={self.tenant_id!r}, key_version={self.key_version}, "
                f"master_key_id={self.master_key_id!r}, retired_at={self.retired_at!r})")


@dataclass(frozen=True)
class CredentialRow:
    tenant_id: str
    plugin: str
    name: str
    type: str
    ciphertext: bytes | None  # None when listing (metadata only)
    key_version: int
    created_at: datetime
    rotated_at: datetime | None
    expires_at: datetime | None
    metadata: dict[str, Any]

    def __repr__(self) -> str:
        return (f"CredentialRow(tenant_id={self.tenant_id!r}, plugin={self.plugin!r}, name={self.name!r}, "
                f"type={self.type!r}, key_version={self.key_version})")


_DATA_KEY_COLUMNS = "tenant_id, key_version, wrapped_key, master_key_id, created_at, retired_at"


def _data_key(row: tuple) -> DataKeyRow:
    return DataKeyRow(row[0], int(row[1]), bytes(row[2]), row[3], row[4], row[5])


# -- data keys ---------------------------------------------------------------------------------

def data_keys(conn: duckdb.DuckDBPyConnection, tenant_id: str) -> list[DataKeyRow]:
    """A tenant's data keys, oldest version first."""
    rows = conn.execute(f"SELECT {_DATA_KEY_COLUMNS} FROM data_keys WHERE tenant_id = ? ORDER BY key_version",
                        [tenant_id]).fetchall()
    return [_data_key(r) for r in rows]


def data_key(conn: duckdb.DuckDBPyConnection, tenant_id: str, key_version: int) -> DataKeyRow | None:
    row = conn.execute(f"SELECT {_DATA_KEY_COLUMNS} FROM data_keys WHERE tenant_id = ? AND key_version = ?",
                       [tenant_id, key_version]).fetchone()
    return _data_key(row) if row else None


def insert_data_key(conn: duckdb.DuckDBPyConnection, tenant_id: str, key_version: int, wrapped_key: bytes,
                    master_key_id: str, created_at: datetime) -> None:
    conn.execute("INSERT INTO data_keys (tenant_id, key_version, wrapped_key, master_key_id, created_at) "
                 "VALUES (?, ?, ?, ?, ?)", [tenant_id, key_version, wrapped_key, master_key_id, created_at])


def rewrap_data_key(conn: duckdb.DuckDBPyConnection, tenant_id: str, key_version: int, wrapped_key: bytes,
                    master_key_id: str, *, expected_master_key_id: str) -> bool:
    """Replace a wrapped key if it is still wrapped by `expected_master_key_id`; True if replaced."""
    row = conn.execute(
        "UPDATE data_keys SET wrapped_key = ?, master_key_id = ? "
        "WHERE tenant_id = ? AND key_version = ? AND master_key_id = ? RETURNING key_version",
        [wrapped_key, master_key_id, tenant_id, key_version, expected_master_key_id]).fetchone()
    return row is not None


def retire_data_keys(conn: duckdb.DuckDBPyConnection, tenant_id: str, *, keep_version: int,
                     retired_at: datetime) -> list[int]:
    """Mark a tenant's other data keys retired, unless a credential still uses them."""
    rows = conn.execute(
        "UPDATE data_keys SET retired_at = ? WHERE tenant_id = ? AND key_version <> ? AND retired_at IS NULL "
        "AND key_version NOT IN (SELECT key_version FROM credentials WHERE tenant_id = ?) RETURNING key_version",
        [retired_at, tenant_id, keep_version, tenant_id]).fetchall()
    return sorted(int(r[0]) for r in rows)


def tenants_with_data_keys(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Tenant ids only: the master-key rotation walks tenants one by one."""
    return [r[0] for r in conn.execute("SELECT DISTINCT tenant_id FROM data_keys ORDER BY tenant_id").fetchall()]


# -- credentials -------------------------------------------------------------------------------

_META_COLUMNS = "tenant_id, plugin, name, type, key_version, created_at, rotated_at, expires_at, metadata"


def _credential(row: tuple, ciphertext: bytes | None) -> CredentialRow:
    meta = row[8]
    if isinstance(meta, str):
        meta = json.loads(meta)
    return CredentialRow(row[0], row[1], row[2], row[3], ciphertext, int(row[4]), row[5], row[6], row[7],
                         meta or {})


def get_credential(conn: duckdb.DuckDBPyConnection, tenant_id: str, plugin: str, name: str) -> CredentialRow | None:
    row = conn.execute(f"SELECT {_META_COLUMNS}, ciphertext FROM credentials "
                       "WHERE tenant_id = ? AND plugin = ? AND name = ?", [tenant_id, plugin, name]).fetchone()
    return _credential(row[:9], bytes(row[9])) if row else None


def list_credentials(conn: duckdb.DuckDBPyConnection, tenant_id: str, plugin: str | None = None) -> list[CredentialRow]:
    """A tenant's credentials without their ciphertexts."""
    sql = f"SELECT {_META_COLUMNS} FROM credentials WHERE tenant_id = ?"
    params: list[Any] = [tenant_id]
    if plugin is not None:
        sql += " AND plugin = ?"
        params.append(plugin)
    rows = conn.execute(sql + " ORDER BY plugin, name", params).fetchall()
    return [_credential(r, None) for r in rows]


def credentials_not_under(conn: duckdb.DuckDBPyConnection, tenant_id: str, key_version: int,
                          limit: int = 100) -> list[tuple[str, str]]:
    """(plugin, name) of a tenant's credentials encrypted under another data key version."""
    rows = conn.execute("SELECT plugin, name FROM credentials WHERE tenant_id = ? AND key_version <> ? "
                        "ORDER BY plugin, name LIMIT ?", [tenant_id, key_version, limit]).fetchall()
    return [(r[0], r[1]) for r in rows]


def upsert_credential(conn: duckdb.DuckDBPyConnection, *, tenant_id: str, plugin: str, name: str, type_name: str,
                      ciphertext: bytes, key_version: int, now: datetime, expires_at: datetime | None,
                      metadata: dict[str, Any]) -> bool:
    """Insert, or replace an existing credential (keeping its created_at); True if it existed."""
    existed = conn.execute("SELECT 1 FROM credentials WHERE tenant_id = ? AND plugin = ? AND name = ?",
                           [tenant_id, plugin, name]).fetchone() is not None
    meta = json.dumps(metadata, sort_keys=True, default=str)
    if existed:
        conn.execute("UPDATE credentials SET type = ?, ciphertext = ?, key_version = ?, rotated_at = ?, "
                     "expires_at = ?, metadata = ? WHERE tenant_id = ? AND plugin = ? AND name = ?",
                     [type_name, ciphertext, key_version, now, expires_at, meta, tenant_id, plugin, name])
    else:
        conn.execute("INSERT INTO credentials (tenant_id, plugin, name, type, ciphertext, key_version, created_at, "
                     "rotated_at, expires_at, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                     [tenant_id, plugin, name, type_name, ciphertext, key_version, now, expires_at, meta])
    return existed


def reencrypt_credential(conn: duckdb.DuckDBPyConnection, tenant_id: str, plugin: str, name: str, *,
                         ciphertext: bytes, key_version: int, expected_key_version: int, rotated_at: datetime) -> bool:
    """Store a ciphertext under a new data key if the row is still under the expected one."""
    row = conn.execute(
        "UPDATE credentials SET ciphertext = ?, key_version = ?, rotated_at = ? "
        "WHERE tenant_id = ? AND plugin = ? AND name = ? AND key_version = ? RETURNING key_version",
        [ciphertext, key_version, rotated_at, tenant_id, plugin, name, expected_key_version]).fetchone()
    return row is not None


def delete_credential(conn: duckdb.DuckDBPyConnection, tenant_id: str, plugin: str, name: str) -> bool:
    row = conn.execute("DELETE FROM credentials WHERE tenant_id = ? AND plugin = ? AND name = ? RETURNING name",
                       [tenant_id, plugin, name]).fetchone()
    return row is not None
