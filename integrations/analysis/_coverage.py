"""Mapping coverage over the bundled samples: which fields each mapping sets, and why records are rejected.

Computed with the workbench's preview API (`integrations.preview`), so the notebook shows the
figures the workbench shows.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from integrations.paths import mapping_path
from integrations.preview import SampleSet, available_samples, preview

COVERAGE_COLUMNS = ["tenant", "plugin", "source", "output", "field", "set", "events", "share"]
REJECTION_COLUMNS = ["tenant", "plugin", "source", "reason", "records"]
RECORD_COLUMNS = ["tenant", "plugin", "source", "records", "mapped", "filtered", "rejected", "events"]


def mapping_coverage(tenants: list[str] | None = None, *, samples_root: Path | None = None,
                     mappings_root: Path | None = None) -> dict[str, pd.DataFrame]:
    """{"records", "coverage", "rejections"}: per sample file with a mapping, over its whole set."""
    coverage, rejections, records = [], [], []
    samples = SampleSet()
    try:
        for sample in available_samples(samples_root):
            tenant, plugin, source = sample.key
            path = mapping_path(plugin, source, mappings_root)
            if (tenants and tenant not in tenants) or not path.exists():
                continue
            samples.load_file(sample.path, tenant, plugin, source)
            result = preview(path, samples, tenant=tenant, plugin=plugin, source=source, saved=False, limit=1)
            f = result.figures
            if f is None:
                continue
            records.append({"tenant": tenant, "plugin": plugin, "source": source, "records": f.records,
                            "mapped": f.mapped, "filtered": f.filtered, "rejected": f.rejected,
                            "events": sum(o.events for o in f.outputs)})
            for row in result.coverage.to_dict("records"):
                coverage.append({"tenant": tenant, "plugin": plugin, "source": source, **row})
            for reason, n in sorted(f.rejection_reasons.items()):
                rejections.append({"tenant": tenant, "plugin": plugin, "source": source, "reason": reason,
                                   "records": n})
    finally:
        samples.close()
    return {"records": pd.DataFrame(records, columns=RECORD_COLUMNS),
            "coverage": pd.DataFrame(coverage, columns=COVERAGE_COLUMNS + ["expression"])[COVERAGE_COLUMNS],
            "rejections": pd.DataFrame(rejections, columns=REJECTION_COLUMNS)}


__all__ = ["mapping_coverage"]
