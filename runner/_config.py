"""`runner.yaml`: the jobs, their schedules, enrichment rules, the store and the sinks.

Everything per tenant stays in the tenant files; this file says what runs, when, and where
events go. It is validated before anything runs, with `path:line:col` errors.

```yaml
store: data/integrations.duckdb
tenants_dir: tenants
samples: data/samples
mappings: mappings
engine: auto
jobs:
  - name: hourly
    cron: "5 * * * *"
    tenants: [demo, acme]
enrichment:
  rules: []            # empty: the built-in rules
sinks:
  - {name: files, type: jsonl, path: out/events}
```
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from integrations.errors import ConfigError
from integrations.located_yaml import load_located, located_validation_errors

DEFAULT_CONFIG = Path("runner.yaml")


from runner._schedule import JobConfig, check_unique_names  # noqa: E402  (crontab weekdays: 0 and 7 are Sunday)
from runner._sinks import SinkConfig  # noqa: E402


class ExecutorSection(BaseModel):
    """Where partitions run: `loop` (the plugin loop, no partitions), local threads, processes, or Dask."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(default="loop", pattern="^(loop|local|process|dask)$")
    scheduler: str | None = Field(default=None, description="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    workers: int | None = Field(default=None, ge=1)
    window_hours: float | None = Field(default=None, gt=0, description="cut --since/--until into windows")


class EnrichmentSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    rules: list[dict[str, Any]] = Field(default_factory=list, description="empty: the built-in rules")


class RunnerConfig(BaseModel):
    """The whole runner configuration."""

    model_config = ConfigDict(extra="forbid")
    store: Path = Path("data/integrations.duckdb")
    tenants_dir: Path = Path("tenants")
    samples: Path = Path("data/samples")
    mappings: Path = Path("mappings")
    engine: str = "auto"
    default_tenants: list[str] = Field(default_factory=lambda: ["demo"])
    jobs: list[JobConfig] = Field(default_factory=list)
    enrichment: EnrichmentSection = Field(default_factory=EnrichmentSection)
    sinks: list[SinkConfig] = Field(default_factory=list)
    executor: ExecutorSection = Field(default_factory=ExecutorSection)


def config_path(explicit: Path | None = None) -> Path:
    return explicit or Path(os.environ.get("INTEGRATIONS_RUNNER_CONFIG", str(DEFAULT_CONFIG)))


def load_runner_config(path: Path | None = None, *, required: bool = False) -> RunnerConfig:
    """The configuration at `path` (default runner.yaml); defaults when the file is absent and not required."""
    path = config_path(path)
    if not path.exists():
        if required:
            raise ConfigError(f"no runner configuration at {path}", file=str(path))
        return RunnerConfig()
    text = path.read_text(encoding="utf-8")
    doc = load_located(text, str(path), ConfigError)
    if doc.data is None:
        return RunnerConfig()
    try:
        config = RunnerConfig.model_validate(doc.data)
    except ValidationError as err:
        errors = located_validation_errors(err, doc, str(path), ConfigError)
        first = errors[0]
        if len(errors) > 1:
            first.hint = "; ".join(str(e) for e in errors[1:])
        raise first from None
    check_unique_names(config.jobs, "jobs", file=str(path), doc=doc)
    check_unique_names(config.sinks, "sinks", file=str(path), doc=doc)
    from integrations.enrichment import load_rules

    load_rules(config.enrichment.rules, file=str(path), doc=doc)  # rule errors name their line, before any run
    return config


def enrichment_rules(config: RunnerConfig) -> list:
    """The rules to run: none when disabled, the built-in ones when the list is empty."""
    from integrations.enrichment import DEFAULT_RULES, load_rules

    if not config.enrichment.enabled:
        return []
    return load_rules(config.enrichment.rules) or list(DEFAULT_RULES)
