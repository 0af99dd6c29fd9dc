"""How a cell runs: one binary of one build, run (confined) and read into a RunResult.

A build (build.build) makes a suite's binaries for one target at one revision; each binary it
made is run here, and each it did not make gets the cell that says why.  The local pool
(matrix/executors/local.py) and a cluster worker (matrix/executors/dask_worker.py) both call
these on the same build.build() outcome, so a cell is the same RunResult on either, confined
the same way.  Its verdict (base against tip) is matrix/results.py's.
"""

from __future__ import annotations

from pathlib import Path

from mmreview.matrix.build import BuildOutcome, BuildSpec, ProcessRegistry, read_log
from mmreview.matrix.parse import build_error_line, parse_run, signature
from mmreview.matrix.results import BLOCKED, BUILD_FAILED, NOT_RUN, TIMEOUT, RunResult
from mmreview.matrix.sandbox import Limits, Sandbox
from mmreview.matrix.suites import Binary


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
