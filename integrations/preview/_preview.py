"""`preview()`: a mapping (a path or YAML text) over sample records, as pandas DataFrames.

The workbench pages and notebooks call this and only format what it returns. A preview has two
halves with different budgets:
- the *page*: a bounded number of records (the selected ones first) mapped record by record by
  the reference engine, so every event and rejection is tied to its record: `events`,
  `rejections`, `filtered`, `trace(i)`, `unmapped`;
- the *whole set*: every sample, with the compiled engine (`_wholeset`): `coverage`, `counts`
  and `changed` (records whose events differ from the saved mapping).
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from integrations.mapping import CompiledMapping, PythonEngine, is_truthy, unmapped_fields
from integrations.paths import mapping_path
from integrations.preview._samples import SampleKey, SampleSet
from integrations.preview._trace import trace_record
from integrations.preview._validate import ValidationIssue, compile_text, text_diff
from integrations.preview._wholeset import WholeSetFigures, whole_set_figures

DEFAULT_LIMIT = 200
CHANGED_DETAILS = 50  # changed records described field by field


def _frame(rows: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns)) if rows else pd.DataFrame(columns=list(columns))


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            _flatten(f"{prefix}.{key}", child, out)
    else:
        out[prefix] = _cell(value)


def event_row(record_index: int, event: dict[str, Any]) -> dict[str, Any]:
    """One event as a flat row: the core fields, then `attributes.<path>` columns."""
    ctx = event.get("integration_context", {})
    row: dict[str, Any] = {
        "record_index": record_index, "kind": event["kind"], "event_type": event["event_type"],
        "severity": event["severity"], "title": event["title"], "occurred_at": event["occurred_at"],
        "external_id": ctx.get("external_id"), "resource_ids": ", ".join(event.get("resource_ids", [])),
    }
    for key, value in event.get("attributes", {}).items():
        _flatten(f"attributes.{key}", value, row)
    row["hints"] = len(ctx.get("correlation_hints", []))
    row["links"] = len(ctx.get("evidence_links", []))
    return row


_CORE = ["record_index", "kind", "event_type", "severity", "title", "occurred_at", "external_id", "resource_ids"]


@dataclass
class RecordOutcome:
    """What the page's engine made of one record."""

    record_index: int
    status: str  # mapped | filtered | rejected
    events: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    field: str | None = None
    output: str | None = None
    expression: str | None = None


def _filter_reason(mapping: CompiledMapping, record: Any) -> str:
    reasons = []
    for out in mapping.outputs:
        if out.when is not None and not is_truthy(out.when.search(record)):
            reasons.append(f"{out.name}: when `{out.when.text}` is falsy")
        elif out.for_each is not None:
            reasons.append(f"{out.name}: for_each `{out.for_each.text}` gave no element")
        else:
            reasons.append(f"{out.name}: no event")
    return "; ".join(reasons)


def map_page(mapping: CompiledMapping, page: Iterable[tuple[int, Any]], tenant_id: str) -> list[RecordOutcome]:
    """Each record of the page through the reference engine, keeping which record made what."""
    engine = PythonEngine()
    outcomes = []
    for index, record in page:
        result = engine.map(mapping, [record], tenant_id=tenant_id, start_index=index)
        if result.rejections:
            r = result.rejections[0]
            outcomes.append(RecordOutcome(index, "rejected", [], r.reason, r.field, r.output, r.expression))
        elif result.events:
            outcomes.append(RecordOutcome(index, "mapped", [e.to_json_dict(with_ingested_at=False) for e in result.events]))
        else:
            try:
                reason = _filter_reason(mapping, record)
            except Exception:  # noqa: BLE001 - only a description
                reason = "no output made an event"
            outcomes.append(RecordOutcome(index, "filtered", reason=reason))
    return outcomes


