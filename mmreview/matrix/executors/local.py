"""The matrix on this machine: LocalExecutor, and the LocalScheduler's pool of threads.

Builds and runs share one pool of `jobs` worker threads, each task one process group; the ready
queue is ordered by Build.work() (estimated remaining work), which keeps the cores busy to the
end.  A build's binaries are each a task of their own once it is built (matrix/cell.py runs
them).
"""

from __future__ import annotations

import queue
import shutil
import threading
from pathlib import Path
from typing import Callable

from mmreview.common.paths import cache_dir, work_root
from mmreview.matrix.build import Cancelled, build
from mmreview.matrix.cell import run_binary, runnable, unbuilt_result
from mmreview.matrix.executors.scheduler import Build, Event, Scheduler, estimate
from mmreview.matrix.sandbox import Sandbox, require
from mmreview.matrix.suites import Binary
from mmreview.matrix.targets import Availability, Target, availability, cpu_count


class LocalExecutor:
    """The Executor that runs the matrix here (matrix/executors/__init__.py says what one is)."""

    def __init__(self, jobs: int | None = None) -> None:
        self.threads = max(1, jobs or cpu_count())

    def availability(self, target: Target) -> Availability:
        return availability(target)

    def toolchain(self, target: Target) -> None:
        return None             # this machine's: build.input_key asks the compiler

    def require(self, targets: list[Target]) -> None:
        """Nothing to refuse: a target missing here is a not-run cell that says why."""

    def confinement(self, tree_path: Path, no_sandbox: bool = False) -> Sandbox:
        """The sandbox for a series on the tree at `tree_path`: it sees neither mmreview's cache
        (other cells, the results) nor the user's tree.  Exit 3 when bwrap cannot confine and the
        user did not pass --no-sandbox."""
        return require(no_sandbox, hidden=(str(cache_dir()), str(tree_path)))

    def scheduler(self, procs, progress, co, workdir, use_cache, **kw) -> "LocalScheduler":
        return LocalScheduler(self.threads, procs, progress, co, workdir, use_cache, **kw)

    def close(self) -> None:
        pass


class LocalScheduler(Scheduler):
    """A priority pool: builds and runs as tasks, longest estimated work first."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.q: queue.PriorityQueue = queue.PriorityQueue()
        self.done = threading.Condition(self.lock)
        self.errors: list[BaseException] = []
        self._seq = 0

    def submit(self, priority: float, fn: Callable[[], None]) -> None:
        with self.lock:
            self.pending += 1
            self._seq += 1
            self.q.put((-priority, self._seq, fn))

    def _worker(self) -> None:
        while True:
            _, _, fn = self.q.get()
            if fn is None:
                return
            try:
                if not self.procs.cancelled.is_set():
                    fn()
            except Cancelled:
                pass
            except BaseException as exc:      # surfaced in the main thread
                with self.lock:
                    self.errors.append(exc)
                self.procs.cancelled.set()
            finally:
                with self.lock:
                    self.pending -= 1
                    self.done.notify_all()

    def wait(self) -> None:
        threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.jobs)]
        for t in threads:
            t.start()
        try:
            with self.lock:
                while self.pending:
                    self.done.wait(timeout=0.5)    # wakes for Ctrl-C in the main thread
        except BaseException:
            self.procs.kill_all()                 # running tasks end at once; queued ones are skipped
            raise
        finally:
            # A sentinel sorts after every real task; each worker takes one and stops.
            for i, _ in enumerate(threads):
                self.q.put((float("inf"), i, None))  # type: ignore[arg-type]
            for t in threads:
                t.join(timeout=30)
        if self.errors:
            raise self.errors[0]

    # -- tasks

    def _queue_build(self, b: Build, near: str | None = None) -> None:
        b.queued = True
        self.submit(b.work(), lambda: self._do_build(b))

    def _do_build(self, b: Build) -> None:
        self.progress(Event("start", f"{b.label} build"))
        wd = self.workdir / f"{b.spec.target.name}-{b.spec.suite.name}-{b.key[:10]}"
        if wd.exists():
            shutil.rmtree(wd)
        wd.mkdir(parents=True)
        b.workdir = wd
        try:
            # Only the base is the user's own tree: every other revision has series code in it.
            outcome = build(self.export_for(b.rev), b.rev, b.spec, wd, self.procs,
                            cache_base=work_root(), repo=self.co.path, box=self.box,
                            trusted=b.rev == self.co.base_sha, timeout=self.build_timeout)
        finally:
            self._finished(b)       # its followers are queued even if it failed or was cancelled
        b.outcome = outcome
        runs = runnable(outcome)
        b.runs_left = len([x for x in b.binaries if x.name in runs])
        if not b.runs_left:
            shutil.rmtree(wd, ignore_errors=True)
        self._built(b, outcome)
        for bin_ in b.binaries:
            if bin_.name in runs:
                self.submit(estimate(b.spec.target, bin_), lambda bin_=bin_: self._do_run(b, bin_))
                continue
            r = unbuilt_result(b.spec, bin_, outcome)
            self._record(b, r)
            self.progress(Event("done", f"{b.label} {bin_.name}", result=r))

    def _do_run(self, b: Build, bin_: Binary) -> None:
        assert b.outcome is not None and b.workdir is not None
        label = f"{b.label} {bin_.name}"
        self.progress(Event("start", label))
        r = run_binary(b.spec, bin_, b.outcome, self.procs, b.workdir, self.box)
        self._record(b, r)
        self.progress(Event("done", label, result=r, seconds=r.duration))
        with self.lock:
            b.runs_left -= 1
            last = b.runs_left == 0
        if last and b.workdir:       # free the disk while the other cells still run
            shutil.rmtree(b.workdir, ignore_errors=True)
