"""The architecture matrix: Target × Suite × binary, at the base and at the tip, with verdicts.

Engine entry point (used by `mmreview check` and `mmreview test`, through review/pipeline.py):

    run_matrix(co: Checkout,
               targets: list[Target] | None = None,     # None: every target in matrix/targets/
               profile: str = "quick",                  # "quick" | "full" (see suites.py)
               suites: str | None = None,               # "radix-tree,vma" narrows
               binaries: str | None = None,             # "xarray,vma" narrows (overrides the profile)
               jobs: int | None = None,                 # parallel builds/runs (default: cores)
               per_patch: bool = False,                 # also build+run natively after every patch
               progress: Callable[[Event], None] | None = None,
               use_cache: bool = True,
               box: Sandbox | None = None,              # None: the executor's confinement, or exit 3
               build_timeout: float = BUILD_TIMEOUT,
               executor: Executor | None = None)        # None: this machine (LocalExecutor(jobs))
               -> MatrixResult

    MatrixResult.cells      list[results.Cell] (base and tip RunResult, .verdict)
    MatrixResult.targets    list[TargetInfo] (name, available, sanitizers, reason)
    MatrixResult.per_patch  list[PatchFinding] (first patch that breaks a build or a test)
    MatrixResult.sandbox    sandbox.Sandbox (whether series code ran confined)
    MatrixResult.to_json()

This module plans: which builds (target, suite, revision) give which cells.  A target that is
not available gives not-run cells with the reason (never silently dropped).  The builds go to
the executor's scheduler (executors/scheduler.py: the result cache, a tip build after its base
build, longest work first); a cell runs as matrix/cell.py says, its verdict is
matrix/results.py's.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from mmreview.common.paths import work_root
from mmreview.common.rundirs import new_run_dir, remove_stale
from mmreview.matrix import suites as suites_mod
from mmreview.matrix.build import BuildSpec, ProcessRegistry, input_key
from mmreview.matrix.executors import Executor
from mmreview.matrix.executors.local import LocalExecutor
from mmreview.matrix.executors.scheduler import Build, Event
from mmreview.matrix.results import BUILD_FAILED, FAILING, NEW_VERDICTS, NOT_RUN, Cell, RunResult
from mmreview.matrix.sandbox import BUILD_TIMEOUT, CONFINEMENT, Sandbox
from mmreview.matrix.suites import Binary, Suite
from mmreview.matrix.targets import Availability, Target, TargetInfo, all_targets

__all__ = ["Event", "MatrixResult", "PatchFinding", "run_matrix"]


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


def _not_run(t: Target, s: Suite, b: Binary, reason: str) -> RunResult:
    return RunResult(target=t.name, suite=s.name, binary=b.name, state=NOT_RUN, reason=reason)


def run_matrix(co, targets: list[Target] | None = None, profile: str = "quick",
               suites: str | None = None, binaries: str | None = None, jobs: int | None = None,
               per_patch: bool = False, progress: Callable[[Event], None] | None = None,
               use_cache: bool = True, box: Sandbox | None = None,
               build_timeout: float = BUILD_TIMEOUT, executor: Executor | None = None) -> MatrixResult:
    """`executor`: where the builds run (matrix/executors/): it says which targets are available
    and with which toolchain, and makes the scheduler."""
    start = time.monotonic()
    executor = executor or LocalExecutor(jobs)
    available = executor.availability
    if box is None:         # refuse before any work when series code cannot be confined
        box = executor.confinement(co.tree.path)
    targets = list(targets) if targets is not None else list(all_targets())
    base, tip = co.base_sha, co.result.tip_sha
    # Which binaries each suite has comes from the tree's own Makefiles, at base and tip.
    at_rev = {rev: {s.name: suites_mod.tree_binaries(co.path, rev, s) for s in suites_mod.SUITES}
              for rev in dict.fromkeys((base, tip))}
    present = {s.name: (None if all(at_rev[r][s.name] is None for r in at_rev) else
                        list(dict.fromkeys(n for r in at_rev for n in (at_rev[r][s.name] or []))))
               for s in suites_mod.SUITES}
    selection = suites_mod.select(profile, suites, binaries, present)
    avail: dict[str, Availability] = {t.name: available(t) for t in targets}
    infos = [TargetInfo.of(avail[t.name]) for t in targets]

    remove_stale(work_root())
    workdir = new_run_dir(work_root())
    workdir.mkdir(parents=True, exist_ok=True)
    procs = ProcessRegistry()
    sched = executor.scheduler(procs, progress, co, workdir, use_cache,
                               box=box if box.confined else None, build_timeout=build_timeout)
    sched.export_extra = tuple(dict.fromkeys(p for t in targets if avail[t.name].available
                                             for p in t.tree_paths))

    builds: dict[tuple, Build] = {}      # (target, suite, key, binaries)

    def want(t: Target, s: Suite, bins: list[Binary], rev: str, tag: str) -> Build | None:
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
                         confinement=CONFINEMENT if box.confined else "none")
        key = input_key(co.path, rev, spec, executor.toolchain(t))
        k = (t.name, s.name, key, spec.binaries)
        if k not in builds:
            builds[k] = Build(spec=spec, rev=rev, key=key, label=f"{t.name} {s.name} @{tag}",
                               binaries=bins)
        return builds[k]

    plan: list[tuple[Target, Suite, Binary, Build | None, Build | None]] = []
    bases: dict[tuple[str, str], Build] = {}
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

    patch_builds: list[tuple[int, Build]] = []
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
                        base_sha=base, tip_sha=tip, duration=time.monotonic() - start,
                        jobs=executor.threads, sandbox=box, builds=sched.builds, notes=list(sched.notes))


def _bisect(co, patch_builds: list[tuple[int, Build]]) -> list[PatchFinding]:
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