class _Frames:
    """Readable HTML in notebooks for every result that holds DataFrames."""

    _html_title = "preview"

    def _frames_html(self) -> list[tuple[str, pd.DataFrame]]:  # pragma: no cover - overridden
        return []

    def _repr_html_(self) -> str:
        parts = [f"<h4>{html.escape(self._html_title)}</h4>", f"<p>{html.escape(self.summary_text())}</p>"]
        for title, frame in self._frames_html():
            parts.append(f"<details open><summary><b>{html.escape(title)}</b> ({len(frame)} rows)</summary>")
            parts.append(frame.head(20).to_html(index=False, max_cols=20, escape=True))
            parts.append("</details>")
        return "\n".join(parts)

    def summary_text(self) -> str:  # pragma: no cover - overridden
        return ""


@dataclass
class PreviewResult(_Frames):
    """Everything the workbench shows about a mapping over samples, as DataFrames."""

    key: SampleKey
    tenant: str
    mapping: CompiledMapping | None
    issues: list[ValidationIssue]
    page: list[tuple[int, Any]] = field(default_factory=list)
    outcomes: list[RecordOutcome] = field(default_factory=list)
    figures: WholeSetFigures | None = None
    saved: CompiledMapping | None = None
    saved_text: str | None = None
    text: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    _html_title = "mapping preview"

    @property
    def valid(self) -> bool:
        return not self.issues

    # -- the page -----------------------------------------------------------------------------

    @property
    def events(self) -> pd.DataFrame:
        """The page's events, one row each, attributes flattened to `attributes.<path>` columns."""
        rows = [event_row(o.record_index, e) for o in self.outcomes for e in o.events]
        if not rows:
            return _frame([], _CORE)
        frame = pd.DataFrame(rows)
        rest = [c for c in frame.columns if c not in _CORE]
        return frame[_CORE + rest]

    @property
    def rejections(self) -> pd.DataFrame:
        rows = [{"record_index": o.record_index, "output": o.output, "field": o.field, "expression": o.expression,
                 "reason": o.reason} for o in self.outcomes if o.status == "rejected"]
        return _frame(rows, ["record_index", "output", "field", "expression", "reason"])

    @property
    def filtered(self) -> pd.DataFrame:
        rows = [{"record_index": o.record_index, "reason": o.reason} for o in self.outcomes if o.status == "filtered"]
        return _frame(rows, ["record_index", "reason"])

    def outcome(self, record_index: int) -> RecordOutcome | None:
        return next((o for o in self.outcomes if o.record_index == record_index), None)

    def record(self, record_index: int) -> Any:
        for index, record in self.page:
            if index == record_index:
                return record
        raise KeyError(record_index)

    def trace(self, record_index: int) -> pd.DataFrame:
        """Each field of each output on one page record: expression, value, or why it is null."""
        columns = ["output", "event", "field", "expression", "value", "why"]
        if self.mapping is None:
            return _frame([], columns)
        rows = [row.as_dict() for row in trace_record(self.mapping, self.record(record_index))]
        frame = _frame(rows, columns)
        frame["event"] = frame["event"].astype("Int64")
        return frame

    @property
    def unmapped(self) -> pd.DataFrame:
        """Source fields (leaf paths) of the page's records that no expression reads."""
        if self.mapping is None:
            return _frame([], ["path", "records"])
        rows = [{"path": p, "records": n} for p, n in unmapped_fields(self.mapping, [r for _i, r in self.page])]
        return _frame(rows, ["path", "records"])

    # -- the whole set -------------------------------------------------------------------------

    @property
    def coverage(self) -> pd.DataFrame:
        """Per output field: in how many of the output's events (whole set) it is set, and the share."""
        columns = ["output", "field", "expression", "set", "events", "share"]
        if self.figures is None:
            return _frame([], columns)
        rows = []
        for out in self.figures.outputs:
            for cov in out.fields:
                rows.append({"output": out.name, "field": cov.field, "expression": cov.expression, "set": cov.set,
                             "events": out.events, "share": (cov.set / out.events) if out.events else 0.0})
        return _frame(rows, columns)

    @property
    def counts(self) -> pd.DataFrame:
        """Whole-set counts: records by outcome, events by kind, records by `action` when records have one."""
        columns = ["by", "value", "count"]
        f = self.figures
        if f is None:
            return _frame([], columns)
        rows = [{"by": "outcome", "value": name, "count": n}
                for name, n in (("read", f.records), ("mapped", f.mapped), ("filtered", f.filtered), ("rejected", f.rejected),
                        ("not checked", f.unchecked)) if name != "not checked" or n]
        kinds: dict[str, int] = {}
        for out in f.outputs:
            kinds[out.kind] = kinds.get(out.kind, 0) + out.events
        rows += [{"by": "kind", "value": k, "count": n} for k, n in kinds.items()]
        rows += [{"by": "action", "value": a, "count": n} for a, n in f.actions.items()]
        rows += [{"by": "rejection", "value": r, "count": n} for r, n in sorted(f.rejection_reasons.items())]
        return _frame(rows, columns)

    @property
    def changed(self) -> pd.DataFrame:
        """Records (whole set) whose events differ from the saved mapping's; the first ones described."""
        columns = ["record_index", "before", "after", "difference"]
        if self.figures is None or not self.figures.compared or self.mapping is None or self.saved is None:
            return _frame([], columns)
        rows = []
        ids = self.figures.changed
        details = dict(self._samples_records(ids[:CHANGED_DETAILS]))
        for rid in ids:
            record = details.get(rid)
            if record is None:
                rows.append({"record_index": rid, "before": None, "after": None, "difference": None})
                continue
            before = map_page(self.saved, [(rid, record)], self.tenant)[0]
            after = map_page(self.mapping, [(rid, record)], self.tenant)[0]
            rows.append({"record_index": rid, "before": _describe(before), "after": _describe(after),
                         "difference": _difference(before, after)})
        return _frame(rows, columns)

    def compute_whole_set(self, *, python_budget: float | None = 1.0) -> "PreviewResult":
        """Fill the whole-set figures (coverage, counts, changed) if `preview(whole_set=False)` skipped them."""
        samples = getattr(self, "_samples", None)
        if self.figures is None and self.mapping is not None and samples is not None:
            started = time.perf_counter()
            self.figures = whole_set_figures(samples, self.key, self.mapping, tenant_id=self.tenant, saved=self.saved,
                                             python_budget=python_budget)
            self.timings["whole_set"] = time.perf_counter() - started
        return self

    def _samples_records(self, ids: list[int]) -> list[tuple[int, Any]]:
        samples = getattr(self, "_samples", None)
        return samples.records(*self.key, ids) if samples is not None and ids else []

    @property
    def diff(self) -> str:
        """The edited text against the saved file (unified diff; empty when they are the same)."""
        return text_diff(self.saved_text or "", self.text, f"{self.key.plugin}/{self.key.source}.yaml")

    # -- notebooks -----------------------------------------------------------------------------

    def summary_text(self) -> str:
        if self.issues:
            return f"{len(self.issues)} error(s): " + "; ".join(str(i) for i in self.issues[:3])
        counts = {s: sum(1 for o in self.outcomes if o.status == s) for s in ("mapped", "filtered", "rejected")}
        text = (f"{self.key}: page of {len(self.outcomes)} record(s): {counts['mapped']} mapped, "
                f"{counts['filtered']} filtered, {counts['rejected']} rejected")
        if self.figures is not None:
            f = self.figures
            text += (f"; whole set of {f.records}: {f.mapped} mapped, {f.filtered} filtered, {f.rejected} rejected"
                     f" ({f.engine} engine, {f.seconds:.2f}s)")
            if f.compared:
                text += f"; {len(f.changed)} changed against the saved mapping"
        return text

    def _frames_html(self) -> list[tuple[str, pd.DataFrame]]:
        if self.issues:
            return [("errors", pd.DataFrame([i.as_dict() for i in self.issues]))]
        return [("events", self.events), ("rejections", self.rejections), ("filtered", self.filtered),
                ("coverage", self.coverage), ("counts", self.counts)]

    def __repr__(self) -> str:
        return f"PreviewResult({self.summary_text()})"


