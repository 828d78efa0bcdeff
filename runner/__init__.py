"""The batch runner: a shell over the core that fetches, maps, enriches and stores per tenant."""

from runner._run import RunOptions, RunReport, run

__all__ = ["RunOptions", "RunReport", "run"]
