"""`integrations validate`: check mapping files and print every error as `path:line:col: message`."""

from __future__ import annotations

from pathlib import Path

import click

from integrations.errors import UsageError
from integrations.mapping import load_mapping, unmapped_fields, validate_mapping
from integrations.paths import mapping_path, mappings_dir
from integrations.records import iter_records


def mapping_files(paths: tuple[Path, ...]) -> list[Path]:
    """The mapping files named, or found under the folders named (examples are not mappings)."""
    found: list[Path] = []
    for path in paths or (mappings_dir(),):
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*.y*ml")) if "examples" not in p.relative_to(path).parts)
        elif path.exists():
            found.append(path)
        else:
            raise UsageError(f"no such file or folder: {path}", file=str(path))
    return found


@click.command(name="validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--unmapped", "sample", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="List the fields present in this sample file that no field of the mapping reads.")
@click.option("--explain", is_flag=True, help="Say which fields run compiled to SQL and which fall back to Python, and why.")
def command(paths: tuple[Path, ...], sample: Path | None, explain: bool) -> int:
    """Check mapping files (default: all of mappings/). Exit 1 when any has an error."""
    if sample is not None and not paths:
        # data/samples/<tenant>/<plugin>/<source>.jsonl -> mappings/<plugin>/<source>.yaml
        paths = (mapping_path(sample.parent.name, sample.stem),)
    files = mapping_files(paths)
    errors = 0
    for file in files:
        for err in validate_mapping(file):
            errors += 1
            click.echo(err.render())
    if errors:
        click.secho(f"{errors} error(s) in {len(files)} file(s)", fg="red", err=True)
        return 1
    click.secho(f"{len(files)} mapping file(s) valid", fg="green", err=True)
    if explain:
        from integrations.mapping._sql import explain as explain_mapping

        for file in files:
            click.echo(f"{file}:")
            for output, field, how, reason in explain_mapping(load_mapping(file)):
                click.echo(f"  {output}.{field}: {how}" + (f" ({reason})" if reason else ""))
    if sample is not None:
        records = [r for _i, r in iter_records(sample) if not isinstance(r, Exception)]
        for file in files:
            gaps = unmapped_fields(load_mapping(file), records)
            click.echo(f"{file}: {len(gaps)} source field(s) in {sample} that no field reads")
            for path, count in gaps:
                click.echo(f"  {path}  ({count}/{len(records)} records)")
    return 0
