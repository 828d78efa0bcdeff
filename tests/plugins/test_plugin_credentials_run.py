"""The runner hands a plugin the decrypted credentials its tenant file names, checked by type."""

from __future__ import annotations

from integrations.credentials import CredentialManager, EnvironmentMasterKeys, MasterKey, parse_credential
from integrations.plugins import AuthResult
from runner import RunOptions, run
from tests.plugins.conftest import GoodPlugin


class TokenPlugin(GoodPlugin):
    name = "tokened"
    required_credentials = ("github_pat",)

    async def authenticate(self, credentials):
        token = credentials.values["token"].token.get_secret_value()
        return AuthResult(ok=token == "ghp_right", message="" if token == "ghp_right" else "bad token")


def test_credentials_are_resolved_by_role_and_checked(tmp_path, monkeypatch, registry, plugin_mappings):
    monkeypatch.setenv("INTEGRATIONS_MASTER_KEY", MasterKey.generate().to_text())
    registry.register(TokenPlugin)
    (plugin_mappings / "tokened").mkdir()
    (plugin_mappings / "tokened" / "items.yaml").write_text(
        (plugin_mappings / "good" / "items.yaml").read_text().replace("plugin: good", "plugin: tokened"))
    store_path = tmp_path / "s.duckdb"
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "demo.yaml").write_text("tenant: demo\nintegrations:\n  tokened:\n    credentials: {token: gh}\n"
                                       "    sources:\n      - {name: items, mode: poll}\n")
    options = RunOptions(store_path=store_path, tenants=["demo"], mappings=plugin_mappings, tenants_dir=tenants,
                         registry=registry, engine="python")
    report = run(options)
    assert report.all_failed and "no credential 'gh'" in report.sources[0].error

    from integrations.store import EventStore

    manager = CredentialManager(EventStore(store_path), EnvironmentMasterKeys())
    manager.set("demo", "tokened", "gh", parse_credential("api_key", {"key": "k"}))
    report = run(options)
    assert "api_key" in report.sources[0].error and "github_pat" in report.sources[0].error

    manager.set("demo", "tokened", "gh", parse_credential("github_pat", {"token": "ghp_wrong"}))
    report = run(options)
    assert "needs credentials: bad token" in report.sources[0].error
    assert "ghp_wrong" not in report.sources[0].error

    manager.set("demo", "tokened", "gh", parse_credential("github_pat", {"token": "ghp_right"}))
    report = run(options)
    assert report.sources[0].status == "ok" and report.sources[0].events == 6
