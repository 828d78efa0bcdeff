"""Executors: where partitions run. One small interface, a local pool and a Dask cluster behind it.

    with make_executor("dask", scheduler="tcp://scheduler:8786") as executor:
        handles = executor.submit(run_partition, tasks)     # one handle per task, in task order
        for handle in handles:
            result = handle.result()                         # re-raises what the task raised

A handle is the library's own future (`concurrent.futures.Future` or `distributed.Future`): both
have `result()` and `cancel()`. Workers compute and hand results back; they never write the
store, so the process that called `submit` stays its one writer.

- `LocalExecutor()`: a thread pool (the default: mapping releases little of the GIL, but fetching
  waits on the network, and threads share the runner's health monitor);
  `LocalExecutor(processes=True)`: a process pool (spawned workers; tasks and results are pickled).
- `DaskExecutor(address)`: a `dask.distributed.Client` on a scheduler address (`tcp://host:8786`),
  a `LocalCluster`, or a client. Tasks and results cross the network pickled; the workers need
  this package installed, the mappings folder, and the samples (a shared folder or an object store URI).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from integrations.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "process", "dask")


class TaskHandle(Protocol):
    """A submitted task: its result when done (or the error it raised), and a way to call it off."""

    def result(self, timeout: float | None = None) -> Any: ...

    def cancel(self) -> Any: ...


class Executor(Protocol):
    """Runs `fn(item)` for many items somewhere, handing results back to the caller."""

    name: str
    in_process: bool  # True: tasks share the caller's memory (unpicklable helpers may ride along)

    def submit(self, fn: Callable[[T], R], items: Sequence[T]) -> list[TaskHandle]:
        """Start every task; the handles come back in the order of `items`."""

    def run(self, items: Sequence[T], fn: Callable[[T], R]) -> list[R]:
        """Every result, in the order of `items`; raises the first task error met."""

    def close(self) -> None:
        """Release the workers (those this executor started)."""


class _ExecutorBase:
    name = "base"
    in_process = False

    def submit(self, fn: Callable[[T], R], items: Sequence[T]) -> list[TaskHandle]:  # pragma: no cover
        raise NotImplementedError

    def run(self, items: Sequence[T], fn: Callable[[T], R]) -> list[R]:
        handles = self.submit(fn, list(items))
        try:
            return [handle.result() for handle in handles]
        finally:
            for handle in handles:
                handle.cancel()

    def close(self) -> None:  # pragma: no cover
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(_ExecutorBase):
    """A thread pool, or (`processes=True`) a pool of spawned processes, on this machine."""

    def __init__(self, workers: int | None = None, *, processes: bool = False) -> None:
        self.workers = workers or min(8, os.cpu_count() or 1)
        if self.workers < 1:
            raise ConfigError(f"an executor needs at least one worker, not {self.workers}", field="workers")
        self.processes = processes
        self.name = "process" if processes else "local"
        self.in_process = not processes
        self._pool: Any = None

    def _ensure_pool(self):
        if self._pool is None:
            if self.processes:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                # spawn: the runner has threads (HTTP clients, schedulers); forking them is unsafe
                self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
            else:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="partition")
        return self._pool

    def submit(self, fn: Callable[[T], R], items: Sequence[T]) -> list[TaskHandle]:
        pool = self._ensure_pool()
        return [pool.submit(fn, item) for item in items]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __repr__(self) -> str:
        return f"LocalExecutor(workers={self.workers}, processes={self.processes})"


class DaskExecutor(_ExecutorBase):
    """The same tasks on a Dask cluster (`pip install 'integrations-workbench[dask]'`)."""

    name = "dask"
    in_process = False

    def __init__(self, address: Any, *, timeout: float = 20.0) -> None:
        try:
            from dask.distributed import Client
        except ImportError:
            raise ConfigError("the Dask executor needs dask.distributed",
                              hint="pip install 'integrations-workbench[dask]'") from None
        if isinstance(address, Client):
            self.client, self._own = address, False
        else:
            try:
                self.client, self._own = Client(address, timeout=timeout, set_as_default=False), True
            except (OSError, TimeoutError) as err:
                raise ConfigError(f"cannot reach the Dask scheduler at {address}: {err}", field="scheduler",
                                  hint="start one with `dask scheduler` and workers with `dask worker ADDRESS`") from None
        self.address = getattr(getattr(self.client, "scheduler", None), "address", None)

    def submit(self, fn: Callable[[T], R], items: Sequence[T]) -> list[TaskHandle]:
        if not items:
            return []
        # pure=False: a task is work with effects outside (an API fetch), never to be answered from a cache.
        return list(self.client.map(fn, list(items), pure=False))

    def close(self) -> None:
        if self._own:
            self.client.close()

    def __repr__(self) -> str:
        return f"DaskExecutor({self.address!r})"


def make_executor(name: str = "local", *, workers: int | None = None, scheduler: Any = None) -> Executor:
    """The executor a command line or runner.yaml names: local (threads), process, or dask."""
    if name in ("local", "thread", "threads"):
        return LocalExecutor(workers)
    if name in ("process", "processes"):
        return LocalExecutor(workers, processes=True)
    if name == "dask":
        if not scheduler:
            raise ConfigError("the dask executor needs a scheduler address", field="scheduler",
                              hint="e.g. --executor dask --scheduler tcp://10.0.0.5:8786")
        return DaskExecutor(scheduler)
    raise ConfigError(f"unknown executor '{name}'", field="executor", hint=f"choose one of: {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "DaskExecutor", "Executor", "LocalExecutor", "TaskHandle", "make_executor"]
