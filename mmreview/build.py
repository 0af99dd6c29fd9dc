"""Build one suite for one target at one revision, in a directory of its own.

The suites' Makefiles build in place and always add -fsanitize=address,undefined.
So each (target, suite, revision) gets a clean export of just the paths the suite
reads (`Checkout.export`), and make runs with a small wrapper makefile next to it
that includes the suite's own Makefile and then swaps the sanitizer flags for the
ones the target's runtime supports.  The user's tree is never written, and any
number of targets build side by side.

Processes are started in their own session and registered in `PROCS`, so a
Ctrl-C (or a timeout) kills the whole process group and leaves nothing running.
"""

from __future__ import annotations

import hashlib
import re
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .gitutil import git_out
from .run_parse import first_build_error
from .suites import Suite
from .targets import Target, compiler_version
from .tree import cache_dir

CACHE_SCHEMA = "2"

# Appended after the suite's own flags: drop its sanitizers, add the target's choice.
WRAPPER_MK = """\
# Written by mmreview: build the suite with this target's flags, not its hard-wired ones.
include Makefile
override CFLAGS := $(filter-out -fsanitize=%,$(CFLAGS)) $(MM_CFLAGS)
override LDFLAGS := $(filter-out -fsanitize=%,$(LDFLAGS)) $(MM_LDFLAGS)
"""


class Cancelled(Exception):
    """The run was interrupted; whatever was running has been killed."""


class ProcessRegistry:
    """Every child process group we started, so one call kills them all (Ctrl-C, timeout)."""

    def __init__(self) -> None:
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.cancelled = threading.Event()

    def run(self, cmd: list[str], cwd: Path, log: Path, timeout: float | None = None,
            env: dict[str, str] | None = None) -> tuple[int | None, bool, float]:
        """Run `cmd` with stdout+stderr into `log`: (returncode, timed_out, seconds)."""
        if self.cancelled.is_set():
            raise Cancelled()
        start = time.monotonic()
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    env={**os.environ, "LC_ALL": "C", **(env or {})})
        with self._lock:
            self._procs.add(proc)
        timed_out = False
        try:
            while True:
                try:
                    proc.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    if self.cancelled.is_set():
                        _kill(proc)
                        proc.wait()
                        raise Cancelled()
                    if timeout is not None and time.monotonic() - start > timeout:
                        timed_out = True
                        _kill(proc)
                        proc.wait()
                        break
        finally:
            with self._lock:
                self._procs.discard(proc)
        return (None if timed_out else proc.returncode), timed_out, time.monotonic() - start

    def kill_all(self) -> None:
        self.cancelled.set()
        with self._lock:
            procs = list(self._procs)
        for p in procs:
            _kill(p)
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # its own session: the group is make/cc/qemu and children
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class BuildSpec:
    """Everything that decides what a build produces (and so its cache key)."""
    target: Target
    suite: Suite
    binaries: tuple[str, ...]
    sanitizers: tuple[str, ...]
    urcu_prefix: str = ""

    def paths(self) -> list[str]:
        return [*self.suite.paths, *self.target.tree_paths]

    def cflags(self, src: Path) -> list[str]:
        flags = [f.replace("{src}", str(src)) for f in self.target.cflags]
        flags += [f"-fsanitize={s}" for s in self.sanitizers]
        if self.urcu_prefix:
            # -L here too: tools/testing/vma links with $(CFLAGS) and without $(LDFLAGS).
            flags += [f"-I{self.urcu_prefix}/include", f"-L{self.urcu_prefix}/lib"]
        return flags

    def ldflags(self) -> list[str]:
        flags = list(self.target.ldflags) + [f"-fsanitize={s}" for s in self.sanitizers]
        if self.urcu_prefix:     # riscv_urcu builds a static liburcu.a: no run-time path needed
            flags += [f"-L{self.urcu_prefix}/lib"]
        return flags

    def make_args(self, src: Path, launcher: str = "") -> list[str]:
        cc = f"{launcher} {self.target.cc}" if launcher else self.target.cc
        # Debug info (and so linker errors and sanitizer reports) names files as in the tree,
        # not in this build's copy: which also lets ccache share objects between copies.
        cflags = [*self.cflags(src), f"-ffile-prefix-map={src}/="]
        return [f"CC={cc}", "MM_CFLAGS=" + " ".join(cflags),
                "MM_LDFLAGS=" + " ".join(self.ldflags()),
                *(f"{k}={v}" for k, v in self.target.make_vars)]

    def user_command(self, binary: str) -> str:
        """What a developer types in their kernel tree to reproduce this cell."""
        suite_dir = self.suite.directory
        cflags = ("-I../shared -I. -I../../include -I../../../lib -g -Og -Wall -D_LGPL_SOURCE "
                  + " ".join(self.cflags(Path("../../.."))))
        parts = ["make", "-C", suite_dir, f"CC={self.target.cc}", f"CFLAGS={cflags.strip()}",
                 "LDFLAGS=" + " ".join(self.ldflags()),
                 *(f"{k}={v}" for k, v in self.target.make_vars), binary]
        run = [*self.target.runner, f"{suite_dir}/{binary}"]
        return shlex.join(parts) + " && " + shlex.join(run)


