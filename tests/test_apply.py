"""Apply: isolated work tree at the right base, per-patch states, the user's repository untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import base_sha, MMREVIEW, SERIES, git, mmreview, not_a_kernel_repo


def snapshot(repo: Path) -> dict:
    """Everything of a user's checkout that mmreview must never change."""
    gitdir = repo / ".git"
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "head_ref": git(repo, "symbolic-ref", "-q", "HEAD", check=False),
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "stash": git(repo, "stash", "list", "--format=%H %gs"),
        "index": git(repo, "ls-files", "--stage", "--debug"),
        "status": git(repo, "status", "--porcelain=v2", "--branch", "--untracked-files=all"),
        "diff": git(repo, "diff", "HEAD"),
        "config": (gitdir / "config").read_bytes(),
        "gitdir_entries": sorted(p.name for p in gitdir.iterdir() if p.name not in ("index", "logs")),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "files": {str(p.relative_to(repo)): p.read_bytes() for p in (repo / "mm").glob("vma*")},
    }


def make_dirty(repo: Path) -> None:
    """A user mid-work: a stash, a staged change, an unstaged change, an untracked file."""
    (repo / "mm" / "vma.c").write_text((repo / "mm" / "vma.c").read_text() + "/* stashed */\n")
    git(repo, "stash", "push", "-q", "-m", "user stash")
    (repo / "lib" / "maple_tree.c").write_text((repo / "lib" / "maple_tree.c").read_text() + "/* staged */\n")
    git(repo, "add", "-f", "lib/maple_tree.c")   # the Debian .gitignore ignores /*
    (repo / "mm" / "vma.h").write_text((repo / "mm" / "vma.h").read_text() + "/* unstaged */\n")
    (repo / "mm" / "untracked.txt").write_text("mine\n")


@pytest.fixture(scope="module")
def made_series(kernel_tree: Path, tmp_path_factory) -> dict[str, Path]:
    """Series written with real git: a clean 2-patch one, one whose patch 2 conflicts, and a long one."""
    work = tmp_path_factory.mktemp("series")
    src = work / "src"
    git(work, "clone", "--quiet", "--shared", "--no-checkout", str(kernel_tree), str(src))
    git(src, "sparse-checkout", "set", "mm", "lib")
    git(src, "checkout", "--quiet", "master")
    out: dict[str, Path] = {}

    def edit(path: str, old: str, new: str, msg: str) -> None:
        f = src / path
        text = f.read_text()
        assert old in text, (path, old)
        f.write_text(text.replace(old, new, 1))
        git(src, "commit", "-q", "-a", "-m", msg)

    edit("mm/vma.c", "#include \"vma_internal.h\"", "#include \"vma_internal.h\"\n/* a comment */",
         "mm/vma: add a comment")
    edit("lib/maple_tree.c", " * Maple Tree implementation", " * Maple Tree implementation.",
         "maple_tree: punctuation")
    out["clean"] = work / "clean.mbox"
    out["clean"].write_bytes(subprocess.run(
        ["git", "-C", str(src), "format-patch", "--stdout", "--cover-letter", f"--base={base_sha()}",
         "HEAD~2"], capture_output=True, check=True).stdout)

    # Patch 2 is made on top of a change the tree does not have: its context cannot match.
    git(src, "reset", "-q", "--hard", base_sha())
    edit("mm/vma.c", "#include \"vma_internal.h\"", "#include \"vma_internal.h\"\n/* one */", "mm/vma: one")
    git(src, "branch", "-f", "side")
    edit("mm/mmap.c", "#include", "/* private */\n#include", "private change")
    edit("mm/mmap.c", "/* private */", "/* private, changed */", "mm/mmap: two")
    mbox1 = subprocess.run(["git", "-C", str(src), "format-patch", "--stdout", "-1", "side"],
                           capture_output=True, check=True).stdout
    mbox2 = subprocess.run(["git", "-C", str(src), "format-patch", "--stdout", "-1", "HEAD"],
                           capture_output=True, check=True).stdout
    # Renumber as one 2-patch series.
    out["conflict"] = work / "conflict.mbox"
    out["conflict"].write_bytes(mbox1.replace(b"[PATCH]", b"[PATCH 1/2]")
                                + mbox2.replace(b"[PATCH]", b"[PATCH 2/2]"))

    git(src, "reset", "-q", "--hard", base_sha())
    for i in range(20):
        edit("mm/vma.c", "#include \"vma_internal.h\"", f"#include \"vma_internal.h\"\n/* step {i} */",
             f"mm/vma: step {i}")
    out["long"] = work / "long.mbox"
    out["long"].write_bytes(subprocess.run(
        ["git", "-C", str(src), "format-patch", "--stdout", "--cover-letter", f"--base={base_sha()}",
         "HEAD~20"], capture_output=True, check=True).stdout)
    return out


