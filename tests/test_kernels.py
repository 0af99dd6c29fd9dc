"""Other kernels one command away: `tree init --kernel V`, `tree list`, `--tree V`.

Real apt (a private configuration under the cache, fetching from Debian), real git.  The 7.3 tree
comes from the session fixture `tree_73` (conftest), provisioned once per machine like the default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import git, mmreview
from mmreview.kernel import table as kernels
from mmreview.common.errors import InfraError
from mmreview.kernel import trees as tree_mod

KNOWN = "known kernels: 6.1, 6.12 (default), 7.2, 7.3"


def makefile_vars(repo: Path) -> dict[str, str]:
    head = git(repo, "show", "HEAD:Makefile").splitlines()[:6]
    return {k.strip(): v.strip() for k, eq, v in (line.partition("=") for line in head) if eq}


def one_line_error(proc) -> str:
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_init_kernel_73_imports_debians_7_3(tree_73: Path):
    assert tree_73 == tree_mod.tree_path("7.3")
    assert tree_73.name == "linux-7.3.git"
    assert git(tree_73, "cat-file", "-t", "HEAD:lib/maple_tree.c") == "blob"
    mk = makefile_vars(tree_73)
    assert (mk["VERSION"], mk["PATCHLEVEL"]) == ("7", "3")
    subject, body = git(tree_73, "log", "-1", "--format=%s%n%b").split("\n", 1)
    assert subject == f"Linux 7.3.{mk['SUBLEVEL']}"
    assert git(tree_73, "tag") == f"v7.3.{mk['SUBLEVEL']}"
    # The Debian version is recorded, with the path the package installs (not our cache's).
    assert "Imported by mmreview from Debian linux-source-7.3 7.3." in body
    assert "(/usr/src/linux-source-7.3.tar.xz)" in body
    assert git(tree_73, "rev-list", "--count", "--all") == "1"
    # Each kernel apart; nothing half-made or downloaded left behind.
    assert not list(tree_73.parent.glob(".linux-7.3.git.tmp-*"))
    download = tree_mod.cache_dir() / "apt" / "linux-source-7.3" / "download"
    assert not list(download.glob("*.deb"))


def test_second_init_is_a_fast_noop(tree_73: Path):
    head = git(tree_73, "rev-parse", "HEAD")
    start = time.monotonic()
    proc = mmreview("tree", "init", "--kernel", "7.3")
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.decode().splitlines()[-1]) == tree_73
    err = proc.stderr.decode()
    assert "kernel 7.3 tree already provisioned" in err and head[:12] in err, err
    assert "apt-get" not in err          # no network when it is there
    assert took < 15, took
    assert git(tree_73, "rev-parse", "HEAD") == head


def test_tree_list_and_path(tree_73: Path):
    proc = mmreview("tree", "list")
    assert proc.returncode == 0, proc.stderr
    lines = {ln.split()[0]: ln for ln in proc.stdout.decode().splitlines()}
    assert set(kernels.KERNELS) <= set(lines)
    head = git(tree_73, "rev-parse", "HEAD")
    release = git(tree_73, "log", "-1", "--format=%s")[len("Linux "):]
    version = tree_mod.debian_version(tree_73)
    assert version and version.startswith(release)
    assert lines["7.3"].split()[:4] == ["7.3", "provisioned", version, head[:12]]
    assert lines["7.3"].split()[4] == str(tree_73)
    assert "(default" in lines["6.12"]

    rows = json.loads(mmreview("tree", "list", "--json").stdout)
    row = next(r for r in rows if r["kernel"] == "7.3")
    assert row["provisioned"] and row["commit"] == head and row["release"] == release
    assert row["package"] == "linux-source-7.3" and row["debian_version"].startswith("7.3.")
    assert row["path"] == str(tree_73) and row["source"] == "trixie-backports"

    proc = mmreview("tree", "path", "--kernel", "7.3")
    assert proc.returncode == 0 and proc.stdout.decode().splitlines()[-1] == str(tree_73)
    assert proc.stderr.decode() == ""


def test_tree_73_works_for_series_and_apply(tree_73: Path, tmp_path: Path):
    # A one-patch series made against 7.3 in a scratch clone (objects shared, sparse checkout).
    clone = tmp_path / "linux"
    git(tmp_path, "clone", "--quiet", "--shared", "--no-checkout", str(tree_73), str(clone))
    git(clone, "sparse-checkout", "set", "lib")
    git(clone, "checkout", "--quiet", "master")
    src = clone / "lib" / "maple_tree.c"
    src.write_text(src.read_text().replace("\n", "\n/* mmreview: a 7.3 test edit */\n", 1))
    git(clone, "commit", "--quiet", "-am", "maple_tree: a comment\n\nA test patch.\n\nSigned-off-by: Test Author <test@example.org>")
    base = git(tree_73, "rev-parse", "HEAD")
    mbox = tmp_path / "one.mbox"
    mbox.write_text(git(clone, "format-patch", "-1", "--stdout", f"--base={base}") + "\n")

    proc = mmreview("series", str(mbox), "--tree", "7.3", "--json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert len(s["patches"]) == 1 and s["base_commit"] == base

    proc = mmreview("apply", str(mbox), "--tree", "7.3", "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)["apply"]
    assert res["ok"] and res["base_sha"] == base
    assert res["base_reason"] == "the series' base-commit: line"
    assert [p["state"] for p in res["patches"]] == ["applied"]


def test_unknown_kernel_is_one_line_exit_2(tmp_path: Path):
    mbox = Path(__file__).resolve().parents[1] / "series" / "clean-3.mbox"
    proc = mmreview("series", str(mbox), "--tree", "9.9")
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert line.startswith("mmreview: error: 9.9: no such directory") and "6.1, 6.12 (default), 7.2, 7.3" in line

    proc = mmreview("tree", "init", "--kernel", "9.9", env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert proc.returncode == 2
    assert one_line_error(proc) == f"mmreview: error: kernel 9.9: unknown; {KNOWN}"
    assert not (tmp_path / "cache" / "mmreview" / "trees" / "linux-9.9.git").exists()


def test_known_but_not_provisioned_kernel_says_how(tmp_path: Path):
    mbox = Path(__file__).resolve().parents[1] / "series" / "clean-3.mbox"
    proc = mmreview("apply", str(mbox), "--tree", "7.2", env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert proc.returncode == 2
    assert one_line_error(proc) == ("mmreview: error: kernel 7.2 is not provisioned: "
                                    "run `mmreview tree init --kernel 7.2`")


def test_a_real_path_wins_over_a_kernel_name(kernel_tree: Path, tree_73: Path, tmp_path: Path,
                                             monkeypatch):
    # A directory named "7.3" in the current directory is what --tree 7.3 means there.
    git(tmp_path, "clone", "--quiet", "--shared", "--bare", str(kernel_tree), str(tmp_path / "7.3"))
    monkeypatch.chdir(tmp_path)
    t = tree_mod.open_tree("7.3")
    assert t.path == (tmp_path / "7.3").resolve()
    assert t.head == git(kernel_tree, "rev-parse", "HEAD")
    monkeypatch.chdir(tmp_path / "7.3")
    assert tree_mod.open_tree("7.3").path == tree_73.resolve()


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, files in os.walk(root):
        for name in sorted(dirnames + files):
            p = Path(dirpath) / name
            if p.is_symlink():
                out[str(p)] = "-> " + os.readlink(p)
            elif p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[str(p)] = "dir"
    return out


def test_fetch_uses_a_private_apt_and_leaves_the_systems_alone(tmp_path: Path):
    """The part of provisioning that runs apt, for real (update, download, verification), into a
    scratch directory: the system's /etc/apt is byte for byte the same afterwards, and neither its
    package lists nor its archives get the suite or the package."""
    before = _snapshot(Path("/etc/apt"))
    base = tmp_path / "apt"
    # A verified version the archive no longer serves (as 6.12.117 will be one day): the newest
    # is taken, and the note says so.
    gone = dataclasses.replace(kernels.get("7.3"), verified="7.3.0-0~gone1")
    deb = kernels.fetch_deb(gone, base)
    served = kernels.served_versions(gone, base, refresh=False)
    assert deb.version == served[0]
    assert deb.note == (f"Debian no longer serves linux-source-7.3 7.3.0-0~gone1, the version "
                        f"mmreview was verified on; taking {served[0]}, the newest it serves")
    assert _snapshot(Path("/etc/apt")) == before
    assert deb.path.parent == base / "download" and deb.path.stat().st_size > 100_000_000
    assert deb.package == "linux-source-7.3" and deb.version.startswith("7.3.")
    assert (base / "sources.list").read_text() == (
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://deb.debian.org/debian trixie-backports main\n")
    assert list((base / "lists").glob("*trixie-backports_InRelease"))
    assert not list(Path("/var/lib/apt/lists").glob("*trixie-backports*"))
    assert not list(Path("/var/cache/apt/archives").glob("linux-source-7.3_*"))
    # Only the tarball is read out of the .deb, streamed.
    with kernels.tarball_in_deb(deb.path, "/usr/src/linux-source-7.3.tar.xz") as (fh, size):
        assert fh.read(6) == b"\xfd7zXZ\x00" and size > 100_000_000


def test_the_verified_version_is_chosen_while_debian_serves_it():
    k = kernels.get("6.12")
    assert k.verified and k.suites        # the default comes through the private apt too
    served = ["6.12.118-1~deb12u1", k.verified, "6.12.115-2~deb12u1"]
    assert kernels.choose_version(k, served) == (k.verified, "")
    assert kernels.choose_version(k, served, newest=True) == ("6.12.118-1~deb12u1", "")
    version, note = kernels.choose_version(k, ["6.12.119-1~deb12u1"])
    assert version == "6.12.119-1~deb12u1" and k.verified in note
    with pytest.raises(InfraError, match="linux-source-6.12"):
        kernels.choose_version(k, [])


def test_tree_list_says_the_version_and_what_debian_serves(kernel_tree: Path):
    """`tree list` reads the private apt lists the import left (no network): the provisioned
    Debian version, the verified one, and whether Debian serves a newer one."""
    proc = mmreview("tree", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    row = next(r for r in json.loads(proc.stdout) if r["kernel"] == "6.12")
    assert row["default"] and row["verified"] == kernels.get("6.12").verified
    assert row["debian_version"] == git(kernel_tree, "log", "-1", "--format=%b").split()[6]
    assert row["served"] and row["newer"] in (None, row["served"][0])
    assert (row["newer"] is None) == (row["served"][0] == row["debian_version"])
    text = mmreview("tree", "list").stdout.decode()
    line = next(ln for ln in text.splitlines() if ln.startswith("6.12 "))
    assert row["debian_version"] in line and "default" in line
    assert ("Debian now serves" in line) == (row["newer"] is not None)


@pytest.mark.slow
def test_from_nothing_gives_the_same_commit(tree_73: Path, tmp_path: Path):
    """A fresh cache: fetch + import again, and the commit id is the one the fixture's tree has
    (it is a function of Debian's package alone, not of the machine or the cache's path)."""
    cache = tmp_path / "cache"
    proc = mmreview("tree", "init", "--kernel", "7.3", env={"XDG_CACHE_HOME": str(cache)})
    assert proc.returncode == 0, proc.stderr
    assert "kernel 7.3 tree created" in proc.stderr.decode()
    repo = Path(proc.stdout.decode().splitlines()[-1])
    assert repo == cache / "mmreview" / "trees" / "linux-7.3.git"
    recorded = [git(r, "log", "-1", "--format=%b") for r in (repo, tree_73)]
    if recorded[0] == recorded[1]:          # the same Debian package version (it may have moved on)
        assert git(repo, "rev-parse", "HEAD") == git(tree_73, "rev-parse", "HEAD")
    assert not list((cache / "mmreview" / "apt" / "linux-source-7.3" / "download").iterdir())


def test_init_kernel_61_comes_from_bookworm_security(tree_61: Path):
    mk = makefile_vars(tree_61)
    assert (mk["VERSION"], mk["PATCHLEVEL"]) == ("6", "1")
    assert git(tree_61, "cat-file", "-t", "HEAD:lib/maple_tree.c") == "blob"
    assert "Imported by mmreview from Debian linux-source-6.1 6.1." in git(tree_61, "log", "-1", "--format=%b")
    assert tree_61 == tree_mod.tree_path("6.1") != tree_mod.default_tree_path()


def test_apt_failure_is_one_line_naming_the_step(tmp_path: Path):
    # Real apt, with the network out of reach (a proxy on a closed port): update fails, and says so.
    if "Proxy" in subprocess.run(["apt-config", "dump", "Acquire"], capture_output=True, text=True).stdout:
        pytest.skip("apt is configured with a proxy, which the environment's http_proxy does not override")
    cache = tmp_path / "cache"
    proc = mmreview("tree", "init", "--kernel", "6.1",
                    env={"XDG_CACHE_HOME": str(cache), "http_proxy": "http://127.0.0.1:9"})
    assert proc.returncode == 3, proc.stderr
    err = [ln for ln in proc.stderr.decode().splitlines() if ln.startswith("mmreview: error:")]
    assert len(err) == 1 and proc.stderr.decode().strip().splitlines()[-1] == err[0]
    assert err[0].startswith("mmreview: error: linux-source-6.1: apt-get update (bookworm-security, bookworm) "
                             "failed (after 3 attempts): Failed to fetch http://deb.debian.org/"), err
    assert not list((cache / "mmreview" / "trees").glob("*linux-6.1.git*tmp*"))
    assert not (cache / "mmreview" / "trees" / "linux-6.1.git").exists()
