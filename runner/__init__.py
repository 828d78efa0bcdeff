"""The batch runner: a shell over the core that fetches, maps, enriches and stores per tenant."""

from runner._run import RunOptions, RunReport, replay_fetch_dead_letters, run

__all__ = ["RunOptions", "RunReport", "replay_fetch_dead_letters", "run"]
