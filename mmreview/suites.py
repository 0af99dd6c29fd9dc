"""The kernel's userland suites as data: where they live, what they need from the tree, their binaries.

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
~44 s and ``main`` for 85-300 s.  Those are in ``full``.

Every binary of a suite is built in one `make` of that suite's directory (they
share their object files), then each binary runs as its own cell.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BadInput


@dataclass(frozen=True)
class Binary:
    name: str
    timeout: float           # seconds natively; a target's timeout_factor scales it
    seconds: float           # a typical run natively on x86_64 (ASan, 2 cores): orders the work
    profiles: tuple[str, ...]
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Suite:
    name: str
    directory: str           # where the Makefile is, relative to the tree
    paths: tuple[str, ...]   # what the build reads from the tree (exported, and hashed for the cache)
    binaries: tuple[Binary, ...]

    def binary(self, name: str) -> Binary:
        for b in self.binaries:
            if b.name == name:
                return b
        raise KeyError(name)


_TOOLS = ("tools/include", "tools/lib", "tools/arch", "tools/testing/shared", "tools/scripts")
# The kernel headers the suites include through ../../../include/linux (from the builds' -MD
# output on 6.12); the rest of include/linux (2,700 files) is not exported.  A tree whose
# suites need more shows a build-failed cell naming the missing header, never a silent pass.
_KERNEL_HEADERS = tuple(f"include/linux/{h}" for h in (
    "xarray.h", "maple_tree.h", "radix-tree.h", "idr.h", "gfp_types.h", "kconfig.h"))

RADIX_TREE = Suite(
    name="radix-tree",
    directory="tools/testing/radix-tree",
    paths=("tools/testing/radix-tree", *_TOOLS, *_KERNEL_HEADERS,
           "lib/xarray.c", "lib/test_xarray.c", "lib/maple_tree.c", "lib/test_maple_tree.c",
           "lib/radix-tree.c", "lib/radix-tree.h", "lib/idr.c", "lib/test_ida.c"),
    binaries=(
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
    paths=("tools/testing/vma", *_TOOLS, *_KERNEL_HEADERS,
           "lib/xarray.c", "lib/test_xarray.c", "lib/maple_tree.c", "lib/test_maple_tree.c",
           "lib/radix-tree.c", "lib/radix-tree.h", "lib/idr.c", "mm/vma.c", "mm/vma.h",
           "mm/vma_internal.h"),
    binaries=(Binary("vma", timeout=60, seconds=0.5, profiles=("quick", "full")),),
)

SUITES: tuple[Suite, ...] = (RADIX_TREE, VMA)
PROFILES = ("quick", "full")


def get_suite(name: str) -> Suite:
    for s in SUITES:
        if s.name == name:
            return s
    raise BadInput(f"--suite {name}", "unknown suite (known: " + ", ".join(s.name for s in SUITES) + ")")


def select(profile: str = "quick", suites: str | None = None,
           binaries: str | None = None) -> list[tuple[Suite, list[Binary]]]:
    """The (suite, binaries) a run covers.  An explicit --binary overrides the profile."""
    if profile not in PROFILES:
        raise BadInput(f"--profile {profile}", "must be quick or full")
    chosen = [get_suite(s.strip()) for s in suites.split(",") if s.strip()] if suites else list(SUITES)
    wanted = {b.strip() for b in binaries.split(",") if b.strip()} if binaries else None
    if wanted:
        known = {b.name for s in SUITES for b in s.binaries}
        unknown = wanted - known
        if unknown:
            raise BadInput(f"--binary {','.join(sorted(unknown))}",
                           "unknown binary (known: " + ", ".join(sorted(known)) + ")")
    out = []
    for s in chosen:
        bins = [b for b in s.binaries if (b.name in wanted if wanted else profile in b.profiles)]
        if bins:
            out.append((s, bins))
    if not out:
        raise BadInput("--binary/--suite", "select no binary")
    return out