@pytest.fixture
def cache(tmp_path: Path) -> dict:
    """A private cache dir, so the work trees this test makes (and leaves) are visible to it alone."""
    return {"XDG_CACHE_HOME": str(tmp_path / "cache")}


def worktrees(env: dict) -> list[Path]:
    root = Path(env["XDG_CACHE_HOME"]) / "mmreview" / "worktrees"
    return sorted(root.iterdir()) if root.is_dir() else []


def test_clean_series_applies_and_user_checkout_is_untouched(user_clone, made_series, cache):
    make_dirty(user_clone)
    before = snapshot(user_clone)
    proc = mmreview("apply", str(made_series["clean"]), "--tree", str(user_clone), "--json", env=cache)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["apply"]["base_sha"] == base_sha()
    assert out["apply"]["base_reason"] == "the series' base-commit: line"
    assert [p["state"] for p in out["apply"]["patches"]] == ["applied", "applied"]
    commits = [p["commit"] for p in out["apply"]["patches"]]
    assert len(set(commits)) == 2 and all(commits)
    assert snapshot(user_clone) == before
    assert worktrees(cache) == []
    # The series' commits live only in the removed work tree, not in the user's repository.
    assert subprocess.run(["git", "-C", str(user_clone), "cat-file", "-e", commits[0]]).returncode != 0


def test_failed_patch_is_named_with_its_files(user_clone, made_series, cache):
    before = snapshot(user_clone)
    proc = mmreview("apply", str(made_series["conflict"]), "--tree", str(user_clone), env=cache)
    assert proc.returncode == 1, proc.stderr
    text = proc.stdout.decode()
    assert "patch 2/2 did not apply on mm/mmap.c" in text
    proc = mmreview("apply", str(made_series["conflict"]), "--tree", str(user_clone), "--json", env=cache)
    patches = json.loads(proc.stdout)["apply"]["patches"]
    assert patches[0]["state"] == "applied"
    assert patches[1]["state"] == "failed"
    assert patches[1]["conflict_files"] == ["mm/mmap.c"]
    assert patches[1]["message"]
    assert snapshot(user_clone) == before
    assert worktrees(cache) == []


def test_three_way_fallback_is_reported(user_clone, made_series, cache):
    """The user's HEAD changed a context line of patch 1: plain apply fails, 3-way merge succeeds."""
    vma = user_clone / "mm" / "vma.c"
    vma.write_text(vma.read_text().replace(" * VMA-specific functions.\n */", " * VMA-specific functions.\n **/", 1))
    git(user_clone, "commit", "-q", "-a", "-m", "user: reword mm/vma.c header")
    head = git(user_clone, "rev-parse", "HEAD")
    proc = mmreview("apply", str(made_series["clean"]), "--tree", str(user_clone), "--base", "HEAD",
                    "--json", env=cache)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)["apply"]
    assert out["base_sha"] == head and out["base_reason"] == "given with --base"
    assert [p["state"] for p in out["patches"]] == ["applied-3way", "applied"]


def test_base_commit_missing_from_tree_falls_back_to_head(user_clone, made_series, cache, tmp_path):
    text = made_series["clean"].read_bytes().replace(base_sha().encode(), b"0" * 40)
    mbox = tmp_path / "s.mbox"
    mbox.write_bytes(text)
    proc = mmreview("apply", str(mbox), "--tree", str(user_clone), "--json", env=cache)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)["apply"]
    assert out["base_rev"] == "HEAD"
    assert "000000000000 is not in the tree" in out["base_reason"]


