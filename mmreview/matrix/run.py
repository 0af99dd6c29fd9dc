"""The architecture matrix: Target × Suite × binary, at the base and at the tip, with verdicts.

Engine entry point (used by `mmreview test` and `mmreview check`):

    run_matrix(co: Checkout,
               targets: list[Target] | None = None,     # None: every target in mmreview/targets/
               profile: str = "quick",                  # "quick" | "full" (see suites.py)
               suites: str | None = None,               # "radix-tree,vma" narrows
               binaries: str | None = None,             # "xarray,vma" narrows (overrides the profile)
               jobs: int | None = None,                 # parallel builds/runs (default: cores)
               per_patch: bool = False,                 # also build+run natively after every patch
               progress: Callable[[Event], None] | None = None,
               use_cache: bool = True,
               box: Sandbox | None = None,              # None: confined (sandbox.require), or exit 3
               build_timeout: float = BUILD_TIMEOUT) -> MatrixResult

    MatrixResult.cells      list[results.Cell] (base and tip RunResult, .verdict)
    MatrixResult.targets    list[TargetInfo] (name, available, sanitizers, reason, apt_command)
    MatrixResult.per_patch  list[PatchFinding] (first patch that breaks a build or a test)
    MatrixResult.sandbox    sandbox.Sandbox (whether series code ran confined)
    MatrixResult.to_json()

A target that is not available on this machine gives not-run cells with the
reason (never silently dropped).  Results are cached under
~/.cache/mmreview/results/<key>/ where the key hashes the suite's inputs as in
the tree (git object ids), the target file, flags and compiler version; so a
second series on the same base reruns nothing for the base, and a tip whose
suite inputs equal the base's reuses the base's results.  Timeouts are not
cached (they may be load), and neither is anything from an interrupted run.

Scheduling: builds and runs share one pool of `jobs` worker threads, each task
one process group; the ready queue is ordered by estimated remaining work
(qemu targets' long runs start first), which keeps the cores busy to the end.
A tip (or per-patch) build waits for the base build of its target and suite, so
that through the compiler cache (build.compiler_cache_env) it recompiles only
what the series changed.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from mmreview.matrix import suites as suites_mod
from mmreview.matrix.build import (BuildOutcome, BuildSpec, Cancelled, ProcessRegistry, build, export_revision, input_key,
                    read_log)
from mmreview.common.rundirs import new_run_dir, remove_stale
from mmreview.matrix.sandbox import BUILD_TIMEOUT, Limits, Sandbox, require
from mmreview.matrix.results import BLOCKED, BUILD_FAILED, FAILING, NEW_VERDICTS, NOT_RUN, TIMEOUT, Cell, RunResult
from mmreview.matrix.parse import build_error_line, parse_run, signature
from mmreview.matrix.suites import Binary, Suite
from mmreview.matrix.targets import Availability, Target, all_targets, availability, cpu_count
from mmreview.kernel.trees import cache_dir


@dataclass
class Event:
    kind: str                    # "plan" (total: cells to run) | "start" | "built" | "done" (one result)
    label: str = ""              # e.g. "arm64 radix-tree xarray @tip"
    total: int = 0               # plan: number of tasks
    result: RunResult | None = None
    seconds: float = 0.0


@dataclass
class TargetInfo:
    name: str
    available: bool
    sanitizers: list[str]
    reason: str = ""
    apt_command: str = ""
    summary: str = ""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class PatchFinding:
    patch: int
    subject: str
    target: str
    suite: str
    binary: str
    state: str                   # the state after this patch (build-failed, fail, crash, timeout)
    reason: str
    fixed_by: int | None = None  # a later patch of the series that makes it pass again
    excerpt: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        what = "breaks the build of" if self.state == BUILD_FAILED else f"makes {self.state}:"
        s = f"patch {self.patch} ({self.subject}) {what} {self.binary} on {self.target}"
        if self.fixed_by:
            s += f" (fixed again by patch {self.fixed_by})"
        return s


@dataclass
class MatrixResult:
    cells: list[Cell]
    targets: list[TargetInfo]
    per_patch: list[PatchFinding]
    profile: str
    base_sha: str
    tip_sha: str
    duration: float
    jobs: int
    sandbox: Sandbox = field(default_factory=lambda: Sandbox(confined=False))
    builds: list[dict] = field(default_factory=list)   # every build: label, seconds, compiler cache use
    notes: list[str] = field(default_factory=list)   # e.g. a cell run again after its worker died

    @property
    def new_failures(self) -> list[Cell]:
        return [c for c in self.cells if c.verdict in NEW_VERDICTS]

    def to_json(self) -> dict:
        return {"profile": self.profile, "base": self.base_sha, "tip": self.tip_sha,
                "duration": round(self.duration, 1), "jobs": self.jobs,
                "sandbox": self.sandbox.to_json(), "builds": self.builds,
                "targets": [t.to_json() for t in self.targets],
                "cells": [c.to_json() for c in self.cells],
                "per_patch": [f.to_json() for f in self.per_patch], "notes": list(self.notes)}


# ---------------------------------------------------------------- result cache

def results_dir() -> Path:
    return cache_dir() / "results"


def _cache_get(key: str, binary: str) -> RunResult | None:
    try:
        d = json.loads((results_dir() / key / f"{binary}.json").read_text())
        r = RunResult(**d)
    except (OSError, ValueError, TypeError):
        return None
    r.cached = True
    return r


def _cache_put(key: str, r: RunResult) -> None:
    if r.state in (TIMEOUT, NOT_RUN):
        return
    d = results_dir() / key
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{r.binary}.{os.getpid()}.{secrets.token_hex(3)}"
    tmp.write_text(json.dumps({**r.to_json(), "cached": False}))
    os.replace(tmp, d / f"{r.binary}.json")


# ---------------------------------------------------------------- work directories

def work_root() -> Path:
    return cache_dir() / "matrix-work"


# ---------------------------------------------------------------- one build's cells
# What a build gives its cells, wherever it ran: the local pool below calls these, and so does a
# cluster worker (mmreview/cluster_worker.py) on the same build.build() outcome, so a cell is the
# same RunResult on either, confined the same way.

def runnable(outcome: BuildOutcome) -> list[str]:
    """The binaries to run: a build that reached outside its sandbox runs nothing (its cells
    say what it tried)."""
    return [] if outcome.escapes else outcome.built


def unbuilt_result(spec: BuildSpec, bin_: Binary, outcome: BuildOutcome) -> RunResult:
    """The cell of a binary its build did not make (or that is not run): build-failed, blocked,
    timeout, or not run (no such suite; mmreview's recipe at fault, `outcome.recipe`)."""
    r = RunResult(target=spec.target.name, suite=spec.suite.name, binary=bin_.name,
                  state=BUILD_FAILED, duration=round(outcome.duration, 2),
                  excerpt=outcome.error,
                  reason=build_error_line(outcome.error) or "build failed",
                  command=spec.user_command(bin_.name),
                  sanitizers=list(spec.sanitizers))
    if outcome.absent:          # nothing to reproduce: the tree has no such suite
        r.state, r.excerpt, r.command = NOT_RUN, [], ""
    elif outcome.escapes:
        r.state = BLOCKED
        r.reason = f"its build tried to reach outside the sandbox: {'; '.join(outcome.escapes)}"
    elif outcome.timed_out:
        r.state, r.reason = TIMEOUT, outcome.error[0]
    elif outcome.recipe:
        # Not the tree's failure: no verdict, and the review says mmreview is at fault.
        r.state, r.infra = NOT_RUN, True
        r.reason = f"mmreview could not build it: {outcome.recipe}"
    r.signature = signature(r, outcome.errors)
    return r


def run_binary(spec: BuildSpec, bin_: Binary, outcome: BuildOutcome, procs: ProcessRegistry,
               workdir: Path, box: Sandbox | None) -> RunResult:
    """Run one binary `outcome` built (in `box`, when confined) and read its result."""
    t = spec.target
    timeout = bin_.timeout * t.timeout_factor
    # The log lives outside what the test may write: it cannot be swapped for a symlink.
    log = workdir / f"{bin_.name}.log"
    cmd = [*t.runner, f"./{bin_.name}", *bin_.args]
    # LeakSanitizer: the suites free what they test, not every harness allocation.
    env = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0", "UBSAN_OPTIONS": "print_stacktrace=1"}
    jail = None
    if box is not None and outcome.src is not None:
        # Address space is limited only where no sanitizer reserves terabytes of shadow.
        vm = 0 if spec.sanitizers else 16 << 30
        jail = box.jail(workdir / f"box-{bin_.name}", writable=outcome.writable,
                        readonly=(outcome.src, *(Path(p) for p in [spec.urcu_prefix] if p)),
                        limits=Limits(cpu_seconds=int(timeout) + 5, address_bytes=vm))
    rc, timed_out, secs, escapes = procs.run(cmd, cwd=outcome.directory, log=log,
                                             timeout=timeout, env=env, jail=jail)
    out = read_log(log)
    r = parse_run(t.name, spec.suite.name, bin_.name, out, rc, secs, timed_out, timeout)
    if escapes and not timed_out:
        r.state = BLOCKED
        r.reason = f"tried to reach outside the sandbox: {'; '.join(escapes)}"
    r.excerpt = [outcome.tree_relative(line) for line in r.excerpt]
    r.reason = outcome.tree_relative(r.reason)
    r.command = spec.user_command(bin_.name)
    r.sanitizers = list(spec.sanitizers)
    r.signature = signature(r)
    return r


# ---------------------------------------------------------------- planning

@dataclass
class _Build:
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
    followers: list["_Build"] = field(default_factory=list)   # builds queued when this one ends
    queued: bool = False
    finished: bool = False


BUILD_SECONDS = 8.0     # a suite's build, about the same on every target (measured 2-12 s)


def _estimate(target: Target, binary: Binary) -> float:
    return binary.seconds * target.slowdown


class _Scheduler:
    """A priority pool: builds and runs as tasks, longest estimated work first."""

    def __init__(self, jobs: int, procs: ProcessRegistry, progress: Callable[[Event], None] | None,
                 co, workdir: Path, use_cache: bool, box: Sandbox | None = None,
                 build_timeout: float = BUILD_TIMEOUT):
        self.jobs = jobs
        self.procs = procs
        self.progress = progress or (lambda e: None)
        self.co = co
        self.workdir = workdir
        self.use_cache = use_cache
        self.q: queue.PriorityQueue = queue.PriorityQueue()
        self.pending = 0
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)
        self.errors: list[BaseException] = []
        self._seq = 0
        self._exports: dict[str, Path] = {}
        self._export_locks: dict[str, threading.Lock] = {}
        self.export_extra: tuple[str, ...] = ()
        self.box = box
        self.build_timeout = build_timeout
        self.builds: list[dict] = []

    def export_for(self, rev: str) -> Path:
        """The tree at `rev`, exported once for every build of that revision."""
        with self.lock:
            lock = self._export_locks.setdefault(rev, threading.Lock())
        with lock:
            if rev not in self._exports:
                self._exports[rev] = export_revision(self.co, rev, self.workdir / f"rev-{rev[:12]}",
                                                     self.export_extra)
            return self._exports[rev]

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

    def add_build(self, b: _Build, after: _Build | None = None) -> None:
        """Queue `b` (unless its results are all cached); with `after`, once that build is done."""
        if self.use_cache:
            cached = {bin_.name: _cache_get(b.key, bin_.name) for bin_ in b.binaries}
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

    def _queue_build(self, b: _Build) -> None:
        b.queued = True
        # A build's priority is the longest chain it starts: itself, then its longest run.
        work = BUILD_SECONDS + max(_estimate(b.spec.target, x) for x in b.binaries)
        self.submit(work, lambda: self._do_build(b))

    def _do_build(self, b: _Build) -> None:
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
            with self.lock:
                b.finished = True
                followers, b.followers = b.followers, []
            for f in followers:         # queued even if this build failed or was cancelled
                self._queue_build(f)
        b.outcome = outcome
        with self.lock:
            self.builds.append({"label": b.label, "seconds": round(outcome.duration, 2),
                                "cache_hits": outcome.cache_hits, "cache_misses": outcome.cache_misses})
        runs = runnable(outcome)
        b.runs_left = len([x for x in b.binaries if x.name in runs])
        if not b.runs_left:
            shutil.rmtree(wd, ignore_errors=True)
        self.progress(Event("built", f"{b.label} build", seconds=outcome.duration))
        for bin_ in b.binaries:
            if bin_.name in runs:
                self.submit(_estimate(b.spec.target, bin_), lambda bin_=bin_: self._do_run(b, bin_))
                continue
            r = unbuilt_result(b.spec, bin_, outcome)
            self._record(b, r)
            self.progress(Event("done", f"{b.label} {bin_.name}", result=r))

    def _do_run(self, b: _Build, bin_: Binary) -> None:
        assert b.outcome is not None
        label = f"{b.label} {bin_.name}"
        self.progress(Event("start", label))
        assert b.workdir is not None
        r = run_binary(b.spec, bin_, b.outcome, self.procs, b.workdir, self.box)
        self._record(b, r)
        self.progress(Event("done", label, result=r, seconds=r.duration))
        with self.lock:
            b.runs_left -= 1
            last = b.runs_left == 0
        if last and b.workdir:       # free the disk while the other cells still run
            shutil.rmtree(b.workdir, ignore_errors=True)

    def _record(self, b: _Build, r: RunResult) -> None:
        with self.lock:
            b.results[r.binary] = r
        if self.use_cache and not self.procs.cancelled.is_set():
            _cache_put(b.key, r)


