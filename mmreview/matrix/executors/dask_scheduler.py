"""The matrix's scheduler when the builds run on a Dask cluster (see dask_client.py).

The Scheduler's planning is kept (result cache, base before tip, longest work first);
`_queue_build` submits a build as a Dask task (dask_worker.run_build) instead of putting it in
this process's pool, and `wait` turns finished tasks into results exactly as the local pool does
(cell.unbuilt_result for what a build did not make).  What a build is given travels as an
export: a compressed tar named by the hash of its paths' git tree ids.
"""

from __future__ import annotations

import hashlib
import queue
import subprocess
import time
from pathlib import Path

from mmreview.common.errors import BadInput, InfraError
from mmreview.common.git import git_out
from mmreview.matrix.build import BuildOutcome, recipe_problem, revision_paths
from mmreview.matrix.cell import unbuilt_result
from mmreview.matrix.executors.dask_worker import START_TOPIC, cancel_event_name, resource, run_build
from mmreview.matrix.executors.scheduler import Build, Event, Scheduler
from mmreview.matrix.results import NOT_RUN, RunResult

EXPORT_SCHEMA = "1"


# ---------------------------------------------------------------- exports

def export_listing(repo: Path, rev: str, extra: tuple[str, ...]) -> str:
    """The git tree (or blob) ids of what a build of `rev` is given: what the export is."""
    return git_out(repo, "ls-tree", "--full-tree", rev, "--", *revision_paths(extra))


def export_hash(listing: str) -> str:
    return hashlib.sha256(f"{EXPORT_SCHEMA}\0{listing}".encode()).hexdigest()[:24]


def export_payload(repo: Path, rev: str, listing: str) -> bytes:
    """The export as a gzip'd tar (level 1: the network is rarely slower than gzip -6's CPU)."""
    paths = [line.split("\t", 1)[1] for line in listing.splitlines() if "\t" in line]
    archive = subprocess.Popen(["git", "-C", str(repo), "archive", "--format=tar", rev, "--", *paths],
                               stdout=subprocess.PIPE)
    gz = subprocess.run(["gzip", "-1", "-n"], stdin=archive.stdout, capture_output=True)
    assert archive.stdout is not None
    archive.stdout.close()
    if archive.wait() != 0 or gz.returncode != 0:
        raise InfraError(rev[:12], "could not archive the revision for the cluster: "
                                   + gz.stderr.decode(errors="replace").strip())
    return gz.stdout


# ---------------------------------------------------------------- the scheduler

