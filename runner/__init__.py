"""The batch runner: a shell over the core that fetches, maps, enriches and stores per tenant."""

from runner._config import JobConfig, RunnerConfig, load_runner_config
from runner._run import RunOptions, RunReport, replay_fetch_dead_letters, run

__all__ = ["JobConfig", "RunnerConfig", "load_runner_config", "RunOptions", "RunReport", "replay_fetch_dead_letters", "run"]
