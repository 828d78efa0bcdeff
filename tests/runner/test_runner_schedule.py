"""`integrations schedule`: cron triggers on a fake clock, one run of a job at a time, a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from integrations.errors import ConfigError
from runner._schedule import (
    JobRunner,
    JobScheduler,
    clear_stop,
    load_jobs,
    next_fire_times,
    parse_jobs,
    request_stop,
    stop_requested,
)
from tests.conftest import ROOT

UTC = timezone.utc


def job(**fields):
    return parse_jobs([{"name": "j", "cron": "* * * * *", **fields}])[0]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def in_utc(times):
    return [t.astimezone(UTC) for t in times]


# -- triggers on a fake clock ---------------------------------------------------------------------


def test_next_fire_times_on_a_fake_clock():
    now = utc(2024, 5, 1, 1, 59, 30)  # a Wednesday
    assert in_utc(next_fire_times(job(cron="*/15 * * * *"), now, 3)) == [
        utc(2024, 5, 1, 2, 0), utc(2024, 5, 1, 2, 15), utc(2024, 5, 1, 2, 30)]
    assert in_utc(next_fire_times(job(cron="0 2 * * *"), now, 2)) == [utc(2024, 5, 1, 2), utc(2024, 5, 2, 2)]
    friday_noon = utc(2024, 5, 3, 12)
    assert in_utc(next_fire_times(job(cron="0 2 * * 1-5"), friday_noon, 3)) == [
        utc(2024, 5, 6, 2), utc(2024, 5, 7, 2), utc(2024, 5, 8, 2)]  # weekdays: Monday to Friday


def test_weekday_numbers_mean_what_crontab_says():
    """0 and 7 are Sunday, 1 is Monday (APScheduler 3 alone would read 0 as Monday)."""
    wednesday = utc(2024, 5, 1)
    sunday = utc(2024, 5, 5)
    assert in_utc(next_fire_times(job(cron="0 0 * * 0"), wednesday, 1)) == [sunday]
    assert in_utc(next_fire_times(job(cron="0 0 * * 7"), wednesday, 1)) == [sunday]
    assert in_utc(next_fire_times(job(cron="0 0 * * sun"), wednesday, 1)) == [sunday]
    assert in_utc(next_fire_times(job(cron="0 0 * * 1"), wednesday, 1)) == [utc(2024, 5, 6)]
    assert in_utc(next_fire_times(job(cron="0 0 * * */2"), wednesday, 3)) == [
        utc(2024, 5, 2), utc(2024, 5, 4), utc(2024, 5, 5)]  # sun, tue, thu, sat


def test_a_time_zone_keeps_local_time_across_daylight_saving():
    paris = job(cron="30 1 * * *", timezone="Europe/Paris")
    times = in_utc(next_fire_times(paris, utc(2024, 3, 29, 12), 3))
    # 01:30 in Paris: UTC+1 until the clocks go forward at 01:00 UTC on 31 March, UTC+2 after
    assert times == [utc(2024, 3, 30, 0, 30), utc(2024, 3, 31, 0, 30), utc(2024, 3, 31, 23, 30)]


def test_the_scheduler_reports_next_runs_for_a_given_now(tmp_path):
    jobs = parse_jobs([{"name": "a", "cron": "0 * * * *"}, {"name": "b", "cron": "30 6 * * *", "enabled": False}])
    scheduler = JobScheduler(jobs, run=lambda j: None, lock_dir=tmp_path)
    assert {name: in_utc(t) for name, t in scheduler.next_runs(utc(2024, 5, 1, 10, 1), 2).items()} == {
        "a": [utc(2024, 5, 1, 11), utc(2024, 5, 1, 12)]}


def test_job_configuration_errors_name_the_line(tmp_path):
    path = tmp_path / "runner.yaml"
    path.write_text("jobs:\n  - name: nightly\n    cron: '0 2 * *'\n")
    with pytest.raises(ConfigError) as err:
        load_jobs(path)
    assert (err.value.file, err.value.line) == (str(path), 3) and "5 fields" in str(err.value)
    path.write_text("jobs:\n  - {name: a, cron: '0 2 * * *'}\n  - {name: a, cron: '0 3 * * *'}\n")
    with pytest.raises(ConfigError, match="used twice") as err:
        load_jobs(path)
    assert err.value.line == 3
    path.write_text("jobs:\n  - {name: a, cron: '0 2 * * *', timezone: Mars/Olympus}\n")
    with pytest.raises(ConfigError, match="unknown time zone"):
        load_jobs(path)


# -- one run of a job at a time -----------------------------------------------------------------


class FakeWallClock:
    """Wall time that moves only when a run says so."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def test_job_runner_outcomes_on_an_injected_clock(tmp_path):
    clock = FakeWallClock(utc(2024, 5, 1, 2))

    def run(j):
        clock.now += timedelta(minutes=7)
        return "done"

    outcomes = []
    runner = JobRunner(job(name="nightly"), run, lock_dir=tmp_path, clock=clock, on_outcome=outcomes.append)
    first = runner()
    assert (first.status, first.started_at, first.finished_at, first.seconds, first.result) == (
        "ran", utc(2024, 5, 1, 2), utc(2024, 5, 1, 2, 7), 420.0, "done")

    def broken(j):
        clock.now += timedelta(seconds=5)
        raise RuntimeError("the store is full")

    failing = JobRunner(job(name="nightly"), broken, lock_dir=tmp_path, clock=clock, on_outcome=outcomes.append)
    assert (failing().status, outcomes[-1].reason) == ("failed", "RuntimeError: the store is full")
    assert runner().status == "ran"  # a failed run released the lock
    assert [o.status for o in outcomes] == ["ran", "failed", "ran"]


