"""The credential manager: per-tenant encrypted storage, retrieval, renewal and key rotation.

Every operation names its tenant and touches only that tenant's rows. Writing uses the tenant's
newest data key (creating version 1 on first use); reading uses the data key version recorded on
the row, unwrapped by whichever master key (current or previous) wrapped it, so ciphertexts stay
readable in the middle of either rotation:

- `rotate_master()` re-wraps every data key still wrapped by an old master key, one tenant per
  transaction, skipping those already under the current key: run it again to resume.
- `rotate_tenant()` adds a data key version, re-encrypts the tenant's credentials under it in
  small batches (each a compare-and-set on the old version) and then retires the old versions;
  if interrupted, running it again finishes the same rotation instead of starting another.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import httpx
from pydantic import SecretBytes

from integrations.credentials._crypto import (
    check_label,
    credential_aad,
    new_data_key,
    open_sealed,
    seal,
    unwrap_data_key,
    wrap_data_key,
)
from integrations.credentials._master_key import EnvironmentMasterKeys, MasterKey, MasterKeyProvider, StaticMasterKeys
from integrations.credentials._providers import AwsSessionProvider, Clock, TokenProvider, provider_for, utcnow
from integrations.credentials._redact import install_secret_masking, register_secret
from integrations.credentials._types import (
    CredentialModel,
    OAuth2Credential,
    credential_from_plaintext,
    secret_values,
    validate_for_plugin,
)
from integrations.errors import CredentialError
from integrations.store import EventStore
from integrations.store import _credentials as sql


@dataclass(frozen=True)
class CredentialInfo:
    """What `list` shows: everything about a credential except its secret parts."""

    tenant_id: str
    plugin: str
    name: str
    type: str
    key_version: int
    created_at: datetime
    rotated_at: datetime | None
    expires_at: datetime | None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: sql.CredentialRow) -> CredentialInfo:
        return cls(row.tenant_id, row.plugin, row.name, row.type, row.key_version, row.created_at, row.rotated_at,
                   row.expires_at, dict(row.metadata))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RotationReport:
    """What a rotation did; `pending` is non-zero when it must be run again (or given a key)."""

    done: int = 0
    already: int = 0
    pending: int = 0
    key_version: int | None = None
    retired_versions: list[int] = field(default_factory=list)
    tenants: list[str] = field(default_factory=list)


class CredentialManager:
    """Stores credentials encrypted in the DuckDB store and hands them out per tenant."""

    REENCRYPT_BATCH = 50

    def __init__(self, store: EventStore, master_keys: MasterKeyProvider | MasterKey | None = None, *,
                 clock: Clock = utcnow, http: httpx.Client | None = None,
                 sts_endpoint_url: str | None = None) -> None:
        self.store = store
        if master_keys is None:
            master_keys = EnvironmentMasterKeys()
        elif isinstance(master_keys, MasterKey):
            master_keys = StaticMasterKeys(master_keys)
        self.master_keys: MasterKeyProvider = master_keys
        self.clock = clock
        self.http = http
        self.sts_endpoint_url = sts_endpoint_url
        self._providers: dict[tuple[str, str, str], TokenProvider | AwsSessionProvider | None] = {}
        self._lock = threading.Lock()
        install_secret_masking()

    def __repr__(self) -> str:
        return f"CredentialManager(store={str(self.store.path)!r})"

    # -- connections ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A read-only connection, or None when the store does not exist yet (nothing stored)."""
        if not self.store.path.exists():
            yield None
            return
        with self.store.reader() as conn:
            yield conn

    # -- keys ----------------------------------------------------------------------------------

    def _master_by_id(self, key_id: str, *, tenant_id: str) -> MasterKey:
        current = self.master_keys.current()
        if key_id == current.key_id:
            return current
        for key in self.master_keys.previous():
            if key.key_id == key_id:
                return key
        raise CredentialError(
            f"the data key of tenant '{tenant_id}' is wrapped by master key {key_id}, which is not available "
            f"(current master key is {current.key_id})",
            hint="give the previous master key in INTEGRATIONS_MASTER_KEY_OLD (or --old-key-file) and run "
                 "`integrations credentials rotate-master`")

    def _unwrap(self, row: sql.DataKeyRow) -> SecretBytes:
        master = self._master_by_id(row.master_key_id, tenant_id=row.tenant_id)
        return unwrap_data_key(master.key, row.wrapped_key, row.tenant_id, row.key_version)

    def _data_key(self, conn: duckdb.DuckDBPyConnection, tenant_id: str, version: int) -> SecretBytes:
        row = sql.data_key(conn, tenant_id, version)
        if row is None:
            raise CredentialError(f"data key v{version} of tenant '{tenant_id}' is missing from the store",
                                  hint="the store was edited by hand or restored partially; set the credential again")
        return self._unwrap(row)

    def _new_data_key(self, conn: duckdb.DuckDBPyConnection, tenant_id: str, version: int) -> SecretBytes:
        master = self.master_keys.current()
        key = new_data_key()
        sql.insert_data_key(conn, tenant_id, version, wrap_data_key(master.key, key, tenant_id, version),
                            master.key_id, self.clock())
        return key

    def _active_data_key(self, conn: duckdb.DuckDBPyConnection, tenant_id: str) -> tuple[int, SecretBytes]:
        """The tenant's newest data key (created on first use)."""
        keys = sql.data_keys(conn, tenant_id)
        if not keys:
            return 1, self._new_data_key(conn, tenant_id, 1)
        newest = keys[-1]
        return newest.key_version, self._unwrap(newest)

    # -- credentials ---------------------------------------------------------------------------

    def set(self, tenant_id: str, plugin: str, name: str, credential: CredentialModel) -> CredentialInfo:
        """Store (or replace) a credential, encrypted under the tenant's newest data key."""
        self._labels(tenant_id, plugin, name)
        if not isinstance(credential, CredentialModel):
            raise CredentialError("set() takes a parsed credential; use parse_credential() on input first")
        register_secret(*secret_values(credential))
        with self.store.transaction() as conn:
            self._write(conn, tenant_id, plugin, name, credential)
            row = sql.get_credential(conn, tenant_id, plugin, name)
        with self._lock:
            self._providers.pop((tenant_id, plugin, name), None)
        assert row is not None
        return CredentialInfo.from_row(row)

    def _write(self, conn: duckdb.DuckDBPyConnection, tenant_id: str, plugin: str, name: str,
               credential: CredentialModel) -> None:
        version, key = self._active_data_key(conn, tenant_id)
        plaintext = json.dumps(credential.reveal(), sort_keys=True, separators=(",", ":")).encode("utf-8")
        ciphertext = seal(key, plaintext, credential_aad(tenant_id, plugin, name, credential.type))
        sql.upsert_credential(conn, tenant_id=tenant_id, plugin=plugin, name=name, type_name=credential.type,
                              ciphertext=ciphertext, key_version=version, now=self.clock(),
                              expires_at=credential.expires_at, metadata=credential.metadata())

    def get(self, tenant_id: str, plugin: str, name: str, *,
            accepted: Iterable[str] | None = None) -> CredentialModel:
        """Decrypt a credential; with `accepted`, also check that the plugin takes its type."""
        self._labels(tenant_id, plugin, name)
        with self._reading() as conn:
            row = sql.get_credential(conn, tenant_id, plugin, name) if conn is not None else None
            if row is None:
                raise CredentialError(
                    f"tenant '{tenant_id}' has no credential '{name}' for plugin '{plugin}'",
                    hint=f"store one with `integrations credentials set --tenant {tenant_id} --plugin {plugin} "
                         f"--name {name} --type <type>`")
            credential = self._decrypt(conn, row)
        if accepted is not None:
            validate_for_plugin(credential, accepted, plugin=plugin, name=name)
        return credential

    def _decrypt(self, conn: duckdb.DuckDBPyConnection, row: sql.CredentialRow) -> CredentialModel:
        what = f"credential '{row.name}' of plugin '{row.plugin}' (tenant '{row.tenant_id}')"
        key = self._data_key(conn, row.tenant_id, row.key_version)
        assert row.ciphertext is not None
        plaintext = open_sealed(key, row.ciphertext, credential_aad(row.tenant_id, row.plugin, row.name, row.type),
                                what=what)
        try:
            data = json.loads(plaintext)
        except ValueError:
            raise CredentialError(f"{what} decrypted to unreadable data") from None
        credential = credential_from_plaintext(data)
        if credential.type != row.type:  # cannot happen with an intact AAD; checked anyway
            raise CredentialError(f"{what} is stored as {row.type} but holds a {credential.type}")
        register_secret(*secret_values(credential))
        return credential

    def info(self, tenant_id: str, plugin: str, name: str) -> CredentialInfo | None:
        """One credential's metadata, or None."""
        self._labels(tenant_id, plugin, name)
        with self._reading() as conn:
            if conn is None:
                return None
            for row in sql.list_credentials(conn, tenant_id, plugin):
                if row.name == name:
                    return CredentialInfo.from_row(row)
        return None

    def list(self, tenant_id: str, plugin: str | None = None) -> list[CredentialInfo]:
        """A tenant's credentials, metadata only: reading them needs no key."""
        check_label("tenant", tenant_id)
        with self._reading() as conn:
            if conn is None:
                return []
            return [CredentialInfo.from_row(r) for r in sql.list_credentials(conn, tenant_id, plugin)]

    def delete(self, tenant_id: str, plugin: str, name: str) -> bool:
        """Remove a credential; True if there was one."""
        self._labels(tenant_id, plugin, name)
        if not self.store.path.exists():
            return False
        with self.store.transaction() as conn:
            deleted = sql.delete_credential(conn, tenant_id, plugin, name)
        with self._lock:
            self._providers.pop((tenant_id, plugin, name), None)
        return deleted

    @staticmethod
    def _labels(tenant_id: str, plugin: str, name: str) -> None:
        check_label("tenant", tenant_id)
        check_label("plugin", plugin)
        check_label("name", name)

    # -- providers -----------------------------------------------------------------------------

    def provider(self, tenant_id: str, plugin: str, name: str, *,
                 accepted: Iterable[str] | None = None) -> TokenProvider | AwsSessionProvider | None:
        """The (cached) token provider of a credential: it keeps installation tokens and STS keys
        between calls and renews them before they expire; a refreshed OAuth token is stored back."""
        key = (tenant_id, plugin, name)
        with self._lock:
            if key in self._providers:
                return self._providers[key]
        credential = self.get(tenant_id, plugin, name, accepted=accepted)

        def store_refreshed(updated: OAuth2Credential) -> None:
            with self.store.transaction() as conn:
                self._write(conn, tenant_id, plugin, name, updated)

        made = provider_for(credential, http=self.http, clock=self.clock, sts_endpoint_url=self.sts_endpoint_url,
                            on_refresh=store_refreshed)
        with self._lock:
            return self._providers.setdefault(key, made)

    # -- rotation ------------------------------------------------------------------------------

    def rotate_master(self, old_keys: Iterable[MasterKey] | None = None) -> RotationReport:
        """Re-wrap every data key still wrapped by an old master key with the current one.

        Old keys default to the provider's previous keys. Data keys already under the current key
        are skipped, so an interrupted rotation is resumed by running it again.
        """
        current = self.master_keys.current()
        olds = {k.key_id: k for k in (self.master_keys.previous() if old_keys is None else old_keys)}
        report = RotationReport()
        missing: dict[str, set[str]] = {}
        with self._reading() as conn:
            tenants = sql.tenants_with_data_keys(conn) if conn is not None else []
        for tenant_id in tenants:
            with self.store.transaction() as conn:
                for row in sql.data_keys(conn, tenant_id):
                    if row.master_key_id == current.key_id:
                        report.already += 1
                        continue
                    old = olds.get(row.master_key_id)
                    if old is None:
                        missing.setdefault(row.master_key_id, set()).add(tenant_id)
                        report.pending += 1
                        continue
                    data_key = unwrap_data_key(old.key, row.wrapped_key, tenant_id, row.key_version)
                    wrapped = wrap_data_key(current.key, data_key, tenant_id, row.key_version)
                    if sql.rewrap_data_key(conn, tenant_id, row.key_version, wrapped, current.key_id,
                                           expected_master_key_id=row.master_key_id):
                        report.done += 1
            report.tenants.append(tenant_id)
        if missing:
            ids = ", ".join(f"{key_id} (tenants {', '.join(sorted(t))})" for key_id, t in sorted(missing.items()))
            raise CredentialError(
                f"re-wrapped {report.done} data key(s), but {report.pending} are wrapped by master key(s) that were "
                f"not given: {ids}",
                hint="give the old key in INTEGRATIONS_MASTER_KEY_OLD or --old-key-file and run rotate-master again")
        return report

    def rotate_tenant(self, tenant_id: str) -> RotationReport:
        """Re-encrypt a tenant's credentials under a new data key and retire the old ones.

        A rotation left unfinished (older keys not yet retired) is finished instead of starting a
        new one.
        """
        check_label("tenant", tenant_id)
        report = RotationReport(tenants=[tenant_id])
        if not self.store.path.exists():
            return report
        with self.store.transaction() as conn:
            keys = sql.data_keys(conn, tenant_id)
            if not keys:
                return report
            newest = keys[-1]
            unfinished = any(k.retired_at is None for k in keys[:-1])
            if unfinished:
                target = newest.key_version
            else:
                target = newest.key_version + 1
                self._new_data_key(conn, tenant_id, target)
        report.key_version = target
        while True:
            with self.store.transaction() as conn:
                batch = sql.credentials_not_under(conn, tenant_id, target, limit=self.REENCRYPT_BATCH)
                if not batch:
                    break
                new_key = self._data_key(conn, tenant_id, target)
                for plugin, name in batch:
                    row = sql.get_credential(conn, tenant_id, plugin, name)
                    if row is None:
                        continue
                    credential = self._decrypt(conn, row)
                    plaintext = json.dumps(credential.reveal(), sort_keys=True, separators=(",", ":")).encode("utf-8")
                    ciphertext = seal(new_key, plaintext, credential_aad(tenant_id, plugin, name, row.type))
                    if sql.reencrypt_credential(conn, tenant_id, plugin, name, ciphertext=ciphertext,
                                                key_version=target, expected_key_version=row.key_version,
                                                rotated_at=self.clock()):
                        report.done += 1
        with self.store.transaction() as conn:
            report.retired_versions = sql.retire_data_keys(conn, tenant_id, keep_version=target,
                                                           retired_at=self.clock())
        with self._lock:
            for key in [k for k in self._providers if k[0] == tenant_id]:
                self._providers.pop(key)
        return report
