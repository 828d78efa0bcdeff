"""The mappings shipped in mappings/ against the samples in data/samples/ and their golden examples.

* every `mappings/<plugin>/<source>.yaml` validates;
* every sample file `data/samples/<tenant>/<plugin>/<source>.jsonl` maps with
  read == mapped + filtered + rejected, and rejects exactly the records that data/samples/README.md
  documents as deliberately bad (and nothing else);
* every golden example `mappings/<plugin>/examples/<source>/NAME.input.json` still gives
  NAME.expected.jsonl (tenant `demo`);
* data/samples/generate.py reproduces the sample files byte for byte.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from integrations.mapping import PythonEngine, load_mapping, validate_mapping

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS = ROOT / "mappings"
SAMPLES = ROOT / "data" / "samples"

MAPPING_FILES = sorted(MAPPINGS.glob("*/*.yaml"))
SAMPLE_FILES = sorted(SAMPLES.glob("*/*/*.jsonl"))
EXAMPLE_INPUTS = sorted(MAPPINGS.glob("*/examples/*/*.input.json"))

# The deliberately bad records (documented in data/samples/README.md): file -> number rejected.
DELIBERATELY_BAD = {
    "demo/github/push.jsonl": 1,
    "demo/cloudwatch/metric_data.jsonl": 1,
    "acme/cloudwatch/cloudtrail.jsonl": 1,
}

SOURCES = {
    "github": {"push", "pull_request", "deployment", "deployment_status", "release", "workflow_run"},
    "cloudwatch": {"metric_data", "log_events", "cloudtrail", "alarm_history", "alarm_state_change"},
}


def _rel(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


def _records(path: Path) -> list:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def test_every_source_has_a_mapping_and_samples() -> None:
    for plugin, sources in SOURCES.items():
        for source in sources:
            assert (MAPPINGS / plugin / f"{source}.yaml").is_file(), f"no mapping for {plugin}/{source}"
            for tenant in ("demo", "acme"):
                assert (SAMPLES / tenant / plugin / f"{source}.jsonl").is_file(), f"no samples for {tenant}/{plugin}/{source}"


@pytest.mark.parametrize("path", MAPPING_FILES, ids=lambda p: _rel(p, MAPPINGS))
def test_mapping_validates(path: Path) -> None:
    errors = validate_mapping(path)
    assert not errors, "\n".join(str(e) for e in errors)
    mapping = load_mapping(path)
    assert (mapping.plugin, mapping.source) == (path.parent.name, path.stem)


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: _rel(p, SAMPLES))
def test_sample_file_maps(path: Path) -> None:
    tenant, plugin, _ = path.relative_to(SAMPLES).parts
    mapping = load_mapping(MAPPINGS / plugin / f"{path.stem}.yaml")
    records = _records(path)
    result = PythonEngine().map(mapping, records, tenant_id=tenant)
    assert result.read == len(records) > 0
    assert result.read == result.mapped + result.filtered + result.rejected
    expected = DELIBERATELY_BAD.get(_rel(path, SAMPLES), 0)
    reasons = [f"#{r.record_index}: {r.reason} ({r.field})" for r in result.rejections]
    assert result.rejected == expected, f"unexpected rejections: {reasons}"
    for rejection in result.rejections:
        assert rejection.reason and rejection.field and rejection.output
    for event in result.events:
        assert event.tenant_id == tenant
        assert event.integration_context.source_integration == plugin


def test_deliberately_bad_records_are_documented() -> None:
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    for name in DELIBERATELY_BAD:
        assert name in readme, f"{name} is not documented in data/samples/README.md"
    assert sum(DELIBERATELY_BAD.values()) == 3


@pytest.mark.parametrize("path", EXAMPLE_INPUTS, ids=lambda p: _rel(p, MAPPINGS))
def test_golden_example(path: Path) -> None:
    plugin, _, source, name = path.relative_to(MAPPINGS).parts
    mapping = load_mapping(MAPPINGS / plugin / f"{source}.yaml")
    payload = json.loads(path.read_text(encoding="utf-8"))
    result = PythonEngine().map(mapping, [payload], tenant_id="demo")
    assert not result.rejections, [r.reason for r in result.rejections]
    got = [json.dumps(e.to_json_dict(with_ingested_at=False), sort_keys=True, ensure_ascii=False)
           for e in result.events]
    expected_path = path.with_name(name.replace(".input.json", ".expected.jsonl"))
    expected = [line for line in expected_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert got == expected


def test_golden_examples_cover_every_source() -> None:
    for plugin, sources in SOURCES.items():
        for source in sources:
            assert list((MAPPINGS / plugin / "examples" / source).glob("*.input.json")), f"{plugin}/{source}"
        assert (MAPPINGS / plugin / "examples" / "SOURCES.md").is_file()


def test_sample_generator_is_deterministic() -> None:
    spec = importlib.util.spec_from_file_location("samples_generate", SAMPLES / "generate.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, "data/samples is stale: run python data/samples/generate.py"