def test_a_second_run_of_a_job_is_skipped_while_the_first_holds_the_lock(tmp_path):
    """Two schedulers (here two runners in two threads) firing one job: the second run is skipped, not queued."""
    release, started = threading.Event(), threading.Event()
    calls = []

    def slow(j):
        calls.append(j.name)
        started.set()
        assert release.wait(10)

    first, second = (JobRunner(job(name="nightly"), slow, lock_dir=tmp_path) for _ in range(2))
    box = []
    thread = threading.Thread(target=lambda: box.append(first()))
    thread.start()
    assert started.wait(10)
    skipped = second()
    assert skipped.status == "skipped" and "nightly.lock" in skipped.reason
    other_job = JobRunner(job(name="hourly"), lambda j: "ok", lock_dir=tmp_path)()
    assert other_job.status == "ran"  # locks are per job
    release.set()
    thread.join(10)
    assert box[0].status == "ran" and calls == ["nightly"]
    assert second().status == "ran"


def test_the_lock_holds_across_processes(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, filelock; lock = filelock.FileLock(sys.argv[1]); lock.acquire(); "
                               "print('held', flush=True); sys.stdin.read()", str(tmp_path / "nightly.lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        runner = JobRunner(job(name="nightly"), lambda j: "ran", lock_dir=tmp_path)
        assert runner().status == "skipped"
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert runner().status == "ran"  # the other process exited: its lock went with it


def test_a_stop_request_skips_runs_that_have_not_started(tmp_path):
    request_stop()
    assert stop_requested()
    outcome = JobRunner(job(), lambda j: pytest.fail("must not run"), lock_dir=tmp_path)()
    assert (outcome.status, outcome.reason) == ("skipped", "stopping")
    clear_stop()


def test_apscheduler_fires_the_job_and_never_starts_a_second_instance(tmp_path):
    release = threading.Event()
    calls = []

    def slow(j):
        calls.append(time.monotonic())
        release.wait(10)

    outcomes = []
    scheduler = JobScheduler(parse_jobs([{"name": "yearly", "cron": "0 0 1 1 *"}]), run=slow, lock_dir=tmp_path,
                             on_outcome=outcomes.append)
    scheduler.start(run_now=True)
    try:
        deadline = time.monotonic() + 10
        while not calls and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(calls) == 1
        scheduler.scheduler.modify_job("yearly", next_run_time=datetime.now(UTC))  # fire again while it runs
        time.sleep(0.5)
        assert len(calls) == 1  # max_instances=1: APScheduler skips it (and the lock would too)
        release.set()
        deadline = time.monotonic() + 10
        while not outcomes and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        release.set()
        scheduler.stop()
    assert [o.status for o in outcomes] == ["ran"]
    assert scheduler.scheduler.running is False


# -- the command -------------------------------------------------------------------------------


def test_schedule_list_prints_next_runs(cli, tmp_path):
    path = tmp_path / "runner.yaml"
    path.write_text("jobs:\n  - {name: nightly, cron: '0 2 * * *', tenants: [demo]}\n"
                    "  - {name: hourly, cron: '5 * * * *'}\n")
    r = cli("schedule", "--config", str(path), "--list")
    assert r.code == 0, r
    assert "nightly" in r.out and "0 2 * * *" in r.out and "02:00 UTC" in r.out and "(every tenant)" in r.out
    r = cli("schedule", "--config", str(path), "--list", "--job", "weekly")
    assert r.code == 2 and "weekly" in r.err and "nightly" in r.err


def test_sigterm_lets_the_current_batch_finish_and_exits_0(tmp_path):
    """A real `integrations schedule` process whose run is a slow stub: SIGTERM mid-batch, exit 0 after it."""
    config = tmp_path / "runner.yaml"
    config.write_text("jobs:\n  - {name: slow, cron: '0 3 * * *', tenants: [demo]}\n")
    log = tmp_path / "batches.log"
    env = {**os.environ, "STUB_LOG": str(log), "STUB_BATCHES": "20", "STUB_BATCH_SECONDS": "0.6",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "runner" / "schedule_stub.py"), "schedule", "--config", str(config),
         "--lock-dir", str(tmp_path / "locks"), "--db", str(tmp_path / "store.duckdb"), "--now"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not (log.exists() and "start 0" in log.read_text()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = log.read_text().splitlines()
    starts = [line for line in lines if line.startswith("start")]
    ends = [line for line in lines if line.startswith("end")]
    assert len(starts) == len(ends) and lines[-1] == "stopped"  # the batch under way finished, then it stopped
    assert len(starts) < 5
    assert "slow" in out and "03:00 UTC" in out  # next run times shown at start
    assert "SIGTERM: finishing the current batch" in err and "job slow: ran" in err and "scheduler stopped" in err
