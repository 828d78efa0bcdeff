"""A plugin from a separate distribution appears in the registry and runs, with no change to core code.

The example distribution in `tests/plugins/example_plugin_dist/` is built and installed at test
time into a throw-away folder (never into the project's .venv), then the real `integrations`
command runs in a subprocess with that folder on its path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import ROOT

DIST = Path(__file__).parent / "example_plugin_dist"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("plugin-dist")
    source = work / "src"
    shutil.copytree(DIST, source)
    site = work / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--target", str(site), str(source)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return site


def integrations(site: Path, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "integrations", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_the_installed_plugin_is_registered_and_the_broken_ones_are_refused(plugin_site):
    proc = integrations(plugin_site, "plugins", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    listing = json.loads(proc.stdout)
    found = {(p["name"], p["version"]): p for p in listing["plugins"]}
    assert {"github", "cloudwatch"} <= {name for name, _version in found}
    assert {("hello", "1.2.0"), ("hello", "0.9.0")} <= set(found)
    hello = found[("hello", "1.2.0")]
    assert hello["distribution"] == "hello-integration" and hello["author"] == "Example Author"
    assert hello["configuration_schema"]["properties"]["names"]["type"] == "array"
    refused = {p["entry_point"].split(" = ")[0]: p["message"] for p in listing["refused"]}
    assert "does not implement: fetch_data(), health_check()" in refused["broken"]
    assert "failed to import" in refused["missing"]


def test_the_installed_plugin_runs_with_a_pinned_version(plugin_site, tmp_path):
    (tmp_path / "tenants").mkdir()
    (tmp_path / "tenants" / "demo.yaml").write_text(
        "tenant: demo\nintegrations:\n  hello:\n    version: '>=1,<2'\n    settings: {names: [ada, grace, linus]}\n"
        "    sources:\n      - {name: greetings, mode: poll}\n")
    (tmp_path / "mappings" / "hello").mkdir(parents=True)
    (tmp_path / "mappings" / "hello" / "greetings.yaml").write_text(
        "plugin: hello\nsource: greetings\noutputs:\n  - kind: greeting\n    event_type: system\n    fields:\n"
        "      external_id: to_string(id)\n      occurred_at: at\n      title: \"format('hello {}', name)\"\n")
    db = tmp_path / "store.duckdb"
    proc = integrations(plugin_site, "run", "--db", str(db), "--tenants-dir", str(tmp_path / "tenants"),
                        "--mappings", str(tmp_path / "mappings"), "--samples", str(tmp_path / "none"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    conn = duckdb.connect(str(db), read_only=True)
    titles = sorted(r[0] for r in conn.execute("SELECT title FROM events WHERE tenant_id = 'demo'").fetchall())
    watermark = conn.execute("SELECT value FROM watermarks WHERE plugin = 'hello'").fetchall()
    conn.close()
    assert titles == ["hello ada", "hello grace", "hello linus"]
    assert watermark == [("3",)]
