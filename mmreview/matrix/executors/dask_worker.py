"""What a Dask worker started by `mmreview worker` runs: one build and its binaries, from an export.

A task gets the export of one revision by its content hash (dask_scheduler.export_hash) and, when the
client could not be sure every worker has it, the compressed tar itself; the export is kept under
this worker's cache (`$XDG_CACHE_HOME/mmreview/cluster/exports/<hash>`), so a base is sent once and
built from on every later review.  The build is the same `build.build()` the local pool calls, and
the runs the same `cell.run_binary()` (matrix/cell.py), under a ProcessRegistry of the task's own: whatever
confines those locally confines them here, and a cancelled review kills them.

Imported only inside worker processes (and by `client.run` on them), never by a local review.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from mmreview.matrix.build import Cancelled, ProcessRegistry, build, read_log, toolchain
from mmreview.matrix.cell import run_binary, runnable
from mmreview.common.errors import InfraError, MmreviewError
from mmreview.common.rundirs import new_run_dir, remove_stale
from mmreview.matrix.targets import all_targets, availability
from mmreview.common.paths import cache_dir, cluster_dir, work_root

RESOURCE_PREFIX = "target-"
START_TOPIC = "mmreview-start"          # a task began on a worker (progress; retries)
KEEP_EXPORTS = 8                        # revisions kept per worker (~70 MB each extracted)


def resource(target: str) -> str:
    """The Dask worker resource that says a worker runs `target`."""
    return RESOURCE_PREFIX + target


def cancel_event_name(review: str) -> str:
    return f"mmreview-cancel-{review}"


def exports_root() -> Path:
    return cluster_dir() / "exports"


# ---------------------------------------------------------------- what this worker offers

@functools.cache
def _offered(names: tuple[str, ...]) -> dict:
    out = {}
    for t in all_targets():
        if t.name not in names:
            continue
        a = availability(t)
        if a.available:      # a resource given by hand for a target this machine lacks: not offered
            out[t.name] = {"sanitizers": list(a.sanitizers), "urcu_prefix": a.urcu_prefix,
                           "toolchain": list(toolchain(t, a.urcu_prefix))}
    return out


def describe(dask_worker) -> dict:
    """Run by the client on every worker (`client.run`): the targets this worker offers with
    their sanitizers and toolchain (a cache key takes the worker's compiler, not the client's),
    and the exports it has."""
    names = tuple(sorted(k[len(RESOURCE_PREFIX):] for k in dask_worker.state.total_resources
                         if k.startswith(RESOURCE_PREFIX)))
    root = exports_root()
    have = sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []
    return {"targets": _offered(names), "exports": have, "threads": dask_worker.state.nthreads}


# ---------------------------------------------------------------- exports

_export_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()


class MissingExport(Exception):
    pass


def _export(digest: str, payload: bytes | None) -> Path:
    """The export `digest`, from this worker's cache or unpacked from `payload`."""
    root = exports_root()
    dest = root / digest
    with _locks_lock:
        lock = _export_locks.setdefault(digest, threading.Lock())
    with lock:
        if dest.is_dir():
            os.utime(dest)          # recently used: kept by _prune
            return dest
        if payload is None:
            raise MissingExport(digest)
        tmp_root = root / ".incoming"
        remove_stale(tmp_root)      # left by a worker killed while unpacking
        tmp = new_run_dir(tmp_root)
        tmp.mkdir()
        proc = subprocess.run(["tar", "-xz", "-C", str(tmp)], input=payload, capture_output=True)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(f"could not unpack export {digest}: "
                               + proc.stderr.decode(errors="replace").strip())
        os.replace(tmp, dest)
    _prune(root)
    return dest


def _prune(root: Path) -> None:
    """Keep the most recently used exports; never one used in the last ten minutes (a build may
    be hard-linking it now)."""
    entries = sorted((p for p in root.iterdir() if not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for p in entries[KEEP_EXPORTS:]:
        if time.time() - p.stat().st_mtime > 600:
            shutil.rmtree(p, ignore_errors=True)


# ---------------------------------------------------------------- the task

@functools.cache
def _run_dir() -> Path:
    """This worker process's build directory (named after its pid: a later one removes it if
    this process dies)."""
    remove_stale(work_root())
    d = new_run_dir(work_root())
    d.mkdir(parents=True)
    return d


@functools.cache
def _box(confine: bool):
    """This worker's sandbox, as LocalExecutor.confinement makes it: it hides this worker's
    cache (exports, other builds, ccache) from what a series runs.  None: not confined."""
    from mmreview.matrix.sandbox import require
    try:
        box = require(not confine, hidden=(str(cache_dir()),))
    except InfraError as exc:
        from distributed import get_worker
        raise InfraError(f"worker {get_worker().address}", exc.reason) from None
    return box if box.confined else None


def _watch_cancel(review: str, procs: ProcessRegistry, done: threading.Event) -> None:
    """Kill this task's processes when the client cancels the review (Ctrl-C): cancelling a
    Dask future does not stop a task that is running."""
    from distributed import Event, get_client
    # The client now, in the task's thread: the watcher's thread has no worker context to find it.
    ev = Event(cancel_event_name(review), client=get_client())

    def loop() -> None:
        while not done.is_set():
            try:
                if ev.wait(timeout=1):
                    procs.kill_all()
                    return
            except Exception as exc:   # the scheduler is gone: the worker goes with it
                logging.getLogger("distributed.worker").warning(
                    "mmreview: no longer watching for the review's cancellation: %r", exc)
                return
    threading.Thread(target=loop, daemon=True, name="mmreview-cancel-watch").start()


def run_build(digest: str, payload: bytes | None, rev: str, spec, binaries: list, key: str,
              review: str, label: str, build_id: str, confine: bool, trusted: bool,
              build_timeout: float) -> dict:
    """Build `spec` at `rev` and run the `binaries` it makes: the results (as JSON) and what the
    client needs to tell a recipe failure from the tree's (the log of a failed build)."""
    from distributed import get_worker

    worker = get_worker()
    addr = worker.address
    # A build that starts twice was run again: the client's report says so.
    worker.log_event(START_TOPIC, {"review": review, "build": build_id, "label": label,
                                   "worker": addr})
    try:
        export = _export(digest, payload)
    except MissingExport:
        return {"worker": addr, "missing_export": digest}
    procs = ProcessRegistry()
    done = threading.Event()
    _watch_cancel(review, procs, done)
    wd = new_run_dir(_run_dir())
    wd = wd.with_name(f"{spec.target.name}-{spec.suite.name}-{key[:10]}-{wd.name}")
    wd.mkdir(parents=True)
    try:
        box = _box(confine)
        outcome = build(export, rev, spec, wd, procs, cache_base=work_root(), repo=None, box=box,
                        trusted=trusted, timeout=build_timeout)
        runs = runnable(outcome)
        results = [run_binary(spec, b, outcome, procs, wd, box) for b in binaries if b.name in runs]
        log = "" if outcome.ok or outcome.absent else read_log(outcome.log)
        return {"worker": addr, "outcome": outcome.to_json(), "log": log,
                "results": [r.to_json() for r in results]}
    except Cancelled:
        return {"worker": addr, "cancelled": True}
    except MmreviewError as exc:     # its own exceptions do not survive pickling: send the words
        return {"worker": addr, "error_exit": exc.exit_code, "error_subject": exc.subject,
                "error_reason": exc.reason}
    finally:
        done.set()
        shutil.rmtree(wd, ignore_errors=True)
