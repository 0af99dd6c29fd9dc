"""The default tree: where it is, importing a linux-source tarball into git, once, under a lock.

The full 6.12.y import is exercised by the session fixture `kernel_tree` (conftest), whatever
patch level Debian served; that its id is a function of the tarball is checked here.  These tests import a small tarball cut from
that tree (MMREVIEW_LINUX_TARBALL), so they can run the import several times in seconds.
"""

from __future__ import annotations

import json
import lzma
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import base_sha, MMREVIEW, git, mmreview
from mmreview.kernel import trees as tree_mod

PICK = ["Makefile", "lib/maple_tree.c", "mm/vma.c", "scripts/checkpatch.pl", "Documentation/Changes",
        ".gitignore"]


@pytest.fixture(scope="module")
def small_tarball(kernel_tree: Path, tmp_path_factory) -> Path:
    """linux-source-6.12/ with a few real files: a regular file, an executable, a symlink, the
    .gitignore that ignores everything at the top level."""
    out = tmp_path_factory.mktemp("tarball") / "linux-source-6.12.tar.xz"
    tar = subprocess.run(["git", "-C", str(kernel_tree), "archive", "--format=tar",
                          "--prefix=linux-source-6.12/", base_sha(), *PICK],
                         capture_output=True, check=True).stdout
    out.write_bytes(lzma.compress(tar))
    return out


def env_for(tmp_path: Path, tarball: Path | None) -> dict:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    if tarball:
        env["MMREVIEW_LINUX_TARBALL"] = str(tarball)
    return env


def test_tree_path_prints_the_path_last(tmp_path):
    proc = mmreview("tree", "path", env=env_for(tmp_path, None))
    assert proc.returncode == 0
    assert proc.stdout.decode().splitlines()[-1] == str(tmp_path / "cache/mmreview/trees/linux-6.12.git")
    assert "not provisioned" in proc.stderr.decode()


def test_import_keeps_content_modes_and_links(tmp_path, small_tarball, kernel_tree):
    proc = mmreview("tree", "init", env=env_for(tmp_path, small_tarball))
    assert proc.returncode == 0, proc.stderr
    repo = Path(proc.stdout.decode().splitlines()[-1])
    release = git(kernel_tree, "log", "-1", "--format=%s")          # the tarball's Makefile's
    assert git(repo, "log", "--format=%s").splitlines() == [release]
    assert git(repo, "tag") == "v" + release.removeprefix("Linux ")
    ours = git(repo, "ls-tree", "-r", "HEAD")
    theirs = git(kernel_tree, "ls-tree", "-r", base_sha(), "--", *PICK)
    assert ours == theirs          # same blobs, same modes (100755, 120000), nothing left out
    # The commit is a function of the tarball alone: a second import elsewhere gets the same id.
    other = tmp_path / "again"
    proc2 = mmreview("tree", "init", env=env_for(other, small_tarball))
    assert Path(proc2.stdout.decode().splitlines()[-1]) != repo
    assert git(Path(proc2.stdout.decode().splitlines()[-1]), "rev-parse", "HEAD") == git(repo, "rev-parse", "HEAD")


