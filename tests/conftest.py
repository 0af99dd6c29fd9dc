"""Shared fixtures: the real provisioned kernel tree and scratch clones of it.

The default tree is built once per machine (`mmreview tree init`, ~80 s) and
reused; tests never write to it.  Tests that need a tree they may change get a
clone sharing its objects.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmreview.kernel import trees as tree_mod
from publicinbox import public_inbox, public_inbox_factory  # noqa: F401  (fixtures: a real public-inbox on 127.0.0.1)

REPO = Path(__file__).resolve().parents[1]
SERIES = REPO / "series"

# The CLI as this environment provides it: the entry point installed next to the Python running
# the tests (the venv's), never whatever `mmreview` a developer's shell happens to have on PATH.
BIN = Path(sys.executable).parent
MMREVIEW = str(BIN / "mmreview")
# For tools that run mmreview by name (b4's per-patch check command): the venv activated.
VENV_PATH = {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

GIT_ID = {"GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "test@example.org",
          "GIT_COMMITTER_NAME": "Test Author", "GIT_COMMITTER_EMAIL": "test@example.org"}


def git(repo: Path | str, *args: str, input: bytes | None = None, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], input=input, capture_output=True,
                          env={**os.environ, **GIT_ID, "LC_ALL": "C"})
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.decode()}")
    return proc.stdout.decode().strip()


def mmreview(*args: str, input: bytes | None = None, env: dict | None = None,
             timeout: float = 3600) -> subprocess.CompletedProcess:
    """Run the real CLI as a user would."""
    return subprocess.run([MMREVIEW, *args], input=input, capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=REPO)


def not_a_kernel_repo(d: Path) -> Path:
    """A git repository with one commit and no kernel in it."""
    repo = d / "not-a-kernel"
    repo.mkdir()
    git(repo, "init", "--quiet")
    (repo / "README").write_text("no maple tree here\n")
    git(repo, "add", "README")
    git(repo, "commit", "--quiet", "-m", "init")
    return repo


@functools.cache
def default_tree() -> Path:
    """The provisioned default tree (bare), built on first use: whichever 6.12.y Debian served
    (the version mmreview was verified on while the archive has it; tests assume no patch level)."""
    path, _ = tree_mod.init_default_tree()
    subject = git(path, "log", "-1", "--format=%s")
    assert re.fullmatch(r"Linux 6\.12\.\d+", subject), f"the default tree is not a 6.12.y import: {subject}"
    return path


def base_sha() -> str:
    """The default tree's commit: the base a series made on it names (read, never assumed)."""
    return git(default_tree(), "rev-parse", "HEAD")


@pytest.fixture(scope="session")
def kernel_tree() -> Path:
    """The provisioned default tree (bare), built on first use."""
    return default_tree()


@pytest.fixture(scope="session")
def shared_clone(kernel_tree: Path, tmp_path_factory) -> Path:
    """A full checkout of the kernel (objects shared), for tests that only read it."""
    dest = tmp_path_factory.mktemp("kernel") / "linux"
    git(dest.parent, "clone", "--quiet", "--shared", str(kernel_tree), str(dest))
    return dest


@pytest.fixture
def user_clone(kernel_tree: Path, tmp_path: Path) -> Path:
    """A kernel checkout the test may change, as a user's would be (no working-tree checkout of
    90k files: sparse, so it is quick; git treats it as a normal repository)."""
    dest = tmp_path / "linux"
    git(tmp_path, "clone", "--quiet", "--shared", "--no-checkout", str(kernel_tree), str(dest))
    git(dest, "sparse-checkout", "set", "mm", "lib", "tools/testing/radix-tree")
    git(dest, "checkout", "--quiet", "master")
    return dest


# ---------------------------------------------------------------- other kernels (tree init --kernel V)
# Provisioned once per machine under $XDG_CACHE_HOME like the default (the first use fetches the
# Debian package, a few seconds here, and imports it, 60-120 s); tests never write to them.