@pytest.mark.parametrize("args, needle", [
    (["--base", "no-such-rev"], "--base no-such-rev: no such commit in "),
    (["--tree", "/nonexistent/linux"], "/nonexistent/linux: no such directory"),
])
def test_bad_base_or_tree_is_one_line(user_clone, made_series, cache, args, needle):
    if "--tree" not in args:
        args = args + ["--tree", str(user_clone)]
    before = snapshot(user_clone)
    proc = mmreview("apply", str(made_series["clean"]), *args, env=cache)
    err = proc.stderr.decode()
    assert proc.returncode == 2
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert snapshot(user_clone) == before


def test_tree_that_is_not_git_or_not_kernel(tmp_path, made_series, cache):
    plain = tmp_path / "plain"
    plain.mkdir()
    proc = mmreview("apply", str(made_series["clean"]), "--tree", str(plain), env=cache)
    assert proc.returncode == 2 and "not a git repository" in proc.stderr.decode()
    other = not_a_kernel_repo(tmp_path)
    proc = mmreview("apply", str(made_series["clean"]), "--tree", str(other), env=cache)
    assert proc.returncode == 2 and "not a kernel tree (no lib/maple_tree.c" in proc.stderr.decode()


def _interrupt(user_clone: Path, mbox: Path, cache: dict, sig: int) -> subprocess.Popen:
    """Start an apply and deliver `sig` once its work tree exists."""
    proc = subprocess.Popen([MMREVIEW, "apply", str(mbox), "--tree", str(user_clone)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **cache})
    deadline = time.monotonic() + 30
    while not worktrees(cache) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    assert proc.poll() is None, "apply finished before it could be interrupted"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_nothing_behind(user_clone, made_series, cache, sig):
    make_dirty(user_clone)
    before = snapshot(user_clone)
    proc = _interrupt(user_clone, made_series["long"], cache, sig)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr.read().decode()
    assert worktrees(cache) == []
    assert snapshot(user_clone) == before


def test_killed_run_is_cleaned_up_by_the_next(user_clone, made_series, cache):
    before = snapshot(user_clone)
    _interrupt(user_clone, made_series["long"], cache, signal.SIGKILL)
    stale = worktrees(cache)
    assert len(stale) == 1, "SIGKILL cannot clean up: the work tree must still be there"
    proc = mmreview("apply", str(made_series["clean"]), "--tree", str(user_clone), env=cache)
    assert proc.returncode == 0, proc.stderr
    assert worktrees(cache) == []
    assert snapshot(user_clone) == before


def test_keep_leaves_the_applied_work_tree(user_clone, made_series, cache):
    proc = mmreview("apply", str(made_series["clean"]), "--tree", str(user_clone), "--keep", "--json",
                    env=cache)
    assert proc.returncode == 0, proc.stderr
    kept = Path(json.loads(proc.stdout)["worktree"])
    assert kept.is_dir()
    assert "/* a comment */" in (kept / "mm" / "vma.c").read_text()
    assert git(kept, "log", "--format=%s", "-2").splitlines() == ["maple_tree: punctuation",
                                                                   "mm/vma: add a comment"]
    # A later run does not take a kept work tree for a stale one.
    mmreview("apply", str(made_series["clean"]), "--tree", str(user_clone), env=cache)
    assert kept.is_dir()


def test_bundled_series_on_the_default_tree(kernel_tree, cache):
    """The demo series applies on the provisioned tree; the one built not to, stops at patch 2."""
    env = dict(cache)
    proc = mmreview("apply", str(SERIES / "clean-3.mbox"), "--tree", str(kernel_tree), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["apply"]["base_sha"] == base_sha()
    assert [p["state"] for p in out["apply"]["patches"]] == ["applied"] * 3
    proc = mmreview("apply", str(SERIES / "no-apply.mbox"), "--tree", str(kernel_tree), "--json", env=env)
    assert proc.returncode == 1
    patches = json.loads(proc.stdout)["apply"]["patches"]
    assert [p["state"] for p in patches] == ["applied", "failed", "not-attempted"]
    assert patches[1]["conflict_files"]
