"""Property 2: no operation of one tenant reads or changes another's configuration, credentials or events."""

from __future__ import annotations

import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.credentials import CredentialManager, MasterKey, StaticMasterKeys, parse_credential
from integrations.errors import CredentialError
from integrations.mapping import PythonEngine, load_mapping
from integrations.store import EventStore
from integrations.store._tenants import tenant_tables
from integrations.tenants import TenantAdmin
from tests.mapping.conftest import PUSH, push_record

TENANTS = ("alpha", "beta", "gamma")
MAPPING = load_mapping(PUSH)
KEY = MasterKey.generate()

operations = st.lists(st.tuples(
    st.sampled_from(TENANTS),
    st.sampled_from(["events", "dead_letter", "watermark", "cred_set", "cred_get", "cred_delete", "config",
                     "read_events", "read_letters", "read_creds"]),
    st.integers(0, 3)), min_size=1, max_size=8)


def snapshot(store: EventStore, admin: TenantAdmin) -> dict:
    """A digest of everything the store and the tenant files hold, per tenant (one connection)."""
    out: dict = {t: {"file": admin.path(t).read_bytes()} for t in TENANTS}
    with store.reader() as conn:
        for table in tenant_tables(conn):
            rows = conn.execute(f"""SELECT tenant_id, count(*), md5(string_agg(CAST(t AS VARCHAR), '|'
                                    ORDER BY CAST(t AS VARCHAR))) FROM {table} t GROUP BY tenant_id""").fetchall()
            for tenant, count, digest in rows:
                out.setdefault(tenant, {})[table] = (count, digest)
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A store and tenant files with the three tenants created, copied for each example."""
    folder = tmp_path_factory.mktemp("p2-template")
    admin = TenantAdmin(EventStore(folder / "s.duckdb"), folder / "tenants")
    for tenant in TENANTS:
        admin.create(tenant, "root")
    return folder


@given(ops=operations)
@settings(max_examples=100, deadline=None)
def test_property_2_comprehensive_tenant_isolation(ops, template, tmp_path_factory):
    """Feature: integrations, Property 2: Comprehensive Tenant Isolation — random multi-tenant sequences of
    operations on configs, credentials and events: no operation of one tenant reads or changes another's."""
    folder = tmp_path_factory.mktemp("p2")
    shutil.copytree(template, folder, dirs_exist_ok=True)
    store = EventStore(folder / "s.duckdb")
    admin = TenantAdmin(store, folder / "tenants")
    creds = CredentialManager(store, StaticMasterKeys(KEY))
    state = snapshot(store, admin)
    for tenant, op, n in ops:
        if op == "events":
            result = PythonEngine().map(MAPPING, [push_record(n + 1)], tenant_id=tenant)
            store.upsert_events(result.events, source="push")
        elif op == "dead_letter":
            store.add_dead_letters(tenant, "github", "push", [{"record": {"n": n}, "reason": "bad"}])
        elif op == "watermark":
            with store.transaction() as conn:
                store.set_watermarks(tenant, "github", "push", {"repo": str(n)}, conn=conn)
        elif op == "cred_set":
            creds.set(tenant, "github", f"tok{n}", parse_credential("github_pat", {"token": f"ghp_{tenant}_{n}"}))
        elif op == "cred_get":
            try:
                got = creds.get(tenant, "github", f"tok{n}")
            except CredentialError:
                pass
            else:
                assert got.token.get_secret_value() == f"ghp_{tenant}_{n}"
        elif op == "cred_delete":
            creds.delete(tenant, "github", f"tok{n}")
        elif op == "config":
            admin.set(tenant, "root", "retention_days", n + 1)
        elif op == "read_events":
            assert all(e.tenant_id == tenant for e in store.query_events(tenant))
        elif op == "read_letters":
            assert all(r["tenant_id"] == tenant for r in store.list_dead_letters(tenant, status=None))
        elif op == "read_creds":
            assert all(info.tenant_id == tenant for info in creds.list(tenant))
        after = snapshot(store, admin)
        for other in TENANTS:
            if other != tenant:
                assert after[other] == state[other], f"{op} of {tenant} changed {other}"
        state = after


def test_a_credential_of_one_tenant_cannot_be_read_as_another(tmp_path):
    store = EventStore(tmp_path / "s.duckdb")
    creds = CredentialManager(store, StaticMasterKeys(KEY))
    creds.set("alpha", "github", "tok", parse_credential("github_pat", {"token": "ghp_alpha"}))
    with pytest.raises(CredentialError, match="no credential"):
        creds.get("beta", "github", "tok")