@pytest.fixture(scope="session")
def provisioned_tree():
    """A factory: provisioned_tree("7.3") -> the bare repo of that kernel (see mmreview/kernel/table.py)."""
    done: dict[str, Path] = {}

    def provision(version: str) -> Path:
        if version not in done:
            done[version], _ = tree_mod.init_kernel(version)
        return done[version]
    return provision


@pytest.fixture(scope="session")
def tree_61(provisioned_tree) -> Path:
    """Debian's linux-source-6.1 (bookworm-security) as a bare repo."""
    return provisioned_tree("6.1")


@pytest.fixture(scope="session")
def tree_73(provisioned_tree) -> Path:
    """Debian's linux-source-7.3 (trixie-backports) as a bare repo."""
    return provisioned_tree("7.3")


@pytest.fixture(scope="session")
def tree_612(kernel_tree: Path) -> Path:
    """The default tree (6.12) under the same naming as tree_61 / tree_73."""
    return kernel_tree


# ---------------------------------------------------------------- states a test needs, made by the test
# A test about a tree whose suite fails at the base does not count on one Debian version having
# that bug: it makes the state in a clone of its own, one commit on the import, so it means the
# same on 6.12.117, 6.12.118 and the next (the commit is empty while the bug is still there).

def _clone_with(tree: Path, dest: Path, dirs: list[str], path: str, pattern: str, subject: str,
                needs: tuple[str, str]) -> Path:
    """A clone of `tree` (objects shared, sparse) with one commit taking `pattern` out of `path`,
    after checking that `needs` (file, text) still holds: the state means what the test says."""
    git(dest.parent, "clone", "--quiet", "--shared", "--no-checkout", str(tree), str(dest))
    git(dest, "sparse-checkout", "set", "--no-cone", *(f"/{d}/" for d in dirs))
    git(dest, "checkout", "--quiet", "master")
    assert needs[1] in (dest / needs[0]).read_text(), f"{tree}: {needs[0]} no longer has {needs[1]!r}"
    f = dest / path
    f.write_text(re.sub(pattern, "\n", f.read_text(), flags=re.S))
    git(dest, "commit", "--quiet", "--allow-empty", "-a", "-m", subject)
    return dest


@pytest.fixture(scope="session")
def vma_unlinked(kernel_tree: Path, tmp_path_factory) -> Path:
    """The default tree with a vma suite that does not link: mm/vma.c calls vma_close(), and
    tools/testing/vma/vma_internal.h has none (as 6.12.117 and .118 ship it; a later 6.12.y
    that adds one has it taken out here)."""
    return _clone_with(kernel_tree, tmp_path_factory.mktemp("vma-unlinked") / "linux",
                       ["mm", "tools/testing/vma"], "tools/testing/vma/vma_internal.h",
                       r"\n(?:/\*[^\n]*\*/\n)?static inline void vma_close\(struct vm_area_struct \*vma\)"
                       r"\n\{\n.*?\n\}\n",
                       "tests: the vma harness without vma_close()", ("mm/vma.c", "vma_close(vma)"))


@pytest.fixture(scope="session")
def radix_tree_unbuilt_61(tree_61: Path, tmp_path_factory) -> Path:
    """6.1 with a radix-tree suite that does not build: lib/maple_tree.c uses `fallthrough`, and
    tools/include does not define it (as 6.1.192 ships it; a define a later 6.1.y adds to
    tools/include/linux/compiler.h is taken out here)."""
    return _clone_with(tree_61, tmp_path_factory.mktemp("radix-unbuilt") / "linux",
                       ["lib", "tools/include"], "tools/include/linux/compiler.h",
                       r"\n(?:#ifndef fallthrough\n)?# *define fallthrough[^\n]*\n(?:#endif\n)?",
                       "tests: tools/include without fallthrough", ("lib/maple_tree.c", "fallthrough;"))
