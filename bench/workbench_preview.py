"""How fast the workbench answers over 100,000 sample records, measured through the preview API.

The records are made from the bundled samples' shapes (each sample repeated, with its ids,
hashes and numbers varied so no two records are alike). For each source it times what the
Mapping page does while a person edits:

- load:          the records into the preview's DuckDB (once per session, not on keystrokes)
- first figures: whole-set figures of the saved mapping, cold (structure, slim copy, rows)
- live page:     `preview(..., whole_set=False)` of an edited mapping: the bounded page (200 records)
- typing:        whole-set figures while an expression reads a path that does not exist yet
- new path:      whole-set figures when the expression reads a new, existing path
- edit again:    whole-set figures after one more change of the same field

Targets (the issue): live page < 1 s, whole-set coverage < 2 s.

    python bench/workbench_preview.py [--records 100000] [--source github/push] ...
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from integrations.preview import SampleSet, preview, whole_set_figures  # noqa: E402
from integrations.preview._validate import compile_text  # noqa: E402

HEX40 = re.compile(r"\b[0-9a-f]{40}\b")
ID = re.compile(r'"id":([0-9]{3,})')

# source -> (an existing line of the shipped mapping, its edits: typing, a new existing path, once more)
EDITS = {
    "github/push": ("      attributes.pusher: record.pusher.name", [
        "      attributes.pusher: record.pusher.name\n      attributes.pusher_name: record.pusher.nam",
        "      attributes.pusher: record.pusher.name\n      attributes.pusher_name: record.pusher.email",
        "      attributes.pusher: record.pusher.name\n      attributes.pusher_name: upper(record.pusher.email)",
    ]),
    "cloudwatch/log_events": ("      attributes.region: item.region", [
        "      attributes.region: item.regio",
        "      attributes.region: item.account_id",
        "      attributes.region: upper(item.account_id)",
    ]),
}


def make_lines(tenant: str, plugin: str, source: str, count: int) -> list[str]:
    base = [line.strip() for line in (ROOT / "data" / "samples" / tenant / plugin / f"{source}.jsonl").read_text().splitlines()
            if line.strip()]
    out = []
    for i in range(count):
        text = base[i % len(base)]
        if i >= len(base):
            text = HEX40.sub(lambda m: hashlib.sha1(f"{i}:{m.group()}".encode()).hexdigest(), text)
            text = ID.sub(lambda m: f'"id":{int(m.group(1)) + i}', text)
        out.append(text)
    return out


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def bench(source_name: str, count: int, tenant: str) -> list[tuple[str, float, str]]:
    plugin, source = source_name.split("/")
    line, edits = EDITS[source_name]
    saved_text = (ROOT / "mappings" / plugin / f"{source}.yaml").read_text()
    if line not in saved_text:
        raise SystemExit(f"the shipped {source_name} mapping no longer has the line {line!r}: update EDITS")
    rows: list[tuple[str, float, str]] = []
    samples = SampleSet()
    lines = make_lines(tenant, plugin, source, count)
    megabytes = sum(len(x) for x in lines) / 1e6
    n, seconds = timed(lambda: samples.load_lines(tenant, plugin, source, lines))
    rows.append(("load", seconds, f"{n} records, {megabytes:.0f} MB of JSON"))
    del lines
    saved, _ = compile_text(saved_text)
    key = (tenant, plugin, source)
    figures, seconds = timed(lambda: whole_set_figures(samples, samples.keys()[0], saved, tenant_id=tenant))
    rows.append(("first figures (saved, cold)", seconds,
                 f"{figures.mapped} mapped, {figures.rejected} rejected, {figures.checked_by_python} by Python"))
    texts = [saved_text.replace(line, edit) for edit in edits]
    result, seconds = timed(lambda: preview(texts[1], samples, tenant=tenant, plugin=plugin, source=source,
                                            selected=[5, 50_000 % count], saved=saved_text, whole_set=False))
    rows.append(("live page (200 records)", seconds, f"{len(result.events)} events on the page"))
    for label, text in (("typing (path not there yet)", texts[0]), ("new path", texts[1]), ("edit again", texts[2])):
        mapping, issues = compile_text(text)
        assert not issues, issues
        figures, seconds = timed(lambda: whole_set_figures(samples, samples.keys()[0], mapping, tenant_id=tenant,
                                                           saved=saved, python_budget=0.5))
        rows.append((f"whole set: {label}", seconds,
                     f"coverage of {sum(len(o.fields) for o in figures.outputs)} fields, {len(figures.changed)} changed, "
                     f"{figures.checked_by_python} by Python ({figures.engine})"))
    _ = key
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--tenant", default="demo")
    parser.add_argument("--source", action="append", choices=sorted(EDITS),
                        help="plugin/source (repeatable; default: github/push and cloudwatch/log_events)")
    args = parser.parse_args(argv)
    sources = args.source or ["github/push", "cloudwatch/log_events"]
    print(f"{'source':<24} {'step':<32} {'seconds':>8}  notes")
    for source_name in sources:
        for step, seconds, note in bench(source_name, args.records, args.tenant):
            print(f"{source_name:<24} {step:<32} {seconds:>8.3f}  {note}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
