"""Roles, audit, deletion and retention of tenants (Property 9 and the tenant lifecycle)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.errors import ConfigError
from integrations.mapping import PythonEngine, load_mapping
from integrations.store import EventStore
from integrations.store._tenants import list_audit, purge_older_than, tenant_tables
from integrations.tenants import PermissionDenied, TenantAdmin
from tests.mapping.conftest import PUSH, push_record


@pytest.fixture
def admin(tmp_path: Path) -> TenantAdmin:
    admin = TenantAdmin(EventStore(tmp_path / "store.duckdb"), tmp_path / "tenants")
    admin.create("demo", "alice")
    admin.set("demo", "alice", "roles.bob", "analyst")
    admin.set("demo", "alice", "roles.carol", "viewer")
    return admin


def test_create_makes_the_creator_admin_and_is_audited(admin):
    config = admin.load("demo")
    assert config.roles == {"alice": "admin", "bob": "analyst", "carol": "viewer"}
    actions = [r["action"] for r in list_audit(admin.store, "demo")]
    assert sorted(actions) == ["config.set", "config.set", "tenant.create"]


def test_only_admins_change_configuration(admin):
    before = admin.path("demo").read_bytes()
    audits = len(list_audit(admin.store, "demo"))
    for actor in ("bob", "carol", "mallory"):
        with pytest.raises(PermissionDenied) as info:
            admin.set("demo", actor, "integrations.github.rate_limits.requests_per_second", 5)
        assert "config.write needs admin" in str(info.value)
    assert admin.path("demo").read_bytes() == before
    assert len(list_audit(admin.store, "demo")) == audits
    diff = admin.set("demo", "alice", "integrations.github.rate_limits.requests_per_second", 5)
    assert "+      requests_per_second: 5" in diff
    assert admin.load("demo").integrations["github"].rate_limits.requests_per_second == 5


def test_viewers_read_and_strangers_do_not(admin):
    assert admin.show("demo", "carol")["tenant"] == "demo"
    with pytest.raises(PermissionDenied):
        admin.show("demo", "mallory")


def test_changes_are_validated_before_they_are_written(admin):
    with pytest.raises(ConfigError, match="integrations.github.settings.per_page"):
        admin.set("demo", "alice", "integrations.github.settings.per_page", 500)
    with pytest.raises(ConfigError, match="roles.dave"):
        admin.set("demo", "alice", "roles.dave", "owner")
    with pytest.raises(ConfigError, match="cannot be changed"):
        admin.set("demo", "alice", "tenant", "other")
    assert "github" not in admin.load("demo").integrations


def test_audit_diffs_redact_secret_looking_values(admin):
    admin.set("demo", "alice", "integrations.hello.settings", {"api_token": "s3cr3t-value", "names": ["x"]})
    record = list_audit(admin.store, "demo")[0]
    assert "s3cr3t-value" not in json.dumps(record, default=str)
    assert "api_token: '***'" in record["diff"]["diff"]


def test_cli_config_and_tenant_commands(cli, tmp_path):
    db, tdir = str(tmp_path / "s.duckdb"), str(tmp_path / "tenants")
    assert cli("tenant", "create", "acme", "--actor", "ann", "--tenants-dir", tdir, "--db", db).code == 0
    r = cli("config", "set", "--tenant", "acme", "retention_days", "30", "--actor", "ann", "--tenants-dir", tdir, "--db", db)
    assert r.code == 0 and "+retention_days: 30" in r.out
    r = cli("config", "set", "--tenant", "acme", "retention_days", "31", "--actor", "eve", "--tenants-dir", tdir, "--db", db)
    assert r.code == 3 and "has no role" in r.err
    r = cli("config", "history", "--tenant", "acme", "--json", "--actor", "ann", "--tenants-dir", tdir, "--db", db)
    assert [json.loads(line)["action"] for line in r.out.splitlines()] == ["config.set", "tenant.create"]
    assert "retention_days: 30" in cli("config", "show", "--tenant", "acme", "--actor", "ann", "--tenants-dir", tdir, "--db", db).out
    assert cli("tenant", "list", "--tenants-dir", tdir).out.split() == ["acme"]


keys = st.sampled_from(["retention_days", "description", "roles.zed", "integrations.hello.enabled",
                        "integrations.hello.rate_limits.requests_per_hour", "service_aliases.shop"])
values = {"retention_days": st.integers(1, 400), "description": st.text("abc ", max_size=8),
          "roles.zed": st.sampled_from(["admin", "analyst", "viewer"]), "integrations.hello.enabled": st.booleans(),
          "integrations.hello.rate_limits.requests_per_hour": st.integers(1, 5000),
          "service_aliases.shop": st.sampled_from(["checkout-api", "web"])}
change = st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["alice", "bob", "carol", "mallory"]), keys).flatmap(
    lambda t: st.tuples(st.just(t[0]), st.just(t[1]), st.just(t[2]), values[t[2]]))


@given(changes=st.lists(change, min_size=1, max_size=6))
@settings(max_examples=100, deadline=None)
def test_property_9_configuration_management(changes, tmp_path_factory):
    """Feature: integrations, Property 9: Configuration Management — random configuration changes by
    random roles: permission enforced, exactly one audit record per accepted change, other tenants
    untouched."""
    folder = tmp_path_factory.mktemp("p9")
    admin = TenantAdmin(EventStore(folder / "s.duckdb"), folder / "tenants")
    roles = {"alice": "admin", "bob": "analyst", "carol": "viewer"}
    for tenant in ("a", "b"):
        admin.create(tenant, "alice")
        admin.set(tenant, "alice", "roles", roles)
    def audits() -> dict[str, list[str]]:
        with admin.store.reader() as conn:
            rows = conn.execute("SELECT tenant_id, list(audit_id ORDER BY audit_id) FROM audit_log GROUP BY tenant_id")
            return {tenant: ids for tenant, ids in rows.fetchall()}

    files = {t: admin.path(t).read_bytes() for t in ("a", "b")}
    for tenant, actor, key, value in changes:
        other = "b" if tenant == "a" else "a"
        before = audits()
        role = admin.load(tenant).roles.get(actor)
        try:
            diff = admin.set(tenant, actor, key, value)
        except PermissionDenied:
            assert role != "admin"
            diff = ""
        else:
            assert role == "admin"
        after = audits()
        assert len(after[tenant]) == len(before[tenant]) + (1 if diff else 0)
        assert after[other] == before[other]
        assert admin.path(other).read_bytes() == files[other]
        files[tenant] = admin.path(tenant).read_bytes()


def _dump_other_tenants(store: EventStore, deleted: str) -> dict[str, list]:
    with store.reader() as conn:
        out = {}
        for table in tenant_tables(conn):
            cols = [r[0] for r in conn.execute(f"DESCRIBE {table}").fetchall()]
            rows = conn.execute(f"SELECT * FROM {table} WHERE tenant_id <> ? ORDER BY ALL", [deleted]).fetchall()
            out[table] = [json.dumps(dict(zip(cols, r)), default=str, sort_keys=True) for r in rows]
        return out


def test_deleting_a_tenant_removes_its_rows_and_leaves_the_others_byte_for_byte(tmp_path):
    store = EventStore(tmp_path / "s.duckdb")
    admin = TenantAdmin(store, tmp_path / "tenants")
    mapping = load_mapping(PUSH)
    for tenant in ("demo", "acme", "zeta"):
        admin.create(tenant, "root")
        result = PythonEngine().map(mapping, [push_record(3), {"commits": [{"id": "x"}]}], tenant_id=tenant)
        with store.transaction() as conn:
            store.upsert_events(result.events, conn=conn)
            store.add_dead_letters(tenant, "github", "push", [r.as_dict() for r in result.rejections], conn=conn)
            store.add_raw_records(tenant, "github", "push", [push_record(3)], conn=conn)
            store.set_watermarks(tenant, "github", "push", {"repo": "1"}, conn=conn)
            conn.execute("INSERT INTO credentials VALUES (?, 'github', 'token', 'github_pat', ?, 1, now(), NULL, NULL, NULL)",
                         [tenant, b"ciphertext"])
            conn.execute("INSERT INTO data_keys VALUES (?, 1, ?, 'master-1', now(), NULL)", [tenant, b"wrapped"])
        store.record_run({"run_id": "r", "tenant_id": tenant, "plugin": "github", "source": "push",
                          "started_at": datetime.now(timezone.utc), "status": "ok"})
    before = _dump_other_tenants(store, "acme")
    counts = admin.delete("acme", "root")
    assert counts["events"] == 3 and counts["credentials"] == 1 and counts["dead_letter"] == 1
    assert _dump_other_tenants(store, "acme") == before
    with store.reader() as conn:
        for table in tenant_tables(conn):
            left = conn.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = 'acme'").fetchall()[0][0]
            assert left == (1 if table == "audit_log" else 0), table
    assert [r["action"] for r in list_audit(store, "acme")] == ["tenant.delete"]
    assert not admin.path("acme").exists() and admin.path("demo").exists()


def test_retention_purges_old_events_and_raw_records(tmp_path):
    store = EventStore(tmp_path / "s.duckdb")
    events = PythonEngine().map(load_mapping(PUSH), [push_record(2)], tenant_id="demo").events
    other = PythonEngine().map(load_mapping(PUSH), [push_record(2)], tenant_id="acme").events
    store.upsert_events(events + other)
    now = datetime(2024, 5, 1, 10, 0, 30, tzinfo=timezone.utc) + timedelta(days=1)
    assert purge_older_than(store, "demo", 1, now=now) == {"events": 1, "raw_records": 0}
    assert store.count_events("demo") == 1 and store.count_events("acme") == 2



def test_a_star_role_is_everyone_elses_role(admin):
    admin.set("demo", "alice", "roles.*", "analyst")
    admin.record_mapping_save("demo", "a-stranger", "mappings/github/push.yaml", "+ a line")
    with pytest.raises(PermissionDenied):
        admin.set("demo", "a-stranger", "retention_days", 3)