def _describe(outcome: RecordOutcome) -> str:
    if outcome.status == "mapped":
        return f"{len(outcome.events)} event(s)"
    if outcome.status == "rejected":
        return f"rejected: {outcome.reason}"
    return "filtered"


def _difference(before: RecordOutcome, after: RecordOutcome) -> str:
    if before.status != after.status:
        return f"{before.status} -> {after.status}"
    if len(before.events) != len(after.events):
        return f"{len(before.events)} -> {len(after.events)} events"
    if before.status == "rejected":
        return "another reason" if before.reason != after.reason else ""
    changes: list[str] = []
    for old, new in zip(before.events, after.events):
        a, b = event_row(0, old), event_row(0, new)
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                verb = "added" if key not in a else ("removed" if key not in b else "changed")
                label = f"{key} {verb}"
                if label not in changes:
                    changes.append(label)
        if old.get("integration_context") != new.get("integration_context") and "hints/links changed" not in changes:
            changes.append("hints/links changed")
    return ", ".join(changes) or "event ids changed"


def _mapping_text(mapping: str | Path) -> tuple[str, str | None]:
    """(YAML text, its file) from a path or from text."""
    if isinstance(mapping, Path) or ("\n" not in str(mapping) and str(mapping).endswith((".yaml", ".yml"))):
        path = Path(mapping)
        return path.read_text(encoding="utf-8"), str(path)
    return str(mapping), None


