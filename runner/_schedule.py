"""`integrations schedule`: the jobs of runner.yaml on their cron schedules, never two runs of one job at once.

```yaml
jobs:
  - name: nightly                  # also the lock file: data/locks/nightly.lock
    cron: "0 2 * * *"              # standard crontab (0 or 7 = Sunday), read in `timezone`
    timezone: UTC
    tenants: [demo, acme]          # empty or absent: every tenant with a file under tenants/
    sources: [github, cloudwatch/metric_data]   # optional: plugin or plugin/source
```

APScheduler (3.x) fires the jobs: one cron trigger per job, `max_instances=1` and `coalesce=True`
(a machine that slept runs a late job once, not once per missed time), and one worker thread, so
the jobs of one scheduler run one after another (they write the same store: one writer). Every run takes the job's
file lock first (`filelock`, an OS lock held by the process, released by the OS if it dies), so a
second scheduler, on this machine or on another one sharing the lock folder, skips a run that is
still going instead of overlapping it; the skip is logged.

Stopping: SIGTERM (or Ctrl-C) sets the stop flag. No new run starts; the runner checks
`stop_requested()` between batches, so the run in progress finishes the batch it is in, and the
process exits 0. Work not done is done by the next run (watermarks move only with their events).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from integrations.errors import ConfigError

log = logging.getLogger(__name__)

JOB_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$"
DEFAULT_LOCK_DIR = Path("data/locks")

# -- the stop flag ---------------------------------------------------------------------------

_STOP = threading.Event()


def stop_requested() -> bool:
    """True once the process was asked to stop: finish the current batch, start no other."""
    return _STOP.is_set()


def request_stop() -> None:
    """Ask every run in this process to stop after its current batch (what SIGTERM does)."""
    _STOP.set()


def clear_stop() -> None:
    """Forget a stop request (a new scheduler, or a test)."""
    _STOP.clear()


# -- cron ------------------------------------------------------------------------------------

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _standard_day_of_week(text: str) -> str:
    """Crontab day-of-week numbers (0 and 7 = Sunday) as names: APScheduler 3 counts 0 as Monday."""
    names: list[str] = []
    for token in text.split(","):
        base, _, step = token.partition("/")
        if base == "*" and not step:
            return "*"
        if base == "*":
            low, high = 0, 6
        elif re.fullmatch(r"\d+", base):
            low = high = int(base)
            if step:
                high = 6
        elif re.fullmatch(r"\d+-\d+", base):
            low, high = (int(x) for x in base.split("-"))
        else:  # names (mon-fri) mean the same to both
            names.append(token)
            continue
        if not 0 <= low <= high <= 7:
            raise ValueError(f"day of week '{token}' is out of 0-7")
        if step and not step.isdigit():
            raise ValueError(f"day of week step '{step}' is not a number")
        names.extend(_DAY_NAMES[d] for d in range(low, high + 1, int(step or 1)))
    return ",".join(dict.fromkeys(names))


def cron_trigger(expression: str, tz: str = "UTC"):
    """An APScheduler CronTrigger for a standard 5-field crontab line."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"a cron line has 5 fields (minute hour day month weekday), not {len(fields)}")
    minute, hour, day, month, weekday = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=_standard_day_of_week(weekday),
                       timezone=tz)


