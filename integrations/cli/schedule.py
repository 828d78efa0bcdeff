"""`integrations schedule`: run the jobs of runner.yaml on their cron schedules until stopped.

Prints each job's next run times at start. SIGTERM or Ctrl-C stops it cleanly: no new run
starts, the run in progress finishes its current batch, and the command exits 0.
"""

from __future__ import annotations

import signal
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from integrations.cli._common import db_option, print_table
from integrations.errors import ConfigError, UsageError


def _job_run(config_path: Path, db: Path | None):
    """The work of one firing: a batch run over the job's tenants.

    runner.yaml is read again at each firing, so a change to it (a sink, the store) applies from the
    next run; a change to the jobs themselves applies once the scheduler is restarted.
    `runner.run` is looked up at call time (tests replace it with a stub).
    """

    def run(job) -> Any:
        import runner
        from integrations.tenants import list_tenants

        config = runner.load_runner_config(config_path, required=True)
        tenants = list(job.tenants) or list_tenants(config.tenants_dir) or list(config.default_tenants)
        options = runner.RunOptions.from_config(config, tenants=tenants, store_path=db)
        report = runner.run(options)
        sources = getattr(report, "sources", []) or []
        return {"run_id": getattr(report, "run_id", None), "sources": len(sources),
                "failed": sum(1 for s in sources if getattr(s, "status", "") == "failed")}

    return run


def _print_outcome(outcome) -> None:
    stamp = outcome.finished_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    detail = f": {outcome.reason}" if outcome.reason else ""
    if outcome.status == "ran" and isinstance(outcome.result, dict) and outcome.result.get("run_id"):
        detail = f": run {outcome.result['run_id']}, {outcome.result['sources']} source(s), " \
                 f"{outcome.result['failed']} failed"
    click.echo(f"{stamp} job {outcome.job}: {outcome.status} in {outcome.seconds:.1f}s{detail}", err=True)


def _format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@click.command(name="schedule")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("runner.yaml"),
              show_default=True, envvar="INTEGRATIONS_RUNNER_CONFIG", show_envvar=True,
              help="Runner configuration with a `jobs:` list.")
@db_option
@click.option("--job", "only", multiple=True, help="Schedule only this job (repeatable).")
@click.option("--lock-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data/locks"),
              show_default=True, help="Folder of the per-job lock files (share it between schedulers).")
@click.option("--now", "run_now", is_flag=True, help="Also run every job once at start.")
@click.option("--list", "list_only", is_flag=True, help="Print the jobs and their next run times, then exit.")
def command(config_path: Path, db: Path | None, only: tuple[str, ...], lock_dir: Path, run_now: bool,
            list_only: bool) -> int:
    """Run the jobs of runner.yaml on their cron schedules, one run of a job at a time.

    A run that finds its job still running (here or in another scheduler sharing --lock-dir) is
    skipped and logged. SIGTERM lets the current batch finish, then exits 0.
    """
    from runner import load_runner_config
    from runner._schedule import JobScheduler, load_jobs, next_fire_times

    load_runner_config(config_path, required=True)  # the whole file is valid before anything is scheduled
    jobs = load_jobs(config_path)
    if only:
        unknown = sorted(set(only) - {job.name for job in jobs})
        if unknown:
            raise UsageError(f"no job named {', '.join(unknown)} in {config_path}",
                             hint=f"jobs: {', '.join(job.name for job in jobs) or '(none)'}")
        jobs = [job for job in jobs if job.name in only]
    enabled = [job for job in jobs if job.enabled]
    if not enabled:
        raise ConfigError(f"no enabled jobs in {config_path}", file=str(config_path),
                          hint="add a job: jobs: [{name: nightly, cron: '0 2 * * *', tenants: [demo]}]")
    now = datetime.now(timezone.utc)
    rows = [[job.name, job.cron, job.timezone, ", ".join(job.tenants) or "(every tenant)",
             "  ".join(_format_time(t) for t in next_fire_times(job, now, 3))] for job in enabled]
    print_table(f"jobs of {config_path}", ["job", "cron", "timezone", "tenants", "next runs"], rows)
    if list_only:
        return 0

    scheduler = JobScheduler(enabled, _job_run(config_path, db), lock_dir=lock_dir, on_outcome=_print_outcome)
    stopped = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        from runner._schedule import request_stop

        request_stop()
        if not stopped.is_set():
            click.echo(f"{signal.Signals(signum).name}: finishing the current batch, then stopping", err=True)
        stopped.set()

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, on_signal)
        except ValueError:  # not the main thread (embedded use): the caller stops us
            pass
    click.echo(f"scheduler started ({len(enabled)} job(s), locks in {lock_dir}); SIGTERM or Ctrl-C stops it",
               err=True)
    try:
        scheduler.serve(stopped, run_now=run_now)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("scheduler stopped", err=True)
    return 0