def preview(mapping: str | Path, records: SampleSet | Iterable[Any], *, tenant: str = "demo",
            plugin: str | None = None, source: str | None = None, limit: int = DEFAULT_LIMIT,
            selected: Iterable[int] = (), saved: str | Path | bool | None = None,
            whole_set: bool = True) -> PreviewResult:
    """Preview a mapping (a file path or YAML text) over records or a SampleSet.

    `selected` record indexes come first in the page of at most `limit` records. `saved` is the
    mapping to compare with (`changed`): a path or text; None means `mappings/<plugin>/<source>.yaml`
    when it exists; False compares with nothing. `whole_set=False` skips the whole-set figures.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    text, file = _mapping_text(mapping)
    compiled, issues = compile_text(text, file)
    timings["validate"] = time.perf_counter() - started
    plugin = plugin or (compiled.plugin if compiled else None) or "unknown"
    source = source or (compiled.source if compiled else None) or "unknown"
    if isinstance(records, SampleSet):
        samples = records
        samples.ensure(tenant, plugin, source)
    else:
        samples = SampleSet()
        samples.load(tenant, plugin, source, records, origin="records")
    key = SampleKey(tenant, plugin, source)
    saved_text: str | None = None
    saved_mapping: CompiledMapping | None = None
    if saved is None:
        path = mapping_path(plugin, source)
        saved_text = path.read_text(encoding="utf-8") if path.exists() else None
    elif saved is not False and saved is not True:
        saved_text, _file = _mapping_text(saved)
    if saved_text is not None:
        saved_mapping, saved_issues = compile_text(saved_text)
        if saved_issues:
            saved_mapping = None
    result = PreviewResult(key=key, tenant=tenant, mapping=compiled, issues=issues, saved=saved_mapping,
                           saved_text=saved_text, text=text, timings=timings)
    result._samples = samples  # type: ignore[attr-defined]
    t = time.perf_counter()
    result.page = samples.page(tenant, plugin, source, selected=selected, limit=limit)
    timings["load_page"] = time.perf_counter() - t
    if compiled is None:
        return result
    t = time.perf_counter()
    result.outcomes = map_page(compiled, result.page, tenant)
    timings["page"] = time.perf_counter() - t
    if whole_set:
        result.compute_whole_set()
    timings["total"] = time.perf_counter() - started
    return result


__all__ = ["PreviewResult", "RecordOutcome", "event_row", "map_page", "preview"]
