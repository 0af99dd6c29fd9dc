"""The kernel's userland suites: where they live, and what they read and build in the tree at hand.

Nothing here is frozen from one kernel version.  The vma suite of 7.3 is another
program than 6.12's (main.c, shared.c, tests/, include/) and 6.1 has none; so
which binaries a suite has comes from the TARGETS line of the tree's own Makefile,
and what a build reads is whole directories of the tree (`REACH`), not a list of
files.  The result cache's key is kept honest by `key_paths`: the directories a
build reaches, except lib/ and mm/, where series land most and suites read a few
files by name; those files are found by following the names the suite's sources
and Makefiles give (`../../../lib/xarray.c`, `#include "vma.h"`), so a series that
only touches mm/memory.c reuses the base's results at the tip.

Profiles
--------
``quick`` runs xarray, multiorder (radix-tree) and vma on every target.  Why this
subset: it exercises lib/xarray.c, the radix-tree/IDR glue and mm/vma.c on every
word size and byte order, and for all six targets, base and tip (24 builds, 36 runs)
it costs about 480-520 CPU seconds: 243-264 s of wall time on an idle 2-core machine
(benchmarks/matrix.py).  xarray is 5-13 s natively with ASan and 35-76 s under qemu;
multiorder and vma about a second; a suite's build 2-12 s.  ``maple`` is
left out even natively: it takes 105-250 s per run (x2 for base and tip, x2 native
targets), which alone would take most of the budget; ``idr-test`` runs for a fixed
~44 s and ``main`` for 85-300 s.  Those are in ``full``, with any binary a tree's
Makefile has that is not known here.

Every binary of a suite is built in one `make` of that suite's directory (they
share their object files), then each binary runs as its own cell.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mmreview.common.errors import BadInput
from mmreview.common.git import run_git, show_file


@dataclass(frozen=True)
class Binary:
    name: str
    timeout: float           # seconds natively; a target's timeout_factor scales it
    seconds: float           # a typical run natively on x86_64 (ASan, 2 cores): orders the work
    profiles: tuple[str, ...]
    args: tuple[str, ...] = ()


# A binary a tree's Makefile builds that is not described here: in the full profile, with a
# timeout generous enough for a maple-sized run.
def unknown_binary(name: str) -> Binary:
    return Binary(name, timeout=900, seconds=60, profiles=("full",))


@dataclass(frozen=True)
class Suite:
    name: str
    directory: str           # where the Makefile is, relative to the tree
    known: tuple[Binary, ...]   # what we know of binaries trees have had (timeouts, profiles)

    def binary(self, name: str) -> Binary:
        for b in self.known:
            if b.name == name:
                return b
        return unknown_binary(name)


# What a suite's build reaches in the tree, from the suite's directory: the tools/ headers and
# libraries, the shared test harness, the kernel's include/ (tools/include links into it), and
# lib/ and mm/, whose sources the suites compile.  A target adds its own (arch/riscv/include).
REACH = ("tools/include", "tools/lib", "tools/arch", "tools/scripts", "tools/testing/shared",
         "include", "lib", "mm")
# Of REACH, the directories a cache key follows file by file (see key_paths).
BY_NAME = ("lib", "mm")

RADIX_TREE = Suite(
    name="radix-tree",
    directory="tools/testing/radix-tree",
    known=(
        Binary("xarray", timeout=150, seconds=12, profiles=("quick", "full")),
        Binary("multiorder", timeout=30, seconds=0.3, profiles=("quick", "full")),
        Binary("idr-test", timeout=150, seconds=44, profiles=("full",)),
        Binary("maple", timeout=900, seconds=270, profiles=("full",)),
        Binary("main", timeout=900, seconds=140, profiles=("full",)),
    ),
)

VMA = Suite(
    name="vma",
    directory="tools/testing/vma",
    known=(Binary("vma", timeout=60, seconds=0.5, profiles=("quick", "full")),),
)

SUITES: tuple[Suite, ...] = (RADIX_TREE, VMA)
PROFILES = ("quick", "full")


def get_suite(name: str) -> Suite:
    for s in SUITES:
        if s.name == name:
            return s
    raise BadInput(f"--suite {name}", "unknown suite (known: " + ", ".join(s.name for s in SUITES) + ")")


# ---------------------------------------------------------------- what a tree's suite builds

_TARGETS = re.compile(r"^TARGETS\s*[:+]?=\s*((?:.*\\\n)*.*)$", re.M)
_DEFAULT_GOAL = re.compile(r"^(?:default|all)\s*:\s*([\w.-]+(?:[ \t]+[\w.-]+)*)\s*$", re.M)


def makefile_binaries(makefile: str) -> list[str]:
    """The binaries a suite's Makefile builds: its TARGETS (else its default goal's prerequisites)."""
    names: list[str] = []
    for m in _TARGETS.finditer(makefile):
        names += [n for n in m.group(1).replace("\\\n", " ").split() if not n.startswith("$")]
    if not names:
        m = _DEFAULT_GOAL.search(makefile)
        names = m.group(1).split() if m else []
    return list(dict.fromkeys(names))


def tree_binaries(repo: Path, rev: str, suite: Suite) -> list[str] | None:
    """The suite's binaries in the tree at `rev`; None when the tree has no such suite."""
    text = _show(str(repo), rev, f"{suite.directory}/Makefile")
    return None if text is None else makefile_binaries(text)