def _target_infos(targets: list[Target], availability=availability
                  ) -> tuple[list[TargetInfo], dict[str, Availability]]:
    infos, avail = [], {}
    for t in targets:
        a = availability(t)
        avail[t.name] = a
        infos.append(TargetInfo(name=t.name, available=a.available, sanitizers=a.sanitizers if a.available
                                else [], reason=a.reason, apt_command=a.apt_command, summary=t.summary()))
    return infos, avail


def _not_run(t: Target, s: Suite, b: Binary, reason: str) -> RunResult:
    return RunResult(target=t.name, suite=s.name, binary=b.name, state=NOT_RUN, reason=reason)


def run_matrix(co, targets: list[Target] | None = None, profile: str = "quick",
               suites: str | None = None, binaries: str | None = None, jobs: int | None = None,
               per_patch: bool = False, progress: Callable[[Event], None] | None = None,
               use_cache: bool = True, box: Sandbox | None = None,
               build_timeout: float = BUILD_TIMEOUT, executor=None) -> MatrixResult:
    """`executor`: where the builds run when not in this process's pool (cluster.Cluster): it
    says which targets are available and with which toolchain, and makes the scheduler."""
    start = time.monotonic()
    available = executor.availability if executor else availability
    if box is None:         # refuse before any work when series code cannot be confined
        box = confinement(co.tree.path)
    targets = list(targets) if targets is not None else list(all_targets())
    base, tip = co.base_sha, co.result.tip_sha
    # Which binaries each suite has comes from the tree's own Makefiles, at base and tip.
    at_rev = {rev: {s.name: suites_mod.tree_binaries(co.path, rev, s) for s in suites_mod.SUITES}
              for rev in dict.fromkeys((base, tip))}
    present = {s.name: (None if all(at_rev[r][s.name] is None for r in at_rev) else
                        list(dict.fromkeys(n for r in at_rev for n in (at_rev[r][s.name] or []))))
               for s in suites_mod.SUITES}
    selection = suites_mod.select(profile, suites, binaries, present)
    jobs = executor.threads if executor else max(1, jobs or cpu_count())
    infos, avail = _target_infos(targets, available)

    remove_stale(work_root())
    workdir = new_run_dir(work_root())
    workdir.mkdir(parents=True, exist_ok=True)
    procs = ProcessRegistry()
    sched = (executor.scheduler if executor else _Scheduler)(
        jobs, procs, progress, co, workdir, use_cache, box=box if box.confined else None,
        build_timeout=build_timeout)
    sched.export_extra = tuple(dict.fromkeys(p for t in targets if avail[t.name].available
                                             for p in t.tree_paths))

    builds: dict[tuple, _Build] = {}      # (target, suite, key, binaries)

    def want(t: Target, s: Suite, bins: list[Binary], rev: str, tag: str) -> _Build | None:
        """The build of `bins` at `rev` (those of them the rev's Makefile has); None if none."""
        names = at_rev[rev][s.name] if rev in at_rev else suites_mod.tree_binaries(co.path, rev, s)
        if names is not None:             # the suite is there: build what its Makefile builds,
            # and after the base whatever the base built: a series dropping a binary from TARGETS
            # must not turn its failure into "not run" (what is tested is the base's to say).
            names = [*names, *((at_rev[base][s.name] or []) if rev != base else [])]
            bins = [b for b in bins if b.name in names]
            if not bins:
                return None
        a = avail[t.name]
        spec = BuildSpec(target=t, suite=s, binaries=tuple(b.name for b in bins),
                         sanitizers=tuple(a.sanitizers), urcu_prefix=a.urcu_prefix,
                         confinement="bwrap" if box.confined else "none")
        key = input_key(co.path, rev, spec, executor.toolchain(t) if executor else None)
        k = (t.name, s.name, key, spec.binaries)
        if k not in builds:
            builds[k] = _Build(spec=spec, rev=rev, key=key, label=f"{t.name} {s.name} @{tag}",
                               binaries=bins)
        return builds[k]

    plan: list[tuple[Target, Suite, Binary, _Build | None, _Build | None]] = []
    bases: dict[tuple[str, str], _Build] = {}
    for t in targets:
        for s, bins in selection:
            if not avail[t.name].available:
                plan += [(t, s, b, None, None) for b in bins]
                continue
            bb = want(t, s, bins, base, "base")
            if bb is not None:
                bases[(t.name, s.name)] = bb
            tb = want(t, s, bins, tip, "tip")
            plan += [(t, s, b, bb, tb) for b in bins]

    patch_builds: list[tuple[int, _Build]] = []
    if per_patch:
        natives = [t for t in targets if t.native and avail[t.name].available] or \
                  [t for t in all_targets() if t.native and available(t).available][:1]
        for t in natives:
            if t.name not in avail:
                avail[t.name] = available(t)
            for s, bins in suites_mod.select("quick", suites, binaries, present):
                for k in range(0, len(co.commits) + 1):      # 0 and n are the base and tip
                    rev = base if k == 0 else tip if k == len(co.commits) else co.rev_after(k)
                    pb = want(t, s, bins, rev, "base" if k == 0 else "tip" if rev == tip
                              else f"patch {k}")
                    if pb is not None:
                        patch_builds.append((k, pb))

    if progress:
        progress(Event("plan", total=sum(len(b.binaries) for b in builds.values())))
    try:
        # Base builds first: every other build of the same target and suite follows its base's.
        for b in sorted(builds.values(), key=lambda b: b.rev != base):
            sched.add_build(b, after=bases.get((b.spec.target.name, b.spec.suite.name)))
        sched.wait()
    finally:
        procs.kill_all()
        shutil.rmtree(workdir, ignore_errors=True)

    cells = []
    for t, s, b, bb, tb in plan:
        if not avail[t.name].available:
            r = _not_run(t, s, b, avail[t.name].reason)
            cells.append(Cell(t.name, s.name, b.name, base=_not_run(t, s, b, r.reason), tip=r))
            continue
        got = [bld.results.get(b.name) if bld else None for bld in (bb, tb)]
        for i, rev in enumerate((base, tip)):
            if got[i] is None:          # its Makefile at that revision does not build it
                got[i] = _not_run(t, s, b, f"{s.directory}/Makefile at {rev[:12]} does not build {b.name}")
        cells.append(Cell(t.name, s.name, b.name, base=got[0], tip=got[1]))

    findings = _bisect(co, patch_builds) if per_patch else []
    return MatrixResult(cells=cells, targets=infos, per_patch=findings, profile=profile,
                        base_sha=base, tip_sha=tip, duration=time.monotonic() - start, jobs=jobs,
                        sandbox=box, builds=sched.builds, notes=list(getattr(sched, "notes", [])))


