"""`integrations schedule` in a real process, its batch run replaced by a slow stub made of batches.

Each batch appends `start N` and `end N` to $STUB_LOG; between batches the stub checks
`stop_requested()`, as the runner does, and writes `stopped` when it stops there. Used by
tests/runner/test_runner_schedule.py (SIGTERM lets the current batch finish, then exits 0).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import runner
from integrations.cli import main
from runner._schedule import stop_requested


def _append(line: str) -> None:
    with Path(os.environ["STUB_LOG"]).open("a", encoding="utf-8") as log:
        log.write(line + "\n")


def slow_run(options):
    for n in range(int(os.environ.get("STUB_BATCHES", "20"))):
        if stop_requested():
            _append("stopped")
            break
        _append(f"start {n}")
        time.sleep(float(os.environ.get("STUB_BATCH_SECONDS", "0.5")))
        _append(f"end {n}")
    return runner.RunReport(run_id="stub")


if __name__ == "__main__":
    runner.run = slow_run
    sys.exit(main(sys.argv[1:]))