def check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise BadInput(f"--profile {profile}", "must be quick or full")


def select(profile: str = "quick", suites: str | None = None, binaries: str | None = None,
           present: dict[str, list[str] | None] | None = None) -> list[tuple[Suite, list[Binary]]]:
    """The (suite, binaries) a run covers.  An explicit --binary overrides the profile.
    `present`: each suite's binaries in the tree (None: the tree lacks the suite); without it,
    the binaries known here.  A suite the tree lacks keeps its profile's known binaries, so it
    shows as not-run cells that say why."""
    check_profile(profile)
    chosen = [get_suite(s.strip()) for s in suites.split(",") if s.strip()] if suites else list(SUITES)
    wanted = {b.strip() for b in binaries.split(",") if b.strip()} if binaries else None

    def candidates(s: Suite) -> list[Binary]:
        names = (present or {}).get(s.name)
        if names is None:
            return list(s.known)
        return [s.binary(n) for n in names]

    if wanted:
        known = {b.name for s in chosen for b in candidates(s)} | {b.name for s in SUITES for b in s.known}
        unknown = wanted - known
        if unknown:
            raise BadInput(f"--binary {','.join(sorted(unknown))}",
                           "unknown binary (known: " + ", ".join(sorted(known)) + ")")
    out = []
    for s in chosen:
        bins = [b for b in candidates(s) if (b.name in wanted if wanted else profile in b.profiles)]
        if bins:
            out.append((s, bins))
    if not out:
        raise BadInput("--binary/--suite", "select no binary")
    return out


# ---------------------------------------------------------------- what a build reads (cache keys)

def export_paths(suite: Suite, extra: tuple[str, ...] = ()) -> list[str]:
    """What a build of `suite` is given of the tree (a target's own paths in `extra`)."""
    return list(dict.fromkeys((suite.directory, *REACH, *extra)))


# "../../../lib/xarray.c" in a Makefile or a C file; `#include "x"` in C.
_REL_PATH = re.compile(r"((?:\.\./)+(?:[\w.+-]+/)*[\w.+-]+\.[ch])\b")
_QUOTED_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def key_paths(repo: Path, rev: str, suite: Suite, extra: tuple[str, ...] = ()) -> list[str]:
    """The paths whose git ids make a build's cache key: every exported directory whole, but
    of lib/ and mm/ only the files the suite names, followed through quoted #includes.
    A file the build can read but this misses would only make a key too coarse to notice a
    change; the test suite compares this with what a real build's dependency files list."""
    named = _named_files(str(repo), rev, suite.directory)
    whole = [p for p in export_paths(suite, extra) if p not in BY_NAME]
    return whole + sorted(named)


@lru_cache(maxsize=64)
def _named_files(repo: str, rev: str, suite_dir: str) -> frozenset[str]:
    """Files under lib/ and mm/ that the suite (its dir, tools/testing/shared, tools/include,
    tools/lib) names by relative path or reaches by quoted #include from those files."""
    roots = [suite_dir, "tools/testing/shared", "tools/include", "tools/lib"]
    listing = _ls(repo, rev, roots, recursive=True)
    tree_files = set(_ls(repo, rev, list(BY_NAME), recursive=True))
    texts = _cat(repo, rev, [p for p in listing if p.endswith((".c", ".h", "Makefile", ".mk"))
                             and p.count("/") <= 4])
    found: set[str] = set()
    todo = list(texts.items())
    while todo:
        path, text = todo.pop()
        here = posixpath.dirname(path)
        refs = [posixpath.normpath(posixpath.join(here, r)) for r in _REL_PATH.findall(text)]
        for inc in _QUOTED_INCLUDE.findall(text):
            # Next to the includer, or in lib/ through the suites' -I../../../lib.
            refs += [posixpath.normpath(posixpath.join(here, inc)), posixpath.normpath("lib/" + inc)]
        new = [r for r in refs if r in tree_files and r not in found]
        found.update(new)
        todo += list(_cat(repo, rev, new).items())
    return frozenset(found)


def _ls(repo: str, rev: str, paths: list[str], recursive: bool) -> list[str]:
    proc = run_git(repo, "ls-tree", "--full-tree", "--name-only", *(["-r"] if recursive else []),
                   rev, "--", *paths, check=False)
    return proc.stdout.decode("utf-8", "replace").splitlines() if proc.returncode == 0 else []


def _cat(repo: str, rev: str, paths: list[str]) -> dict[str, str]:
    """Many files at `rev` in one `git cat-file --batch`."""
    if not paths:
        return {}
    proc = run_git(repo, "cat-file", "--batch", input="".join(f"{rev}:{p}\n" for p in paths).encode(),
                   check=False)
    out, pos, texts = proc.stdout, 0, {}
    for p in paths:
        nl = out.index(b"\n", pos)
        header = out[pos:nl].split()
        pos = nl + 1
        if len(header) < 3 or header[1] != b"blob":
            continue
        size = int(header[2])
        texts[p] = out[pos:pos + size].decode("utf-8", "replace")
        pos += size + 1
    return texts


@lru_cache(maxsize=64)
def _show(repo: str, rev: str, path: str) -> str | None:
    data = show_file(repo, rev, path)
    return None if data is None else data.decode("utf-8", "replace")
