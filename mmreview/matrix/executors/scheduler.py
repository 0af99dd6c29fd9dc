"""The matrix's scheduler: which builds run, in which order, and what becomes of their cells.

One Scheduler, whatever runs the builds: it takes each build's results from the result cache
when all are there, holds a tip (or per-patch) build back until the base build of its target and
suite has ended (through the compiler cache it then recompiles only what the series changed),
orders the work by `Build.work()` (the longest chain first: qemu targets' long runs start
first), keeps the build record, and puts each cell into the result cache.  Where a build runs
is its subclass's: `LocalScheduler` (executors/local.py, this machine's pool) or
`ClusterScheduler` (executors/dask_scheduler.py, Dask workers); each gives `_queue_build` and
`wait`, and calls `_built` (the record) and `_finished` (the followers) as builds end.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mmreview.matrix import result_cache
from mmreview.matrix.build import BuildOutcome, BuildSpec, ProcessRegistry, export_revision
from mmreview.matrix.results import RunResult
from mmreview.matrix.sandbox import BUILD_TIMEOUT, Sandbox
from mmreview.matrix.suites import Binary
from mmreview.matrix.targets import Target

BUILD_SECONDS = 8.0     # a suite's build, about the same on every target (measured 2-12 s)


@dataclass
class Event:
    kind: str                    # "plan" (total: cells to run) | "start" | "built" | "done" (one result)
    label: str = ""              # e.g. "arm64 radix-tree xarray @tip"
    total: int = 0               # plan: number of tasks
    result: RunResult | None = None
    seconds: float = 0.0


def estimate(target: Target, binary: Binary) -> float:
    """A binary's run time on `target`, in seconds (suites.py measures them natively)."""
    return binary.seconds * target.slowdown


@dataclass
class Build:
    """One build (target, suite, key) and the runs waiting on it; shared by revs with the same key."""
    spec: BuildSpec
    rev: str
    key: str
    label: str
    binaries: list[Binary]
    results: dict[str, RunResult] = field(default_factory=dict)
    outcome: BuildOutcome | None = None
    workdir: Path | None = None
    runs_left: int = 0
    followers: list["Build"] = field(default_factory=list)   # builds queued when this one ends
    queued: bool = False
    finished: bool = False

    def work(self) -> float:
        """Its priority: the longest chain it starts, itself and then its longest run."""
        return BUILD_SECONDS + max(estimate(self.spec.target, x) for x in self.binaries)


class Scheduler:
    """What every scheduler shares; a subclass says where a build runs (`_queue_build`) and
    waits for them (`wait`)."""

    def __init__(self, jobs: int, procs: ProcessRegistry, progress: Callable[[Event], None] | None,
                 co, workdir: Path, use_cache: bool, box: Sandbox | None = None,
                 build_timeout: float = BUILD_TIMEOUT):
        self.jobs = jobs
        self.procs = procs
        self.progress = progress or (lambda e: None)
        self.co = co
        self.workdir = workdir
        self.use_cache = use_cache
        self.box = box
        self.build_timeout = build_timeout
        self.lock = threading.Lock()
        self.pending = 0
        self.export_extra: tuple[str, ...] = ()
        self.builds: list[dict] = []     # the build record: label, seconds, compiler cache use
        self.notes: list[str] = []       # for the review: e.g. a build run again after its worker died
        self._exports: dict[str, Path] = {}
        self._export_locks: dict[str, threading.Lock] = {}

    # -- what a subclass gives

    def _queue_build(self, b: Build, near: str | None = None) -> None:
        """Start `b` (`near`: where the build it followed ran, if that matters)."""
        raise NotImplementedError

    def wait(self) -> None:
        """Until every queued build and run has ended; the first error is raised."""
        raise NotImplementedError

    # -- shared

    def export_for(self, rev: str) -> Path:
        """The tree at `rev`, exported once for every build of that revision."""
        with self.lock:
            lock = self._export_locks.setdefault(rev, threading.Lock())
        with lock:
            if rev not in self._exports:
                self._exports[rev] = export_revision(self.co, rev, self.workdir / f"rev-{rev[:12]}",
                                                     self.export_extra)
            return self._exports[rev]

    def add_build(self, b: Build, after: Build | None = None) -> None:
        """Queue `b` (unless its results are all cached); with `after`, once that build is done."""
        if self.use_cache:
            cached = {bin_.name: result_cache.get(b.key, bin_.name) for bin_ in b.binaries}
            if all(cached.values()):
                b.results.update({k: v for k, v in cached.items() if v})
                for r in b.results.values():
                    self.progress(Event("done", f"{b.label} {r.binary}", result=r))
                return
        with self.lock:
            if after is not None and after is not b and after.queued and not after.finished:
                after.followers.append(b)
                return
        self._queue_build(b)

    def _finished(self, b: Build, near: str | None = None) -> None:
        """`b` has ended (built, failed, cancelled or lost): the builds that waited on it go now,
        `near` where it ran."""
        with self.lock:
            b.finished = True
            followers, b.followers = b.followers, []
        for f in followers:
            self._queue_build(f, near=near)

    def _built(self, b: Build, outcome: BuildOutcome, worker: str | None = None) -> None:
        """The build record, and the progress event for it."""
        record = {"label": b.label, "seconds": round(outcome.duration, 2),
                  "cache_hits": outcome.cache_hits, "cache_misses": outcome.cache_misses}
        if worker is not None:
            record["worker"] = worker
        with self.lock:
            self.builds.append(record)
        self.progress(Event("built", f"{b.label} build", seconds=outcome.duration))

    def _record(self, b: Build, r: RunResult) -> None:
        with self.lock:
            b.results[r.binary] = r
        if self.use_cache and not self.procs.cancelled.is_set():
            result_cache.put(b.key, r)
