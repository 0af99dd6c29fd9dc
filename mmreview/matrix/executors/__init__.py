"""Where the matrix's builds run: an Executor, this machine (local.py) or a Dask cluster.

run_matrix (matrix/run.py) plans the same builds for either and asks its Executor only what
differs: which targets are available (and with which toolchain, for the cache key), how many
builds run at once, how the series' code is confined, and the scheduler that runs the builds
(scheduler.py: the queueing, priority and build record both share).  A cell runs the same way
on either (matrix/cell.py).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol

if TYPE_CHECKING:
    from mmreview.matrix.executors.scheduler import Scheduler
    from mmreview.matrix.sandbox import Sandbox
    from mmreview.matrix.targets import Availability, Target


class Executor(Protocol):
    threads: int                 # builds and runs at once

    def availability(self, target: "Target") -> "Availability":
        """Whether `target` can run, and with which sanitizers and liburcu."""

    def toolchain(self, target: "Target") -> tuple[str, str] | None:
        """What builds `target`, for the cache key (build.toolchain); None: this machine."""

    def require(self, targets: list["Target"]) -> None:
        """Exit 3 (InfraError) before anything runs if a named target can never run here."""

    def confinement(self, tree_path: Path, no_sandbox: bool = False) -> "Sandbox":
        """How the series' code is confined (exit 3 when it cannot be, unless `no_sandbox`)."""

    def scheduler(self, procs, progress, co, workdir: Path, use_cache: bool, **kw) -> "Scheduler":
        """The scheduler that runs this review's builds."""

    def close(self) -> None:
        ...


@contextmanager
def executor_for(address: str | None, jobs: int | None = None) -> Iterator[Executor]:
    """The Executor for the review's duration: the Dask cluster at `address` (connected here,
    exit 3 if it does not answer), else this machine with `jobs` at once (default: its cores)."""
    if not address:
        from mmreview.matrix.executors.local import LocalExecutor
        yield LocalExecutor(jobs)
        return
    from mmreview.matrix.executors.dask_client import connect
    cluster = connect(address)
    try:
        yield cluster
    finally:
        cluster.close()