def test_init_is_idempotent_and_safe_to_run_twice_at_once(tmp_path, small_tarball):
    env = {**os.environ, **env_for(tmp_path, small_tarball)}
    procs = [subprocess.Popen([MMREVIEW, "tree", "init"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env) for _ in range(2)]
    outs = [(p.wait(timeout=300), p.stdout.read().decode(), p.stderr.read().decode()) for p in procs]
    assert [rc for rc, _, _ in outs] == [0, 0], outs
    paths = {out.splitlines()[-1] for _, out, _ in outs}
    assert len(paths) == 1
    said = sorted("created" if "created" in err else "already" for _, _, err in outs)
    assert said == ["already", "created"], outs      # one imported, the other waited and found it
    repo = Path(paths.pop())
    head = git(repo, "rev-parse", "HEAD")
    assert git(repo, "rev-list", "--count", "--all") == "1"
    assert not list(repo.parent.glob(".linux-6.12.git.tmp-*"))
    proc = mmreview("tree", "init", env=env_for(tmp_path, small_tarball))
    assert proc.returncode == 0 and "already provisioned" in proc.stderr.decode()
    assert git(repo, "rev-parse", "HEAD") == head


def test_missing_tarball_is_one_line_and_exit_3(tmp_path):
    proc = mmreview("tree", "init", env=env_for(tmp_path, tmp_path / "nope.tar.xz"))
    err = proc.stderr.decode()
    assert proc.returncode == 3
    assert err.strip().splitlines() == [f"mmreview: error: MMREVIEW_LINUX_TARBALL={tmp_path}/nope.tar.xz: no such file"]
    assert not (tmp_path / "cache/mmreview/trees/linux-6.12.git").exists()


@pytest.fixture(scope="module")
def tarball_66(kernel_tree: Path, tmp_path_factory) -> Path:
    """A small tarball whose Makefile says 6.6: not a kernel mmreview fetches, any other kernel."""
    import io
    import tarfile
    out = tmp_path_factory.mktemp("tarball66") / "linux-6.6.5.tar.xz"
    makefile = git(kernel_tree, "show", f"{base_sha()}:Makefile").replace(
        "PATCHLEVEL = 12", "PATCHLEVEL = 6", 1)
    makefile = re.sub(r"^SUBLEVEL = \d+$", "SUBLEVEL = 5", makefile, count=1, flags=re.M).encode()
    maple = subprocess.run(["git", "-C", str(kernel_tree), "show", f"{base_sha()}:lib/maple_tree.c"],
                           capture_output=True, check=True).stdout
    with tarfile.open(out, "w:xz") as tf:
        for name, data in (("Makefile", makefile), ("lib/maple_tree.c", maple)):
            info = tarfile.TarInfo(f"linux-6.6.5/{name}")
            info.size, info.mtime, info.mode = len(data), 1700000000, 0o644
            tf.addfile(info, io.BytesIO(data))
    return out


def test_tarball_lands_in_the_tree_its_makefile_names(tmp_path, tarball_66, monkeypatch):
    env = env_for(tmp_path, None)
    proc = mmreview("tree", "init", "--tarball", str(tarball_66), env=env)
    assert proc.returncode == 0, proc.stderr
    repo = Path(proc.stdout.decode().splitlines()[-1])
    assert repo == tmp_path / "cache/mmreview/trees/linux-6.6.git"
    assert "kernel 6.6 tree created" in proc.stderr.decode()
    assert git(repo, "log", "--format=%B").strip() == "Linux 6.6.5\n\nImported by mmreview from linux-6.6.5.tar.xz."
    assert git(repo, "tag") == "v6.6.5"
    assert not (tmp_path / "cache/mmreview/trees/linux-6.12.git").exists()
    # Again: a no-op.  `tree list` shows it; `--tree 6.6` opens it.
    proc = mmreview("tree", "init", "--tarball", str(tarball_66), env=env)
    assert proc.returncode == 0 and "already provisioned" in proc.stderr.decode()
    rows = json.loads(mmreview("tree", "list", "--json", env=env).stdout)
    row = next(r for r in rows if r["kernel"] == "6.6")
    assert row["provisioned"] and not row["known"] and row["release"] == "6.6.5"
    monkeypatch.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])
    assert tree_mod.open_tree("6.6").path == repo
    proc = mmreview("tree", "path", "--kernel", "6.6", env=env)
    assert proc.stdout.decode().splitlines()[-1] == str(repo) and proc.returncode == 0


def test_the_environment_tarball_lands_by_its_release_too(tmp_path, tarball_66):
    # MMREVIEW_LINUX_TARBALL used to import anything into linux-6.12.git.
    proc = mmreview("tree", "init", env=env_for(tmp_path, tarball_66))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines()[-1] == str(tmp_path / "cache/mmreview/trees/linux-6.6.git")
    assert not (tmp_path / "cache/mmreview/trees/linux-6.12.git").exists()


def test_tarball_errors_are_one_line_exit_2(tmp_path):
    env = env_for(tmp_path, None)
    proc = mmreview("tree", "init", "--tarball", str(tmp_path / "nope.tar.xz"), env=env)
    assert proc.returncode == 2
    assert proc.stderr.decode().strip().splitlines() == [f"mmreview: error: {tmp_path}/nope.tar.xz: no such file"]
    junk = tmp_path / "junk.tar.xz"
    junk.write_bytes(lzma.compress(b"not a tarball"))
    proc = mmreview("tree", "init", "--tarball", str(junk), env=env)
    assert proc.returncode == 2 and len(proc.stderr.decode().strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.decode().startswith(f"mmreview: error: {junk}: ")
    proc = mmreview("tree", "init", "--tarball", str(junk), "--kernel", "7.3", env=env)
    assert proc.returncode == 2 and len(proc.stderr.decode().strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "cache/mmreview/trees").exists() or not list((tmp_path / "cache/mmreview/trees").glob("linux-*"))