def input_key(repo: Path, rev: str, spec: BuildSpec) -> str:
    """A hash of everything that went into a build: the suite's inputs as in the tree at `rev`
    (git object ids: no file is read), the target's definition, flags and compiler version."""
    listing = git_out(repo, "ls-tree", "--full-tree", rev, "--", *spec.paths())
    urcu = ""
    if spec.urcu_prefix:       # what went into a liburcu mmreview built (riscv_urcu's stamp)
        stamp = Path(spec.urcu_prefix) / "mmreview-build.json"
        urcu = stamp.read_text() if stamp.exists() else spec.urcu_prefix
    h = hashlib.sha256()
    for part in (CACHE_SCHEMA, WRAPPER_MK, spec.suite.name, spec.suite.directory, spec.target.source,
                 ",".join(spec.sanitizers), spec.urcu_prefix, compiler_version(spec.target.cc),
                 ",".join(spec.target.runner), urcu, listing):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


@dataclass
class BuildOutcome:
    ok: bool
    directory: Path                 # where the binaries are (the suite directory of the export)
    log: Path
    duration: float
    error: list[str] = field(default_factory=list)
    built: list[str] = field(default_factory=list)
    src: Path | None = None         # the export's root: what `tree_relative` strips

    def tree_relative(self, line: str) -> str:
        return tree_relative(line, self.src) if self.src else line


def tree_relative(line: str, src: Path) -> str:
    """Paths in compiler output as the reader knows them: `mm/vma.c:332`, not the build copy's
    `<work dir>/src/tools/testing/vma/../../../mm/vma.c:332` (compiler) or the debug info's
    `tools/testing/vma/../../../mm/vma.c:332` (linker, sanitizer reports)."""
    line = re.sub(re.escape(str(src)) + r"/(\S+?)(?=[:\s]|$)", lambda m: os.path.normpath(m.group(1)), line)
    return re.sub(r"(?<![\w/.])tools/testing/[\w.-]+/(?:\.\./)+\S+?(?=[:\s]|$)",
                  lambda m: os.path.normpath(m.group(0)), line)


def compiler_cache_env(base_dir: Path) -> dict[str, str]:
    """ccache for every compile, when installed: the tip build after the base (and the next series
    on the same base) recompiles only the files the series changed.  Every build is a fresh copy
    under `base_dir` at the same depth, so with absolute paths made relative to it (and the
    working directory hashed as -ffile-prefix-map maps it) two copies of one source hash alike.
    The copies are never modified after export, so their fresh mtimes are no race to guard."""
    if shutil.which("ccache") is None:
        return {}
    return {"CCACHE_DIR": str(cache_dir() / "ccache"), "CCACHE_BASEDIR": str(base_dir),
            "CCACHE_MAXSIZE": "2G",
            "CCACHE_SLOPPINESS": "include_file_mtime,include_file_ctime"}


def build(co, rev: str, spec: BuildSpec, workdir: Path, procs: ProcessRegistry,
          cache_base: Path | None = None) -> BuildOutcome:
    """Export the suite's paths at `rev` into `workdir` and make the binaries there.
    `cache_base`: the directory all builds sharing a compiler cache live under (same depth)."""
    start = time.monotonic()
    src = workdir / "src"
    co.export(rev, src, spec.paths())
    mk = workdir / "mmreview.mk"
    mk.write_text(WRAPPER_MK)
    suite_dir = src / spec.suite.directory
    log = workdir / "build.log"
    if not (suite_dir / "Makefile").exists():
        log.write_text(f"{spec.suite.directory}/Makefile does not exist at {rev[:12]}\n")
        return BuildOutcome(False, suite_dir, log, time.monotonic() - start,
                            error=[f"{spec.suite.directory}/Makefile does not exist at {rev[:12]}"])
    env = compiler_cache_env(cache_base) if cache_base else {}
    cmd = ["make", "-C", str(suite_dir), "-f", str(mk),
           *spec.make_args(src, launcher="ccache" if env else ""), *spec.binaries]
    # -k: one binary failing to link must not hide whether the others build.
    cmd.insert(1, "-k")
    rc, _, _ = procs.run(cmd, cwd=suite_dir, log=log, env=env)
    built = [b for b in spec.binaries if (suite_dir / b).is_file()]
    ok = rc == 0
    error = [] if ok else [tree_relative(l, src) for l in first_build_error(log.read_text(errors="replace"))]
    return BuildOutcome(ok, suite_dir, log, time.monotonic() - start, error=error, built=built, src=src)
