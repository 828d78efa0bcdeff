"""The one preview API: mappings over sample records, for the workbench pages and for notebooks.

```python
from integrations.preview import SampleSet, preview, validate, save

samples = SampleSet()                                   # DuckDB in memory (or a file of its own)
samples.load_samples("demo", "github", "push")          # data/samples/demo/github/push.jsonl
result = preview("mappings/github/push.yaml", samples, tenant="demo")
result.events, result.coverage, result.changed, result.trace(0)   # pandas DataFrames
validate(yaml_text)                                     # [ValidationIssue(line, col, message, ...)]
save("mappings/github/push.yaml", yaml_text, tenant="demo")       # checked, permission, audited
```

Pages format what these return; nothing else maps records for the workbench.
"""

from integrations.preview._preview import PreviewResult, RecordOutcome, event_row, map_page, preview
from integrations.preview._samples import SampleFile, SampleKey, SampleSet, available_samples, parse_records
from integrations.preview._trace import TraceRow, evaluate, trace_record
from integrations.preview._validate import SaveResult, ValidationIssue, compile_text, save, text_diff, validate
from integrations.preview._wholeset import WholeSetFigures, whole_set_figures

__all__ = [
    "PreviewResult",
    "RecordOutcome",
    "SampleFile",
    "SampleKey",
    "SampleSet",
    "SaveResult",
    "TraceRow",
    "ValidationIssue",
    "WholeSetFigures",
    "available_samples",
    "compile_text",
    "evaluate",
    "event_row",
    "map_page",
    "parse_records",
    "preview",
    "save",
    "text_diff",
    "trace_record",
    "validate",
    "whole_set_figures",
]
