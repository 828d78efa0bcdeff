"""Analyses over the event store and the mappings, shared by the notebooks and their tests.

```python
from integrations.analysis import DeliveryOptions, delivery_from_store, mapping_coverage, run_notebook

figures = delivery_from_store("data/integrations.duckdb", DeliveryOptions.of("demo", window_minutes=60))
figures.summary()                   # deployments, lead time, change failure rate, time to restore
mapping_coverage(["demo"])          # per mapping and field: events that set it; rejections by reason
run_notebook("correlations", {"tenant": "acme"}, "notebooks/out")   # papermill, kernel registered
```
"""

from integrations.analysis._coverage import mapping_coverage
from integrations.analysis._delivery import (
    DeliveryFigures,
    DeliveryOptions,
    delivery_figures,
    delivery_from_store,
    load_events,
    parse_moment,
    shipped_commits,
)
from integrations.analysis._notebooks import (
    KERNEL_NAME,
    available_notebooks,
    ensure_kernel,
    notebooks_dir,
    parse_parameter,
    run_notebook,
)

__all__ = [
    "KERNEL_NAME",
    "DeliveryFigures",
    "DeliveryOptions",
    "available_notebooks",
    "delivery_figures",
    "delivery_from_store",
    "ensure_kernel",
    "load_events",
    "mapping_coverage",
    "notebooks_dir",
    "parse_moment",
    "parse_parameter",
    "run_notebook",
    "shipped_commits",
]