class JobConfig(BaseModel):
    """One scheduled job of runner.yaml."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=JOB_NAME)
    cron: str = Field(description="Standard crontab line: minute hour day month weekday")
    timezone: str = "UTC"
    tenants: list[str] = Field(default_factory=list, description="empty: every tenant with a file")
    sources: list[str] | None = Field(default=None, description="plugin or plugin/source; default: all")
    enabled: bool = True
    misfire_grace_seconds: int = Field(default=300, ge=1, description="How late a run may still start")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}' (e.g. UTC, Europe/Paris)") from None
        return value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        try:
            cron_trigger(value)
        except ValueError as err:
            raise ValueError(f"cron '{value}': {err}") from None
        return value

    def trigger(self):
        return cron_trigger(self.cron, self.timezone)

    def wants(self, plugin: str, source: str) -> bool:
        """Whether this job runs the (plugin, source); no `sources` means every one."""
        return self.sources is None or plugin in self.sources or f"{plugin}/{source}" in self.sources


class _JobsSection(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the other sections of runner.yaml are someone else's
    jobs: list[JobConfig] = Field(default_factory=list)


def validate_section(model: type[BaseModel], data: Any, *, file: str | None = None, doc: Any = None) -> BaseModel:
    """Validate one section model of runner.yaml; errors name `file:line:col` when the document is at hand."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as err:
        if doc is not None:
            from integrations.located_yaml import located_validation_errors

            errors = located_validation_errors(err, doc, file, ConfigError)
        else:
            errors = [ConfigError(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}", file=file,
                                  field=".".join(str(p) for p in e["loc"])) for e in err.errors()]
        first = errors[0]
        for e in errors:
            e.message = e.message.replace(f"'{e.field}': ", "").replace("Value error, ", "")
        if len(errors) > 1:
            first.hint = "; ".join(str(e) for e in errors[1:])
        raise first from None


def check_unique_names(items: Sequence[Any], section: str, *, file: str | None = None, doc: Any = None) -> None:
    """Names of jobs (and sinks) are used as lock and folder names: each may appear once."""
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.name in seen:
            mark = doc.mark((section, i, "name")) if doc is not None else None
            raise ConfigError(f"{section}[{i}].name: '{item.name}' is used twice", file=file,
                              line=mark.line if mark else None, col=mark.value_col if mark else None,
                              field=f"{section}.{i}.name")
        seen.add(item.name)


def parse_jobs(data: Any, *, file: str | None = None, doc: Any = None) -> list[JobConfig]:
    """The `jobs:` list of runner.yaml, checked; names must be unique (they name the locks)."""
    section = validate_section(_JobsSection, {"jobs": data or []}, file=file, doc=doc)
    check_unique_names(section.jobs, "jobs", file=file, doc=doc)
    return section.jobs


def load_runner_document(path: Path):
    """runner.yaml as a located document (data plus the line of every node)."""
    from integrations.located_yaml import LocatedDocument, load_located

    if not path.exists():
        raise ConfigError(f"no runner configuration at {path}", file=str(path),
                          hint="write a runner.yaml with a `jobs:` list (see the README, 'Scheduled runs')")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        return LocatedDocument(data={})
    doc = load_located(text, str(path), ConfigError)
    if not isinstance(doc.data, dict):
        raise ConfigError("runner.yaml must be a mapping (jobs:, sinks:, ...)", file=str(path), line=1, col=1)
    return doc


def load_jobs(path: Path) -> list[JobConfig]:
    """The jobs of a runner.yaml file."""
    doc = load_runner_document(path)
    return parse_jobs(doc.data.get("jobs"), file=str(path), doc=doc)


def next_fire_times(job: JobConfig, after: datetime, count: int = 3) -> list[datetime]:
    """The next `count` times the job fires after `after` (any clock: tests pass a fixed one)."""
    trigger = job.trigger()
    times: list[datetime] = []
    previous = None
    now = after
    while len(times) < count:
        nxt = trigger.get_next_fire_time(previous, now)
        if nxt is None:
            break
        times.append(nxt)
        previous, now = nxt, nxt + timedelta(microseconds=1)
    return times


# -- one run of a job ------------------------------------------------------------------------


