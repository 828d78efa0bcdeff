"""Tenant configuration files: validated with file:line errors, one file per tenant."""

from __future__ import annotations

import pytest

from integrations.errors import ConfigError
from integrations.tenants import list_tenants, load_tenant_config, parse_tenant_config, samples_config

GOOD = """tenant: demo
roles: {alice: admin, bob: viewer}
integrations:
  github:
    version: ">=0.1,<1"
    settings: {repositories: [octo/checkout-api]}
    credentials: {token: github-token}
    rate_limits: {requests_per_second: 5}
    sources:
      - {name: push, mode: webhook}
      - {name: pull_request, mode: poll}
"""


def test_a_good_file_gives_plugin_configurations():
    config, _doc = parse_tenant_config(GOOD, "tenants/demo.yaml")
    (github,) = config.plugin_configurations()
    assert github.tenant_id == "demo" and github.plugin_name == "github" and github.version == ">=0.1,<1"
    assert [s.mode for s in github.sources] == ["webhook", "poll"]
    assert github.rate_limits.requests_per_second == 5


@pytest.mark.parametrize("change,line,needle", [
    (("mode: poll", "mode: pull"), 11, "sources.1.mode"),
    (("    version:", "    verison:"), 5, "unknown key 'verison'"),
    (("requests_per_second: 5", "requests_per_second: -1"), 8, "greater than 0"),
    (("tenant: demo", "tenant: Demo Co"), 1, "tenant ids are lower case"),
    (("bob: viewer", "bob: owner"), 2, "roles.bob"),
])
def test_errors_name_the_line(change, line, needle):
    with pytest.raises(ConfigError) as info:
        parse_tenant_config(GOOD.replace(*change), "tenants/demo.yaml")
    assert info.value.line == line, str(info.value)
    assert needle in str(info.value)
    assert str(info.value).startswith(f"tenants/demo.yaml:{line}:")


def test_the_file_name_must_match_the_tenant(tmp_path):
    (tmp_path / "acme.yaml").write_text(GOOD)
    with pytest.raises(ConfigError, match="named for tenant 'acme'"):
        load_tenant_config("acme", tmp_path)
    assert load_tenant_config("nobody", tmp_path) is None
    assert list_tenants(tmp_path) == ["acme"]


def test_a_tenant_without_a_file_runs_its_samples(tmp_path):
    (tmp_path / "demo" / "github").mkdir(parents=True)
    (tmp_path / "demo" / "github" / "push.jsonl").write_text("{}\n")
    (tmp_path / "demo" / "cloudwatch").mkdir()
    (tmp_path / "demo" / "cloudwatch" / "log_events.jsonl").write_text("{}\n")
    config = samples_config("demo", tmp_path)
    assert {c.plugin_name: [s.name for s in c.sources] for c in config.plugin_configurations()} == {
        "cloudwatch": ["log_events"], "github": ["push"]}