def confinement(tree_path: Path, no_sandbox: bool = False, executor=None) -> Sandbox:
    """The sandbox for a series on the tree at `tree_path`: it sees neither mmreview's cache
    (other cells, the results) nor the user's tree.  Exit 3 when bwrap cannot confine and the
    user did not pass --no-sandbox.  On a cluster the workers confine (`mmreview worker` does not
    start without bubblewrap): this machine runs no series code and needs none."""
    if executor is not None:
        return Sandbox(confined=not no_sandbox, tool="bubblewrap on each cluster worker")
    return require(no_sandbox, hidden=(str(cache_dir()), str(tree_path)))


def _bisect(co, patch_builds: list[tuple[int, _Build]]) -> list[PatchFinding]:
    """The first patch after which a binary stops building or passing (it passed before)."""
    by_cell: dict[tuple[str, str, str], dict[int, RunResult]] = {}
    for k, b in patch_builds:
        for name, r in b.results.items():
            by_cell.setdefault((b.spec.target.name, b.spec.suite.name, name), {})[k] = r
    subjects = {p.number: p.subject for p in co.result.patches}
    findings = []
    for (target, suite, binary), states in sorted(by_cell.items()):
        ks = sorted(states)
        for prev, k in zip(ks, ks[1:]):
            if states[prev].state not in FAILING and states[k].state in FAILING:
                fixed = next((m for m in ks if m > k and states[m].state not in FAILING), None)
                r = states[k]
                findings.append(PatchFinding(patch=k, subject=subjects.get(k, ""), target=target,
                                             suite=suite, binary=binary, state=r.state,
                                             reason=r.reason, fixed_by=fixed, excerpt=r.excerpt))
    return findings