class ClusterScheduler(Scheduler):
    """The Scheduler's planning (result cache, base before tip) with Dask doing the work:
    `_queue_build` submits a build as a task instead of putting it in the local pool."""

    def __init__(self, cluster, jobs, procs, progress, co, workdir, use_cache, **kw) -> None:
        super().__init__(jobs, procs, progress, co, workdir, use_cache, **kw)
        self.cluster = cluster
        self.client = cluster.client
        self.futures: dict = {}                 # future -> Build
        self._payloads: dict[str, tuple[str, object]] = {}   # rev -> (hash, scattered future)
        self._starts: dict[str, list[tuple[str, str]]] = {}  # build -> [(label, worker)]
        self._n = 0
        self._done: queue.Queue = queue.Queue()
        self._hints: dict[int, str | None] = {}     # id(Build) -> where its base was built
        self._resends: dict[int, int] = {}
        self._pinned: dict = {}                     # future -> the worker it must run on
        self._alive: set[str] = set(cluster.workers)
        self.client.subscribe_topic(START_TOPIC, self._on_start)

    # -- sending

    def _export_ref(self, b: Build, force: bool = False) -> tuple[str, object]:
        """(hash, payload future or None): None when every worker has the export already."""
        held = self._payloads.get(b.rev)
        if held is None or (force and (held[1] is None or held[1].status != "finished")):
            listing = export_listing(self.co.path, b.rev, self.export_extra)
            digest = export_hash(listing)
            fut = None
            if force or not self.cluster.has_export(digest, list(self.cluster.workers)):
                # Sent once; Dask copies it to the workers that run builds of `rev`.  Scattered
                # data cannot be recomputed: a build whose copy died with its worker is sent
                # again (_resend).  (A broadcast would not help: Dask's active memory manager
                # drops the replicas no task waits for.)
                fut = self.client.scatter(export_payload(self.co.path, b.rev, listing), hash=False)
            self._payloads[b.rev] = (digest, fut)
        return self._payloads[b.rev]

    def _resend(self, b: Build) -> bool:
        """Submit `b` again with its export sent anew (a worker lost it, or the cluster lost
        the scattered copy with the worker that held it); False after two tries."""
        tries = self._resends.get(id(b), 0)
        if tries >= 2:
            return False
        self._resends[id(b)] = tries + 1
        self._queue_build(b, force_export=True)
        return True

    def add_build(self, b: Build, after: Build | None = None) -> None:
        if after is not None and after is not b and not after.queued:
            # The base came from the result cache: its tip still goes to the worker that built
            # it, whose ccache has its objects (a second series on the same base).
            self._hints[id(b)] = next((r.worker for r in after.results.values() if r.worker), None)
        super().add_build(b, after)

    def _queue_build(self, b: Build, near: str | None = None, force_export: bool = False) -> None:
        b.queued = True
        near = near or self._hints.get(id(b))
        t = b.spec.target.name
        digest, payload = self._export_ref(b, force_export)
        eligible = self.cluster.eligible(t)       # None: any worker with the target's resource
        # The tip goes where its base was built: that worker's ccache has the base's objects.
        # Pinned, not "allow_other_workers": a loose restriction lets Dask (and its work
        # stealing) place the task on any worker, resources or not.  If the worker goes away,
        # `_unpin_lost` submits the build again without the pin.
        if near and near in self._alive and (eligible is None or near in eligible):
            where = [near]
        else:
            near, where = None, eligible
        self._n += 1
        key = f"mmreview-{b.label.replace(' ', '-').replace('@', '')}-{b.key[:8]}-{self.cluster.review}-{self._n}"
        fut = self.client.submit(
            run_build, digest, payload, b.rev, b.spec, list(b.binaries), b.key, self.cluster.review,
            b.label, str(id(b)),
            # Confined on the worker as here (--no-sandbox is the reviewer's to say); only the
            # base, the user's own tree, may fill the worker's compiler cache.
            self.box is not None, b.rev == self.co.base_sha, self.build_timeout,
            key=key, pure=False, resources={resource(t): 1}, workers=where,
            priority=int(b.work()))
        with self.lock:
            self.futures[fut] = b
            self.pending += 1
            if near:
                self._pinned[fut] = near
        fut.add_done_callback(self._done.put)       # called in a thread of Dask's

    def _unpin_lost(self) -> None:
        """Builds pinned to a worker that left the cluster go to any other that runs them."""
        self._alive = set(self.client.scheduler_info(n_workers=-1)["workers"])
        with self.lock:
            lost = [(f, self.futures.pop(f)) for f, w in self._pinned.items()
                    if w not in self._alive and f in self.futures]
            for f, _ in lost:
                del self._pinned[f]
                self.pending -= 1
        for f, b in lost:
            f.cancel()
            self._queue_build(b)

    def _on_start(self, event) -> None:
        _, msg = event
        if not isinstance(msg, dict) or msg.get("review") != self.cluster.review:
            return
        self._starts.setdefault(msg["build"], []).append((msg["label"], msg["worker"]))
        self.progress(Event("start", f"{msg['label']} build"))

    # -- waiting

    def wait(self) -> None:
        checked = time.monotonic()
        try:
            while True:
                with self.lock:
                    if not self.futures:
                        break
                if self._pinned and time.monotonic() - checked > 2:
                    self._unpin_lost()
                    checked = time.monotonic()
                try:
                    fut = self._done.get(timeout=0.5)      # wakes for Ctrl-C in the main thread
                except queue.Empty:
                    continue
                with self.lock:
                    b = self.futures.pop(fut, None)       # None: one _unpin_lost cancelled
                    self._pinned.pop(fut, None)
                    if b is not None:
                        self.pending -= 1
                if b is not None:
                    self._finish(b, fut)
        except BaseException:
            self._cancel()
            raise
        self._note_retries()

    def _cancel(self) -> None:
        """Ctrl-C (or an error): stop this review's tasks, running ones included."""
        from distributed import Event as DaskEvent
        try:
            DaskEvent(cancel_event_name(self.cluster.review), client=self.client).set()
            self.client.cancel(list(self.futures), force=True)
        except Exception:
            pass

    def _finish(self, b: Build, fut) -> None:
        label = f"{b.label} build"
        if fut.status == "error":
            exc = fut.exception()
            from distributed.scheduler import KilledWorker
            if isinstance(exc, KilledWorker):
                # Its worker died each time Dask ran it (allowed-failures): no verdict from it.
                self._all_not_run(b, "every cluster worker that ran it died (Dask gave up: a build "
                                     "or test that takes its machine down?)")
                return
            if self._resend(b):
                return
            raise InfraError(self.cluster.address, f"{label}: {type(exc).__name__}: {exc}")
        if fut.status != "finished":        # cancelled by the scheduler: its input was lost
            if self._resend(b):
                return
            raise InfraError(self.cluster.address, f"{label}: the scheduler dropped it "
                                                   "(connection lost?)")
        res = fut.result()
        worker = res["worker"]
        if "missing_export" in res:         # a worker that joined later, or lost its cache
            if self._resend(b):
                return
            raise InfraError(worker, f"{label}: the worker cannot keep its export {res['missing_export']}")
        if res.get("cancelled"):          # only this review cancels its tasks, and it is not
            raise InfraError(worker, f"{label}: cancelled on the worker")
        if "error_exit" in res:
            raise (BadInput if res["error_exit"] == BadInput.exit_code else InfraError)(
                res["error_subject"], res["error_reason"])
        outcome = BuildOutcome.from_json(res["outcome"])
        src = outcome.src
        if res["log"] and src is not None:
            # Whether a failure is mmreview's recipe's: the tree is here, so the question is asked
            # here, of this machine's export of the same revision in place of the worker's copy.
            local = self.export_for(b.rev)
            outcome.recipe = recipe_problem(res["log"].replace(str(src), str(local)), b.spec, local,
                                            self.co.path, b.rev)
        self._built(b, outcome, worker)
        got = {r["binary"]: RunResult(**r) for r in res["results"]}
        for bin_ in b.binaries:
            r = got.get(bin_.name) or unbuilt_result(b.spec, bin_, outcome)
            r.worker = worker
            self._record(b, r)
            self.progress(Event("done", f"{b.label} {bin_.name}", result=r, seconds=r.duration))
        self._finished(b, near=worker)

    def _all_not_run(self, b: Build, reason: str) -> None:
        for bin_ in b.binaries:
            r = RunResult(target=b.spec.target.name, suite=b.spec.suite.name, binary=bin_.name,
                          state=NOT_RUN, reason=reason, infra=True)
            with self.lock:
                b.results[r.binary] = r          # not cached: the next review tries again
            self.progress(Event("done", f"{b.label} {bin_.name}", result=r))
        self._finished(b)

    def _note_retries(self) -> None:
        """A build started on more than one worker was run again after its worker was lost
        (by Dask under the same key, or by _resend under a new one)."""
        try:                 # the subscription may not have delivered the last events yet
            for _, msg in self.client.get_events(START_TOPIC):
                if isinstance(msg, dict) and msg.get("review") == self.cluster.review:
                    seen = self._starts.setdefault(msg["build"], [])
                    if (msg["label"], msg["worker"]) not in seen:
                        seen.append((msg["label"], msg["worker"]))
        except Exception:
            pass
        for key, starts in sorted(self._starts.items()):
            if len(starts) > 1:
                label = starts[0][0]
                lost = ", ".join(dict.fromkeys(w for _, w in starts[:-1]))
                self.notes.append(f"cluster: {label} was run again on {starts[-1][1]} after its "
                                  f"worker {lost} was lost mid-run")
