"""Every notebook executed with papermill over a store built from the samples; its summary's numbers
checked against the same figures computed independently (SQL over the store, JMESPath over the samples)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import jmespath
import pytest

from integrations.cli import main

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory):
    """A store built by `integrations run` from the samples (demo and acme), and an output dir."""
    base = tmp_path_factory.mktemp("notebooks")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        for name in ("INTEGRATIONS_STORE", "INTEGRATIONS_ACTOR", "INTEGRATIONS_MAPPINGS", "INTEGRATIONS_SAMPLES",
                     "INTEGRATIONS_TENANTS", "INTEGRATIONS_MASTER_KEY"):
            mp.delenv(name, raising=False)
        mp.setenv("INTEGRATIONS_MASTER_KEY_FILE", str(base / "master.key"))
        mp.setenv("INTEGRATIONS_WEBHOOK_INBOX", str(base / "inbox.sqlite"))
        store = base / "store.duckdb"
        assert main(["run", "--db", str(store), "--tenant", "demo", "--tenant", "acme"]) in (0, 1)
        yield {"store": store, "out": base / "out", "base": base}


def _summary(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.summary.json").read_text(encoding="utf-8"))


# -- correlations: the DORA figures, recomputed in SQL -------------------------------------------

_FIGURES_SQL = """
WITH RECURSIVE
deps AS (
    SELECT attributes->>'deployment_id' AS dep, min(occurred_at) AS t, any_value(attributes->>'repository') AS repo,
           any_value(attributes->>'service') AS svc, any_value(attributes->>'sha') AS sha
    FROM events WHERE tenant_id = $tenant AND kind = 'deployment_status' AND attributes->>'state' = 'success'
      AND lower(attributes->>'environment') = 'production'
    GROUP BY 1),
commits AS (
    SELECT attributes->>'sha' AS sha, attributes->>'after' AS aft, attributes->>'before' AS bef,
           attributes->>'branch' AS branch, attributes->>'repository' AS repo, occurred_at AS t
    FROM events WHERE tenant_id = $tenant AND kind = 'commit'),
prs AS (
    SELECT DISTINCT attributes->>'repository' AS repo, attributes->>'merge_commit_sha' AS mc,
           attributes->>'head_ref' AS head_ref, attributes->>'head_sha' AS head_sha
    FROM events WHERE tenant_id = $tenant AND kind = 'pull_request' AND attributes->>'merged' = 'true'
      AND attributes->>'merge_commit_sha' IS NOT NULL),
heads(dep, head) AS (
    SELECT dep, sha FROM deps
    UNION
    SELECT h.dep, c.bef FROM heads h JOIN deps d ON d.dep = h.dep JOIN commits c ON c.repo = d.repo AND c.aft = h.head
    WHERE c.bef NOT IN (SELECT e.sha FROM deps e WHERE e.repo = d.repo AND e.t < d.t)),
shipped AS (
    SELECT h.dep, c.sha, c.t FROM heads h JOIN deps d ON d.dep = h.dep
      JOIN commits c ON c.repo = d.repo AND (c.sha = h.head OR c.aft = h.head)
    UNION
    SELECT h.dep, c.sha, c.t FROM heads h JOIN deps d ON d.dep = h.dep
      JOIN prs p ON p.repo = d.repo AND p.mc = h.head
      JOIN commits c ON c.repo = d.repo AND (c.branch = p.head_ref OR c.sha = p.head_sha)),
fresh AS (
    SELECT s.dep, s.t FROM shipped s JOIN deps d ON d.dep = s.dep
    WHERE NOT EXISTS (SELECT 1 FROM shipped s2 JOIN deps d2 ON d2.dep = s2.dep
                      WHERE s2.sha = s.sha AND d2.repo = d.repo AND d2.t < d.t)),
