"""`integrations notebook run NAME`: execute a bundled notebook with papermill.

The executed notebook (plots inline) and the summary it writes (`<name>.summary.json`) land in
`--output-dir`. The Jupyter kernel `integrations-workbench` (this environment's Python) is
registered first when it is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from integrations.analysis import available_notebooks, parse_parameter, run_notebook


@click.group(name="notebook")
def command() -> None:
    """Run the bundled analysis notebooks (notebooks/*.ipynb)."""


@command.command("run")
@click.argument("name")
@click.option("-p", "--parameter", "parameters", nargs=2, multiple=True, metavar="KEY VALUE",
              help="A notebook parameter (VALUE is read as JSON when it parses: 60, [\"prod\"], null). Repeatable.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("notebooks/out"),
              show_default=True, help="Where the executed notebook and its summary go.")
@click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="INTEGRATIONS_STORE", help="Event store, passed as the `store` parameter unless -p store is given.")
def run(name: str, parameters: tuple[tuple[str, str], ...], output_dir: Path, db: Path | None) -> None:
    """Execute notebook NAME (one of notebooks/*.ipynb, without .ipynb)."""
    params = {key: parse_parameter(value) for key, value in parameters}
    if db is not None:
        params.setdefault("store", str(db))
    executed = run_notebook(name, params, output_dir)
    click.echo(f"executed notebook: {executed}")
    summary = executed.with_name(f"{executed.stem}.summary.json")
    if summary.exists():
        click.echo(f"summary: {summary}")
        click.echo(json.dumps(json.loads(summary.read_text(encoding="utf-8")), indent=2))


@command.command("list")
def list_notebooks() -> None:
    """List the bundled notebooks."""
    for name in available_notebooks():
        click.echo(name)