@dataclass
class JobOutcome:
    """What one firing of a job did."""

    job: str
    status: str                      # ran | failed | skipped
    started_at: datetime
    finished_at: datetime
    reason: str | None = None        # why it was skipped, or the error
    result: Any = None

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class JobRunner:
    """Runs one job under its lock: a run that finds the lock held is skipped, never queued behind it.

    `run(job)` is the work (the batch runner; a stub in tests); `clock()` gives the time (tests pass
    a fake one). Outcomes are logged, kept in `outcomes` (the last 100) and passed to `on_outcome`.
    """

    def __init__(self, job: JobConfig, run: Callable[[JobConfig], Any], *, lock_dir: Path = DEFAULT_LOCK_DIR,
                 clock: Callable[[], datetime] = _utcnow,
                 on_outcome: Callable[[JobOutcome], None] | None = None) -> None:
        self.job = job
        self.run = run
        self.lock_path = Path(lock_dir) / f"{job.name}.lock"
        self.clock = clock
        self.on_outcome = on_outcome
        self.outcomes: list[JobOutcome] = []

    def __call__(self) -> JobOutcome:
        from filelock import FileLock, Timeout

        started = self.clock()
        if stop_requested():
            return self._done(JobOutcome(self.job.name, "skipped", started, started, "stopping"))
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.lock_path, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            reason = f"the previous run still holds {self.lock_path}"
            return self._done(JobOutcome(self.job.name, "skipped", started, self.clock(), reason))
        try:
            log.info("job %s: run starts", self.job.name)
            try:
                result = self.run(self.job)
            except Exception as err:  # the scheduler goes on; the next firing tries again
                return self._done(JobOutcome(self.job.name, "failed", started, self.clock(),
                                             f"{type(err).__name__}: {err}"))
            return self._done(JobOutcome(self.job.name, "ran", started, self.clock(), result=result))
        finally:
            lock.release()

    def _done(self, outcome: JobOutcome) -> JobOutcome:
        if outcome.status == "skipped":
            log.warning("job %s: run skipped: %s", outcome.job, outcome.reason)
        elif outcome.status == "failed":
            log.error("job %s: run failed after %.1fs: %s", outcome.job, outcome.seconds, outcome.reason)
        else:
            log.info("job %s: run finished in %.1fs", outcome.job, outcome.seconds)
        self.outcomes = [*self.outcomes[-99:], outcome]
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome


# -- the scheduler ---------------------------------------------------------------------------


@dataclass
class JobScheduler:
    """The jobs on an APScheduler BackgroundScheduler; `run(job)` is called for each firing."""

    jobs: Sequence[JobConfig]
    run: Callable[[JobConfig], Any]
    lock_dir: Path = DEFAULT_LOCK_DIR
    on_outcome: Callable[[JobOutcome], None] | None = None
    runners: dict[str, JobRunner] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        enabled = [job for job in self.jobs if job.enabled]
        # One worker: runs of different jobs write the same store, which takes one writer at a time;
        # a job that fires while another runs waits its turn (and a repeat of a waiting job is dropped).
        self.scheduler = BackgroundScheduler(
            timezone=timezone.utc,
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        for job in enabled:
            runner = JobRunner(job, self.run, lock_dir=self.lock_dir, on_outcome=self.on_outcome)
            self.runners[job.name] = runner
            self.scheduler.add_job(runner, trigger=job.trigger(), id=job.name, name=job.name,
                                   misfire_grace_time=job.misfire_grace_seconds)

    def next_runs(self, now: datetime | None = None, count: int = 3) -> dict[str, list[datetime]]:
        """Each enabled job's next fire times after `now`."""
        now = now or _utcnow()
        return {name: next_fire_times(runner.job, now, count) for name, runner in self.runners.items()}

    def start(self, *, run_now: bool = False) -> None:
        """Start firing; with `run_now`, every job also runs once at once (then on its schedule)."""
        clear_stop()
        self.scheduler.start()
        if run_now:
            for name in self.runners:
                self.scheduler.modify_job(name, next_run_time=_utcnow())

    def stop(self, *, wait: bool = True) -> None:
        """Start no new run; with `wait`, return once the runs in progress have finished."""
        request_stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)

    def serve(self, stopped: threading.Event, *, run_now: bool = False) -> None:
        """Run until `stopped` is set (by a signal handler), then stop cleanly."""
        self.start(run_now=run_now)
        try:
            while not stopped.wait(0.5):
                pass
        finally:
            self.stop(wait=True)


__all__ = [
    "DEFAULT_LOCK_DIR",
    "JobConfig",
    "JobOutcome",
    "JobRunner",
    "JobScheduler",
    "clear_stop",
    "cron_trigger",
    "check_unique_names",
    "load_jobs",
    "load_runner_document",
    "next_fire_times",
    "parse_jobs",
    "request_stop",
    "stop_requested",
    "validate_section",
]
