"""mmreview's cache and every directory in it, each named once.

~/.cache/mmreview/            ($XDG_CACHE_HOME/mmreview)
    trees/linux-X.Y.git       the kernel trees (kernel/trees.py)
    apt/<package>/            a linux-source .deb fetched for a kernel (kernel/trees.py)
    worktrees/                a series applied, one worktree per review (apply/checkout.py)
    results/<key>/            the matrix's result cache (matrix/run.py)
    matrix-work/              build directories of running reviews (matrix/, a cluster worker's too)
    ccache/, ccache-nobody/   the compiler cache; the second for builds confined as nobody
    toolchains/riscv64/       liburcu built for riscv64 (matrix/riscv_urcu.py)
    reviews/                  every `check`'s saved Review (cli/check.py)
    cluster/exports/          a cluster worker's revisions; cluster/dask/ its Dask spill files
    rules/grep-<commit>.json  where the tree at a base defines each name the rules met (rules/definitions.py)
    lore/                     threads fetched by Message-ID, by id and content (intake/lore.py)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from mmreview.common.errors import InfraError


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/mmreview, else ~/.cache/mmreview.  A relative XDG_CACHE_HOME is ignored
    (the XDG spec says so: it would put the cache wherever the command ran)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.expanduser("~/.cache")
        if not os.path.isabs(base):     # no $HOME and no passwd entry: "~" stays as it is
            raise InfraError("$HOME", "not set, and the user has no home directory: set HOME or "
                                      "XDG_CACHE_HOME to where mmreview may keep its cache")
    return Path(base) / "mmreview"


def _in_cache(name: str) -> Callable[[], Path]:
    def path() -> Path:
        return cache_dir() / name
    return path


trees_dir = _in_cache("trees")
worktrees_dir = _in_cache("worktrees")
results_dir = _in_cache("results")
work_root = _in_cache("matrix-work")
toolchains_dir = _in_cache("toolchains")
reviews_dir = _in_cache("reviews")
cluster_dir = _in_cache("cluster")
rules_dir = _in_cache("rules")
lore_dir = _in_cache("lore")


def apt_dir(package: str) -> Path:
    return cache_dir() / "apt" / package


def ccache_dir(as_nobody: bool = False) -> Path:
    return cache_dir() / ("ccache-nobody" if as_nobody else "ccache")
