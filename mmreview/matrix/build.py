"""Build one suite for one target at one revision, in a directory of its own.

The suites' Makefiles build in place and always add -fsanitize=address,undefined.
So each revision is exported once (`export_revision`: the directories the suites
reach, suites.REACH), each (target, suite, revision) build gets a copy of that
export made of hard links, with the suite's own directory a real copy (that is
where make writes), and make runs with a small wrapper makefile next to it that
includes the suite's own Makefile and then swaps the sanitizer flags for the ones
the target's runtime supports.  The user's tree is never written, and any number
of targets build side by side.

A build that fails because of this recipe rather than the tree (the export lacks a
file the tree has, the compiler rejects a flag mmreview added) is not a verdict:
`recipe_problem` names it, and the matrix reports such cells as not-run, infra.

Processes are started in their own session and registered in a ProcessRegistry
(one per review, one per cluster task), so a Ctrl-C (or a timeout) kills the
whole process group and leaves nothing running.
Every build and run is confined (sandbox.py) unless the user opted out: a build
sees its own copy writable and nothing else of the cache; a build of anything but
the base uses the compiler cache read-only, so series code cannot plant objects
that a later review would link.
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
from typing import NamedTuple

from mmreview.common.errors import InfraError
from mmreview.matrix.sandbox import BUILD_TIMEOUT, NOBODY, Jail, Limits, Sandbox, give_to_nobody
from mmreview.common.git import git_out
from mmreview.matrix.parse import build_errors, first_build_error, signame
from mmreview.matrix.suites import SUITES, Suite, export_paths, key_paths
from mmreview.matrix.targets import Target, compiler_version
from mmreview.common import paths

CACHE_SCHEMA = "9"        # 8: riscv64 build errors name a path once (tree_relative): older signatures differ;
                          # 9: the least view, and writes outside the build directory heard
LOG_READ = 4 << 20          # a log is read as its first and last 4 MiB: a test may print gigabytes

# Appended after the suite's own flags: drop its sanitizers, add the target's choice.
WRAPPER_MK = """\
# Written by mmreview: build the suite with this target's flags, not its hard-wired ones.
include Makefile
override CFLAGS := $(filter-out -fsanitize=%,$(CFLAGS)) $(MM_CFLAGS)
override LDFLAGS := $(filter-out -fsanitize=%,$(LDFLAGS)) $(MM_LDFLAGS)
"""


class Cancelled(Exception):
    """The run was interrupted; whatever was running has been killed."""


class Ran(NamedTuple):
    returncode: int | None      # as subprocess gives it; None when it timed out
    timed_out: bool
    seconds: float
    escapes: list[str]          # what a confined process tried outside its directory (Jail.escapes)


def read_log(log: Path) -> str:
    """The log, or its first and last LOG_READ bytes when longer."""
    with open(log, "rb") as f:
        head = f.read(LOG_READ)
        if len(head) < LOG_READ:
            return head.decode(errors="replace")
        f.seek(max(LOG_READ, os.fstat(f.fileno()).st_size - LOG_READ))
        tail = f.read(LOG_READ)
    return (head.decode(errors="replace") + "\n[... mmreview: log cut ...]\n" + tail.decode(errors="replace"))


class ProcessRegistry:
    """Every child process group we started, so one call kills them all (Ctrl-C, timeout)."""

    def __init__(self) -> None:
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.cancelled = threading.Event()

    def run(self, cmd: list[str], cwd: Path, log: Path, timeout: float | None = None,
            env: dict[str, str] | None = None, jail: Jail | None = None) -> Ran:
        """Run `cmd` with stdout+stderr into `log` (outside what `jail` lets it write)."""
        if self.cancelled.is_set():
            raise Cancelled()
        start = time.monotonic()
        if jail is not None:
            cmd, full_env = jail.command(cmd, cwd, env or {}), {**os.environ, "LC_ALL": "C"}
        else:
            full_env = {**os.environ, "LC_ALL": "C", **(env or {})}
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, env=full_env,
                                    pass_fds=jail.pass_fds if jail is not None else ())
        if jail is not None:
            jail.started()
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
        rc = None if timed_out else proc.returncode
        if jail is not None:
            return Ran(jail.returncode(rc), timed_out, time.monotonic() - start, jail.escapes())
        return Ran(rc, timed_out, time.monotonic() - start, [])

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
    confinement: str = ""           # sandbox.CONFINEMENT or "none": a result depends on what the test could reach

    def paths(self) -> list[str]:
        return export_paths(self.suite, self.target.tree_paths)

    @property
    def default_flags(self) -> bool:
        """Whether the suite's own Makefile flags are this build's (then no wrapper is needed)."""
        return (not self.target.cflags and not self.target.ldflags and not self.urcu_prefix
                and set(self.sanitizers) == {"address", "undefined"})

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
        """What a developer types at the top of their kernel tree to reproduce this cell: the
        suite's own Makefile with its own flags, and where the target needs other flags, the
        same wrapper mmreview uses, given to make on its standard input."""
        suite_dir = self.suite.directory
        make = ["make", "-C", suite_dir]
        if self.target.cc != "gcc":
            make.append(f"CC={self.target.cc}")
        make += [f"{k}={v}" for k, v in self.target.make_vars]
        if self.default_flags:
            cmd = shlex.join([*make, binary])
        else:
            lines = ["include Makefile", *WRAPPER_MK.splitlines()[2:]]
            make[3:3] = ["-f", "-"]
            make += ["MM_CFLAGS=" + " ".join(self.cflags(Path("../../.."))),
                     "MM_LDFLAGS=" + " ".join(self.ldflags())]
            cmd = "printf '%s\\n' " + " ".join(shlex.quote(l) for l in lines) + " | " \
                + shlex.join([*make, binary])
        run = [*self.target.runner, f"./{binary}"]
        return f"{cmd} && (cd {shlex.quote(suite_dir)} && {shlex.join(run)})"


def toolchain(target: Target, urcu_prefix: str = "") -> tuple[str, str]:
    """What this machine builds `target` with, as a cache key sees it: the compiler's version and
    what went into a liburcu mmreview built (riscv_urcu's stamp)."""
    urcu = ""
    if urcu_prefix:
        stamp = Path(urcu_prefix) / "mmreview-build.json"
        urcu = stamp.read_text() if stamp.exists() else urcu_prefix
    return compiler_version(target.cc), urcu


def input_key(repo: Path, rev: str, spec: BuildSpec, machine: tuple[str, str] | None = None) -> str:
    """A hash of everything that went into a build: the suite's inputs as in the tree at `rev`
    (git object ids: no file is read), the target's definition, flags and compiler version.
    `machine`: `toolchain()` of the machine that builds it, when that is not this one (a
    cluster worker)."""
    listing = git_out(repo, "ls-tree", "--full-tree", rev, "--",
                      *key_paths(repo, rev, spec.suite, spec.target.tree_paths))
    cc_version, urcu = machine or toolchain(spec.target, spec.urcu_prefix)
    h = hashlib.sha256()
    for part in (CACHE_SCHEMA, WRAPPER_MK, spec.suite.name, spec.suite.directory, spec.target.source,
                 ",".join(spec.sanitizers), spec.urcu_prefix, cc_version,
                 ",".join(spec.target.runner), urcu, spec.confinement, listing):
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
    absent: bool = False            # the tree has no such suite at this revision
    recipe: str = ""                # the build failed because of mmreview's recipe: why
    errors: list[str] = field(default_factory=list)   # every distinct error, as in the tree
    timed_out: bool = False
    escapes: list[str] = field(default_factory=list)  # what the build tried outside its directory
    writable: tuple[Path, ...] = ()  # the copy's directories make (and the tests) may write: the rest
                                     # are hard links to the export, read-only in the sandbox
    cache_hits: int = 0             # objects the compiler cache had (ccache's stats log)
    cache_misses: int = 0

    def to_json(self) -> dict:
        """As a cluster worker sends it back (paths as strings)."""
        return {**self.__dict__,
                "directory": str(self.directory), "log": str(self.log),
                "src": str(self.src) if self.src else None,
                "writable": [str(p) for p in self.writable]}

    @classmethod
    def from_json(cls, d: dict) -> "BuildOutcome":
        return cls(**{**d, "directory": Path(d["directory"]), "log": Path(d["log"]),
                      "src": Path(d["src"]) if d["src"] else None,
                      "writable": tuple(Path(p) for p in d["writable"])})

    def tree_relative(self, line: str) -> str:
        if not self.src:
            return line
        return tree_relative(line, self.src, os.path.relpath(self.directory, self.src))


def tree_relative(line: str, src: Path, suite_dir: str = "") -> str:
    """Paths in compiler output as the reader knows them: `mm/vma.c:332`, not the build copy's
    `<work dir>/src/tools/testing/vma/../../../mm/vma.c:332` (compiler), the debug info's
    `tools/testing/vma/../../../mm/vma.c:332` (linker, sanitizer reports) or, with the suite's
    directory, gcc's `../shared/../../../lib/maple_tree.c:3` (relative to where make ran).
    riscv64's linker (binutils 2.40) names the suite's own files with its directory twice
    (`tools/testing/vma/tools/testing/vma/vma.c:1420`): once is enough."""
    if suite_dir:
        line = re.sub(rf"(?<![\w/.]){re.escape(suite_dir)}/(?={re.escape(suite_dir)}/)", "", line)
    line = re.sub(re.escape(str(src)) + r"/(\S+?)(?=[:\s]|$)", lambda m: os.path.normpath(m.group(1)), line)
    line = re.sub(r"(?<![\w/.])tools/testing/[\w.-]+/(?:\.\./)+\S+?(?=[:\s]|$)",
                  lambda m: os.path.normpath(m.group(0)), line)
    if suite_dir:
        line = re.sub(r"(?<![\w/.])(?:\.\./|[\w.-]+/\.\./)+[\w./-]+?(?=[:\s]|$)",
                      lambda m: os.path.normpath(os.path.join(suite_dir, m.group(0))), line)
    return line


def compiler_cache_env(base_dir: Path, box: Sandbox | None = None, trusted: bool = True) -> dict[str, str]:
    """ccache for every compile, when installed: the tip build after the base (and the next series
    on the same base) recompiles only the files the series changed.  Every build is a fresh copy
    under `base_dir` at the same depth, so with absolute paths made relative to it (and the
    working directory hashed as -ffile-prefix-map maps it) two copies of one source hash alike.
    The copies are never modified after export, so their fresh mtimes are no race to guard."""
    if shutil.which("ccache") is None:
        return {}
    env = {"CCACHE_DIR": str(ccache_dir(box)), "CCACHE_BASEDIR": str(base_dir), "CCACHE_MAXSIZE": "2G",
           "CCACHE_SLOPPINESS": "include_file_mtime,include_file_ctime"}
    if not trusted:     # series code: it may read what the base compiled, never add to it
        env["CCACHE_READONLY"] = "1"
    return env


def ccache_dir(box: Sandbox | None) -> Path:
    """The compiler cache; a sandbox running as nobody has its own, owned by nobody."""
    if box is None or not box.as_nobody:
        return paths.ccache_dir()
    d = paths.ccache_dir(as_nobody=True)
    if not d.is_dir() or d.stat().st_uid != NOBODY:
        d.mkdir(parents=True, exist_ok=True)
        give_to_nobody(d)
    return d


def export_revision(co, rev: str, dest: Path, extra: tuple[str, ...] = ()) -> Path:
    """Everything any suite's build reaches in the tree at `rev`, exported once: every build of
    that revision is a hard-linked copy of it (`_link_copy`)."""
    co.export(rev, dest, revision_paths(extra))
    return dest


def revision_paths(extra: tuple[str, ...] = ()) -> list[str]:
    """What `export_revision` exports of a revision (a cluster sends the same to its workers)."""
    return list(dict.fromkeys(p for s in SUITES for p in export_paths(s, extra)))


def _link_copy(export: Path, src: Path, writable: tuple[str, ...]) -> None:
    """`src` as a copy of `export` made of hard links (a tenth of a second for ~8,000 files),
    except `writable`, really copied: the directories make writes in."""
    proc = subprocess.run(["cp", "-al", str(export), str(src)], capture_output=True)
    for d in writable:
        if proc.returncode == 0 and (export / d).is_dir():
            shutil.rmtree(src / d)
            proc = subprocess.run(["cp", "-a", str(export / d), str(src / d)], capture_output=True)
    if proc.returncode != 0:
        raise InfraError(str(src), "could not copy the export: "
                         + proc.stderr.decode(errors="replace").strip())


def build(export: Path, rev: str, spec: BuildSpec, workdir: Path, procs: ProcessRegistry,
          cache_base: Path | None = None, repo: Path | None = None, box: Sandbox | None = None,
          trusted: bool = True, timeout: float = BUILD_TIMEOUT) -> BuildOutcome:
    """Make the binaries of `spec` in a copy of `export` (the tree at `rev`) under `workdir`.
    `cache_base`: the directory all builds sharing a compiler cache live under (same depth).
    `repo`: the tree, to tell a failure of this recipe from the tree's own (`recipe_problem`).
    `box`: confine make (None: run it as this user); `trusted`: the tree is the user's own
    (the base), so its objects may go into the compiler cache."""
    start = time.monotonic()
    src = workdir / "src"
    mk = workdir / "mmreview.mk"
    mk.write_text(WRAPPER_MK)
    suite_dir = src / spec.suite.directory
    log = workdir / "build.log"
    if not (export / spec.suite.directory / "Makefile").exists():
        why = f"the tree has no {spec.suite.directory} at {rev[:12]}"
        log.write_text(why + "\n")
        return BuildOutcome(False, suite_dir, log, time.monotonic() - start, error=[why], absent=True)
    writable = (spec.suite.directory, "tools/testing/shared")
    _link_copy(export, src, writable)
    rw_dirs = tuple(src / d for d in writable if (src / d).is_dir())
    env = compiler_cache_env(cache_base, box, trusted) if cache_base else {}
    cmd = ["make", "-C", str(suite_dir), "-f", str(mk),
           *spec.make_args(src, launcher="ccache" if env else ""), *spec.binaries]
    # -k: one binary failing to link must not hide whether the others build.
    cmd.insert(1, "-k")
    jail = None
    if box is not None and box.confined:
        if box.as_nobody:
            for d in rw_dirs:
                give_to_nobody(d)
        # The copy read-only (its files are the export's, shared by every build of this revision
        # and, on a cluster worker, kept for the next review), the directories make writes in not.
        ro = [src, mk, *([Path(spec.urcu_prefix)] if spec.urcu_prefix else [])]
        rw = list(rw_dirs)
        if env:
            (rw if trusted else ro).append(Path(env["CCACHE_DIR"]))
        jail = box.jail(workdir / "box-build", writable=tuple(rw), readonly=tuple(ro),
                        limits=Limits(cpu_seconds=int(timeout), address_bytes=8 << 30))
    if env:     # per build, and where even a build with a read-only cache may write
        env["CCACHE_STATSLOG"] = str((jail.tool_dir if jail else workdir) / "ccache-stats.log")
    ran = procs.run(cmd, cwd=suite_dir, log=log, env=env, timeout=timeout, jail=jail)
    hits, misses = _cache_counts(Path(env["CCACHE_STATSLOG"])) if env else (0, 0)
    built = [b for b in spec.binaries if (suite_dir / b).is_file() and not (suite_dir / b).is_symlink()]
    ok = ran.returncode == 0 and not ran.escapes
    if ran.timed_out:
        why = f"the build did not finish in {timeout:.0f} s"
        return BuildOutcome(False, suite_dir, log, time.monotonic() - start, error=[why], src=src,
                            timed_out=True, escapes=ran.escapes, writable=rw_dirs)
    text = "" if ok else read_log(log)
    error = [] if ok else [tree_relative(l, src, spec.suite.directory) for l in first_build_error(text)]
    if ran.returncode is not None and ran.returncode < 0:     # a signal death is said as one
        error.insert(0, f"the build was killed by {signame(-ran.returncode)}")
    escapes = [tree_relative(e, src) for e in ran.escapes]     # the sources' paths as in the tree
    errors = [] if ok else [tree_relative(l, src, spec.suite.directory) for l in build_errors(text)]
    recipe = "" if ok or repo is None else recipe_problem(text, spec, src, repo, rev)
    return BuildOutcome(ok, suite_dir, log, time.monotonic() - start, error=error, built=built,
                        src=src, recipe=recipe, errors=errors, escapes=escapes, writable=rw_dirs,
                        cache_hits=hits, cache_misses=misses)


def _cache_counts(statslog: Path) -> tuple[int, int]:
    """(hits, misses) from ccache's stats log: one counter name a line, per compile."""
    try:
        lines = statslog.read_text(errors="replace").splitlines()
    except OSError:
        return 0, 0
    return (sum(l in ("direct_cache_hit", "preprocessed_cache_hit") for l in lines),
            sum(l == "cache_miss" for l in lines))


_NO_RULE = re.compile(r"No rule to make target '([^']+)'")
_NO_FILE = re.compile(r"^(\S+?):\d+(?::\d+)?: fatal error: (\S+?): No such file or directory", re.M)
_BAD_OPTION = re.compile(r"unrecognized command[- ]line option '([^']+)'")


def recipe_problem(log: str, spec: BuildSpec, src: Path, repo: Path, rev: str) -> str:
    """Why a failed build is mmreview's doing, not the tree's ("" when it is the tree's): a file
    the build looked for that a full checkout of the tree at `rev` has but this build was not
    given, or a compiler option that mmreview added and the compiler rejects."""
    suite_dir = src / spec.suite.directory
    wanted: list[Path] = [suite_dir / m.group(1) for m in _NO_RULE.finditer(log)]
    for m in _NO_FILE.finditer(log):
        includer = m.group(1) if os.path.isabs(m.group(1)) else suite_dir / m.group(1)
        wanted.append(Path(includer).parent / m.group(2))
    for path in wanted:
        rel = os.path.relpath(os.path.normpath(path), src)
        if rel.startswith("..") or path.exists():
            continue
        if git_out(repo, "ls-tree", "--full-tree", "--name-only", rev, "--", rel).strip():
            return (f"the build looked for {rel}, which the tree has but mmreview's export "
                    f"({', '.join(spec.paths())}) left out")
    ours = " ".join(spec.make_args(src))
    for m in _BAD_OPTION.finditer(log):
        if m.group(1) in ours:
            return f"{spec.target.cc} rejects {m.group(1)}, which mmreview added for {spec.target.name}"
    return ""
