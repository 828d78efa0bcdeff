"""`integrations map`: map records from a file or stdin with one mapping, events to stdout."""

from __future__ import annotations

import json
from pathlib import Path

import click

from integrations.cli._common import stderr_console, write_json_line
from integrations.errors import UsageError
from integrations.events import EXPORT_FORMATS, export_events
from integrations.mapping import get_engine, load_mapping
from integrations.paths import mapping_path
from integrations.pipeline import map_items
from integrations.records import iter_records


@click.command(name="map")
@click.option("--mapping", "mapping_file", type=click.Path(dir_okay=False, path_type=Path), help="Mapping file.")
@click.option("--plugin", help="Plugin (with --source): uses mappings/<plugin>/<source>.yaml.")
@click.option("--source", help="Source (with --plugin).")
@click.option("--input", "input_path", required=True, help="JSON object, JSON array or JSON Lines; '-' for stdin.")
@click.option("--tenant", default="demo", show_default=True, help="Tenant id of the events.")
@click.option("--format", "fmt", type=click.Choice(sorted(EXPORT_FORMATS)), default="jsonl", show_default=True,
              help="jsonl: canonical events; others: interchange formats (events without a counterpart are skipped).")
@click.option("--dead-letter", "dead_letter", type=click.Path(dir_okay=False, path_type=Path),
              help="Write rejected records (with reasons) to this JSON Lines file.")
@click.option("--engine", default="auto", show_default=True, help="Mapping engine: auto, python or sql.")
def command(mapping_file: Path | None, plugin: str | None, source: str | None, input_path: str, tenant: str,
            fmt: str, dead_letter: Path | None, engine: str) -> int:
    """Map records; canonical events go to stdout as JSON Lines, a summary to stderr.

    Exit 0 when it ran (even with rejections), 1 when the mapping is invalid, 2 on a usage error.
    """
    if mapping_file is None and not (plugin and source):
        raise UsageError("give --mapping PATH, or --plugin and --source")
    if mapping_file is not None and (plugin or source):
        raise UsageError("give either --mapping or --plugin/--source, not both")
    path = mapping_file or mapping_path(plugin, source)  # type: ignore[arg-type]
    if not path.exists():
        raise UsageError(f"no mapping file at {path}", file=str(path))
    mapping = load_mapping(path)
    result = map_items(get_engine(engine), mapping, iter_records(input_path), tenant)
    if fmt == "jsonl":
        documents, skipped = [e.to_json_dict(with_ingested_at=False) for e in result.events], 0
    else:
        documents, skipped = export_events(fmt, result.events)
    for document in documents:
        write_json_line(document)
    if dead_letter is not None:
        with dead_letter.open("w", encoding="utf-8") as out:
            for rejection in result.rejections:
                out.write(json.dumps({"plugin": mapping.plugin, "source": mapping.source, "tenant_id": tenant,
                                      **rejection.as_dict()}, sort_keys=True, default=str) + "\n")
    console = stderr_console()
    for rejection in result.rejections[:20]:
        where = f" field '{rejection.field}'" if rejection.field else ""
        console.print(f"[yellow]rejected[/] record {rejection.record_index}{where}: {rejection.reason}")
    if result.rejected > 20:
        console.print(f"[yellow]... and {result.rejected - 20} more rejected[/]")
    s = result.summary()
    console.print(f"read {s['read']}, mapped {s['mapped']}, filtered {s['filtered']}, rejected {s['rejected']}"
                  f" ({s['events']} events)")
    if skipped:
        console.print(f"{skipped} event(s) have no {fmt} counterpart and were skipped")
    return 0
