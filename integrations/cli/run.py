"""`integrations run`: the main job, on runner.yaml's settings (or the embedded defaults).

Exit codes: 0 when every source ran, or some failed and at least one ran (partial failure is
reported per integration); 1 when every source failed; 2 on a usage error; other codes come
from configuration errors (see the README's exit-code table).
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import click

from integrations.cli._common import db_option, parse_time, print_table, stderr_console


def _progress_printer(total_hint: int | None = None):
    """Live progress on a terminal (rich), plain lines otherwise."""
    console = stderr_console()

    def plain(report) -> None:
        line = (f"{report.tenant_id}/{report.plugin}/{report.source}: {report.status} read={report.read} "
                f"mapped={report.mapped} filtered={report.filtered} rejected={report.rejected} "
                f"events={report.events} in {report.duration_s:.2f}s")
        if report.error:
            line += f" ({report.error})"
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    if not sys.stderr.isatty():
        return plain, None
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                        transient=True)
    task = progress.add_task("running sources", total=total_hint)
    done: list[str] = []

    def live(report) -> None:
        done.append(f"{report.tenant_id}/{report.plugin}/{report.source}")
        progress.update(task, advance=1, description=f"{len(done)} source(s) done, last: {done[-1]}")

    return live, progress


@click.command(name="run")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Runner configuration [default: runner.yaml when present].")
@db_option
@click.option("--tenant", "tenants", multiple=True, help="Tenant(s) to run [default: runner.yaml's default_tenants].")
@click.option("--since", help="Fetch from this time (ISO-8601), for polled sources.")
@click.option("--until", help="Fetch up to this time (ISO-8601), for polled sources.")
@click.option("--samples", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Sample records folder [default: data/samples].")
@click.option("--mappings", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Mappings folder [default: mappings].")
@click.option("--tenants-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Tenant configuration folder [default: tenants].")
@click.option("--engine", default=None, help="Mapping engine: auto, python or sql [default: auto].")
@click.option("--executor", type=click.Choice(["loop", "local", "process", "dask"]), default=None,
              help="Where partitions run [default: runner.yaml's executor.kind, else loop].")
@click.option("--scheduler", default=None, help="Dask scheduler address, with --executor dask (tcp://HOST:8786).")
@click.option("--workers", type=int, default=None, help="Local threads or processes.")
@click.option("--window", "window_hours", type=float, default=None,
              help="Cut --since/--until into windows of this many hours (one partition each).")
def command(config_file: Path | None, db: Path | None, tenants: tuple[str, ...], since: str | None, until: str | None,
            samples: Path | None, mappings: Path | None, tenants_dir: Path | None, engine: str | None,
            executor: str | None, scheduler: str | None, workers: int | None, window_hours: float | None) -> int:
    """Fetch, map and store events for every configured integration of each tenant.

    Exit 0 when at least one source ran (rejections and partial failures are reported, not fatal);
    1 when every source failed.
    """
    from integrations.credentials import EnvironmentMasterKeys
    from runner import RunOptions, load_runner_config, run

    config = load_runner_config(config_file, required=config_file is not None)
    EnvironmentMasterKeys(create=True).current()  # first run: a local master key, with a warning
    printer, live = _progress_printer()
    options = RunOptions.from_config(
        config, store_path=db, tenants=list(tenants) or None, samples=samples, mappings=mappings,
        tenants_dir=tenants_dir, engine=engine, since=parse_time(since, "--since"),
        until=parse_time(until, "--until"), progress=printer, executor=executor, scheduler=scheduler,
        workers=workers, window=timedelta(hours=window_hours) if window_hours else None)
    if live is not None:
        with live:
            report = run(options)
    else:
        report = run(options)
    rows = [[s.tenant_id, s.plugin, s.source, s.read, s.mapped, s.filtered, s.rejected, s.events, s.inserted,
             f"{s.duration_s:.2f}", s.status if not s.error else f"{s.status}: {s.error}"] for s in report.sources]
    print_table(f"run {report.run_id} -> {options.store_path} ({report.duration_s:.1f}s)",
                ["tenant", "plugin", "source", "read", "mapped", "filtered", "rejected", "events", "new", "s",
                 "status"], rows)
    for extra in getattr(report, "summaries", []):
        click.echo(extra)
    if not report.sources:
        click.secho(f"no sources found for tenant(s) {', '.join(options.tenants)}", fg="yellow", err=True)
    rejected = sum(s.rejected for s in report.sources)
    if rejected:
        click.echo(f"{rejected} record(s) rejected: see `integrations dlq list`", err=True)
    failed = [s for s in report.sources if s.status == "failed"]
    if failed and not report.all_failed:
        click.secho(f"{len(failed)} source(s) failed; the others completed (degraded)", fg="yellow", err=True)
    return 1 if report.all_failed else 0
