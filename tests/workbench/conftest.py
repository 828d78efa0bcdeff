"""A workbench over copies: mappings and tenants in tmp, a tmp store, an actor with the analyst role.

Nothing here writes into the repository: the mappings are copied and the workbench is pointed at
the copy through INTEGRATIONS_MAPPINGS.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ACTOR = "wb-tester"


@dataclass
class WorkbenchEnv:
    root: Path
    mappings: Path
    tenants: Path
    store: Path
    env: dict[str, str]


def make_workbench_env(root: Path) -> WorkbenchEnv:
    """Copies of the mappings, a `demo` tenant file granting ACTOR the analyst role, an empty store."""
    import yaml

    from integrations.store import EventStore
    from integrations.tenants import TenantAdmin

    mappings = root / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    tenants = root / "tenants"
    store = root / "store.duckdb"
    admin = TenantAdmin(EventStore(store), tenants)
    admin.create("demo", "wb-admin")
    admin.set("demo", "wb-admin", f"roles.{ACTOR}", "analyst")
    assert yaml.safe_load((tenants / "demo.yaml").read_text())["roles"][ACTOR] == "analyst"
    env = {"INTEGRATIONS_MAPPINGS": str(mappings), "INTEGRATIONS_TENANTS": str(tenants),
           "INTEGRATIONS_STORE": str(store), "INTEGRATIONS_ACTOR": ACTOR,
           "INTEGRATIONS_SAMPLES": str(ROOT / "data" / "samples")}
    return WorkbenchEnv(root, mappings, tenants, store, env)


@pytest.fixture
def workbench_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WorkbenchEnv:
    env = make_workbench_env(tmp_path)
    for name, value in env.env.items():
        monkeypatch.setenv(name, value)
    return env
