"""Where things live by default: every path can be changed by an option or an environment variable."""

from __future__ import annotations

import os
from pathlib import Path


def mappings_dir() -> Path:
    """`INTEGRATIONS_MAPPINGS`, else `./mappings`."""
    return Path(os.environ.get("INTEGRATIONS_MAPPINGS", "mappings"))


def samples_dir() -> Path:
    """`INTEGRATIONS_SAMPLES`, else `./data/samples`."""
    return Path(os.environ.get("INTEGRATIONS_SAMPLES", "data/samples"))


def mapping_path(plugin: str, source: str, root: Path | None = None) -> Path:
    """`mappings/<plugin>/<source>.yaml`."""
    return (root or mappings_dir()) / plugin / f"{source}.yaml"
