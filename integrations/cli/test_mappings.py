"""`integrations test-mappings`: golden examples kept beside the mappings.

`mappings/<plugin>/examples/<source>/NAME.input.json` holds a record (or several); the events it
must give, for tenant `demo`, are in `NAME.expected.jsonl`. A mismatch prints a readable diff;
`--update` approves the current output.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import click

from integrations.mapping import PythonEngine, load_mapping
from integrations.paths import mapping_path, mappings_dir
from integrations.pipeline import map_items
from integrations.records import iter_records

GOLDEN_TENANT = "demo"


def golden_lines(input_path: Path, mapping_root: Path) -> tuple[list[str], list[str]]:
    """(event lines, rejection messages) for one example input."""
    plugin = input_path.parents[2].name
    source = input_path.parent.name
    mapping = load_mapping(mapping_path(plugin, source, mapping_root))
    result = map_items(PythonEngine(), mapping, iter_records(input_path), GOLDEN_TENANT)
    lines = [json.dumps(e.to_json_dict(with_ingested_at=False), sort_keys=True, ensure_ascii=False)
             for e in result.events]
    problems = [f"record {r.record_index} rejected: field {r.field!r}: {r.reason}" for r in result.rejections]
    return lines, problems


def _pretty(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        out.extend(json.dumps(json.loads(line), indent=2, sort_keys=True, ensure_ascii=False).splitlines())
    return out


@click.command(name="test-mappings")
@click.option("--update", is_flag=True, help="Write the current output as the expected output.")
@click.option("--mappings", "root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Mappings folder [default: mappings].")
def command(update: bool, root: Path | None) -> int:
    """Map every example and compare with its expected events."""
    root = root or mappings_dir()
    inputs = sorted(root.glob("*/examples/*/*.input.json"))
    failed = 0
    for input_path in inputs:
        expected_path = input_path.with_name(input_path.name.replace(".input.json", ".expected.jsonl"))
        lines, problems = golden_lines(input_path, root)
        if update:
            expected_path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        expected = expected_path.read_text(encoding="utf-8").splitlines() if expected_path.exists() else []
        if problems or lines != expected:
            failed += 1
            click.secho(f"FAIL {input_path}", fg="red")
            for problem in problems:
                click.echo(f"  {problem}")
            if lines != expected:
                diff = difflib.unified_diff(_pretty(expected), _pretty(lines), fromfile=str(expected_path),
                                            tofile="actual", lineterm="")
                for line in diff:
                    color = "green" if line.startswith("+") else "red" if line.startswith("-") else None
                    click.secho("  " + line, fg=color)
        else:
            click.echo(f"ok   {input_path} ({len(lines)} events)")
    click.echo(f"{len(inputs) - failed} passed, {failed} failed")
    return 1 if failed else 0
