"""Shared fixtures: the real provisioned kernel tree and scratch clones of it.

The default tree is built once per machine (`mmreview tree init`, ~80 s) and
reused; tests never write to it.  Tests that need a tree they may change get a
clone sharing its objects.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmreview.kernel import trees as tree_mod

REPO = Path(__file__).resolve().parents[1]
SERIES = REPO / "series"
BASE_SHA = "95ba86de1f0d16a60e2fb689cf5ce4a786bad879"   # `mmreview tree init` on linux-source-6.12 6.12.117-1~deb12u1

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


@pytest.fixture(scope="session")
def kernel_tree() -> Path:
    """The provisioned default tree (bare), built on first use."""
    path, _ = tree_mod.init_default_tree()
    assert git(path, "rev-parse", "HEAD") == BASE_SHA, "the default tree is not the expected 6.12.117 import"
    return path


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