lead AS (SELECT d.dep, epoch(d.t - min(f.t)) AS seconds FROM deps d JOIN fresh f ON f.dep = d.dep GROUP BY d.dep, d.t),
failed AS (
    SELECT d.dep,
           EXISTS (SELECT 1 FROM events a WHERE a.tenant_id = $tenant AND a.kind = 'alarm'
                     AND a.attributes->>'new_state' = 'ALARM' AND a.attributes->>'service' = d.svc
                     AND a.occurred_at > d.t AND a.occurred_at <= d.t + INTERVAL 60 MINUTE)
        OR EXISTS (SELECT 1 FROM events s WHERE s.tenant_id = $tenant AND s.kind = 'deployment_status'
                     AND s.attributes->>'state' IN ('failure', 'error') AND lower(s.attributes->>'environment') = 'production'
                     AND s.attributes->>'service' = d.svc
                     AND s.occurred_at > d.t AND s.occurred_at <= d.t + INTERVAL 60 MINUTE) AS bad
    FROM deps d),
alarms AS (SELECT attributes->>'alarm_name' AS n, attributes->>'new_state' AS s, occurred_at AS t
           FROM events WHERE tenant_id = $tenant AND kind = 'alarm'),
firing AS (SELECT f.n, f.t, (SELECT min(o.t) FROM alarms o WHERE o.n = f.n AND o.s = 'OK' AND o.t > f.t) AS ok
           FROM alarms f WHERE f.s = 'ALARM'),
incidents AS (SELECT n, ok, min(t) AS start FROM firing WHERE ok IS NOT NULL GROUP BY n, ok)
SELECT (SELECT count(*) FROM deps),
       (SELECT median(seconds) FROM lead),
       (SELECT avg(CASE WHEN bad THEN 1.0 ELSE 0.0 END) FROM failed),
       (SELECT median(epoch(ok - start)) FROM incidents),
       (SELECT count(*) FROM incidents)
"""


def sql_figures(store: Path, tenant: str) -> tuple:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(_FIGURES_SQL, {"tenant": tenant}).fetchall()[0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def correlations_summary(workdir):
    """Executed through the CLI, as a person would: `integrations notebook run correlations`."""
    code = main(["notebook", "run", "correlations", "-p", "tenant", "demo", "-p", "store", str(workdir["store"]),
                 "-p", "window_minutes", "60", "--output-dir", str(workdir["out"])])
    assert code == 0
    return _summary(workdir["out"], "correlations")


def test_correlations_summary_matches_sql(workdir, correlations_summary) -> None:
    deployments, lead_median, cfr, restore_median, incidents = sql_figures(workdir["store"], "demo")
    s = correlations_summary
    assert s["deployments"] == deployments == 3
    assert s["lead_time_seconds"]["median"] == pytest.approx(lead_median)
    assert s["change_failure_rate"] == pytest.approx(float(cfr))
    assert s["time_to_restore_seconds"]["median"] == pytest.approx(restore_median)
    assert s["time_to_restore_seconds"]["count"] == incidents


def test_correlations_figures_follow_squash_merges_and_push_chains(correlations_summary) -> None:
    """The figures the samples were written to show (by hand): the squash-merged PR #41's branch commits
    count for checkout-api's first deployment; the push chain before payments-worker's deployed SHA counts."""
    by_dep = correlations_summary["lead_time_seconds"]["by_deployment"]
    assert by_dep == {"1290031": 3710.0, "1290044": 4988.0, "1290102": 929.0}
    assert correlations_summary["failed_deployments"] == ["1290044"]


def test_correlations_notebook_has_plots_and_summary_beside_it(workdir, correlations_summary) -> None:
    import nbformat

    executed = nbformat.read(workdir["out"] / "correlations.ipynb", as_version=4)
    images = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the timeline and the distributions
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)


def test_delivery_figures_match_sql_for_the_other_tenant(workdir) -> None:
    """The library the notebook calls, on acme (no second notebook run: they are slow)."""
    from integrations.analysis import DeliveryOptions, delivery_from_store

    summary = delivery_from_store(workdir["store"], DeliveryOptions.of("acme")).summary()
    deployments, lead_median, cfr, restore_median, incidents = sql_figures(workdir["store"], "acme")
    assert (summary["deployments"], summary["change_failure_rate"]) == (deployments, pytest.approx(float(cfr)))
    assert summary["lead_time_seconds"]["median"] == pytest.approx(lead_median)
    assert summary["time_to_restore_seconds"]["median"] == pytest.approx(restore_median)
    assert summary["time_to_restore_seconds"]["count"] == incidents == 2


# -- author_mapping: a field added, previewed and saved to a copy of the mappings ---------------


def test_author_mapping_saves_the_field_to_the_given_dir_and_audits(workdir) -> None:
    mappings = workdir["base"] / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    store = workdir["base"] / "author.duckdb"
    shutil.copy(workdir["store"], store)
    repo_text = (ROOT / "mappings/github/pull_request.yaml").read_text(encoding="utf-8")
    from integrations.analysis import run_notebook

    run_notebook("author_mapping", {"mappings_dir": str(mappings), "store": str(store), "tenant": "demo",
                                    "actor": "demo-admin"}, workdir["out"])
    summary = _summary(workdir["out"], "author_mapping")
    records = [json.loads(line) for line in (ROOT / "data/samples/demo/github/pull_request.jsonl").read_text().splitlines()
               if line.strip()]
    expected = sum(1 for r in records if jmespath.search("pull_request.review_comments", r) is not None)
    assert summary["set"] == expected and summary["events"] == len(records)
    assert summary["saved"] is True
    saved = (mappings / "github/pull_request.yaml").read_text(encoding="utf-8")
    assert "attributes.review_comments: pull_request.review_comments" in saved
    assert (ROOT / "mappings/github/pull_request.yaml").read_text(encoding="utf-8") == repo_text
    con = duckdb.connect(str(store), read_only=True)
    try:
        audits = con.execute("SELECT actor, action, target FROM audit_log WHERE action = 'mapping.save'").fetchall()
    finally:
        con.close()
    assert ("demo-admin", "mapping.save", str(mappings / "github/pull_request.yaml")) in audits


# -- mapping_coverage: fields set and rejections, recomputed with the Python engine -------------


def test_mapping_coverage_matches_the_reference_engine(workdir) -> None:
    from integrations.analysis import run_notebook
    from integrations.mapping import get_engine, load_mapping

    run_notebook("mapping_coverage", {"tenants": ["demo"]}, workdir["out"])
    summary = _summary(workdir["out"], "mapping_coverage")
    engine = get_engine("python")
    checked = 0
    for key, figures in summary["mappings"].items():
        tenant, plugin, source = key.split("/")
        mapping = load_mapping(ROOT / "mappings" / plugin / f"{source}.yaml")
        lines = (ROOT / "data/samples" / tenant / plugin / f"{source}.jsonl").read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        result = engine.map(mapping, records, tenant_id=tenant)
        assert figures["records"] == len(records), key
        assert figures["events"] == len(result.events), key
        assert figures["rejected"] == len(result.rejections), key
        reasons = sorted(r["reason"] for r in summary["rejections"] if r["mapping"] == key for _ in range(r["records"]))
        assert len(reasons) == len(result.rejections), key
        checked += 1
    assert checked >= 10
    # one field counted by hand: every deployment_status event sets attributes.state
    cov = summary["coverage"]["demo/github/deployment_status"]
    assert cov["deployment_status:attributes.state"] == summary["mappings"]["demo/github/deployment_status"]["events"]


def test_notebook_cli_names_the_notebooks_when_one_is_unknown(workdir, capsys) -> None:
    assert main(["notebook", "run", "no-such-notebook", "--output-dir", str(workdir["out"])]) != 0
    err = capsys.readouterr().err
    assert "no notebook 'no-such-notebook'" in err and "correlations" in err
