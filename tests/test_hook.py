"""The pre-push hook, for real: a clone of the provisioned tree pushing to a local bare remote."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import base_sha, BIN, MMREVIEW, VENV_PATH, git, mmreview
from mmreview.review.prepush import CHAINED, MARKER, push_ranges


@pytest.fixture
def pushing_clone(kernel_tree: Path, tmp_path: Path) -> Path:
    """A sparse clone of the kernel (objects shared) with a local bare remote `pushto`."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "--quiet", "--bare", "--shared", str(kernel_tree), str(remote))
    dest = tmp_path / "linux"
    git(tmp_path, "clone", "--quiet", "--shared", "--no-checkout", str(kernel_tree), str(dest))
    git(dest, "sparse-checkout", "set", "mm", "lib", "kernel", "tools/testing/radix-tree")
    git(dest, "checkout", "--quiet", "master")
    git(dest, "remote", "add", "pushto", str(remote))
    git(dest, "fetch", "--quiet", "pushto")
    return dest


def commit_edit(repo: Path, path: str, old: str, new: str, subject: str, body: str) -> str:
    f = repo / path
    text = f.read_text()
    assert old in text
    f.write_text(text.replace(old, new, 1))
    git(repo, "commit", "--quiet", "-a", "-m", subject, "-m", body,
        "-m", "Signed-off-by: Test Author <test@example.org>")
    return git(repo, "rev-parse", "HEAD")


def push(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MMREVIEW_SKIP"}
    return subprocess.run(["git", "-C", str(repo), "push", "pushto", *args], capture_output=True,
                          text=True, env={**env, "LC_ALL": "C"}, timeout=600)


def remote_branches(repo: Path) -> str:
    return git(repo.parent / "remote.git", "branch", "--list")


XA_ZERO = ("static void vma_complete(struct vma_prepare *vp, struct vma_iterator *vmi,\n"
           "\t\t\t struct mm_struct *mm)\n{\n")


def test_rule_breaking_commit_is_blocked_clean_one_goes_through(pushing_clone):
    repo = pushing_clone
    inst = mmreview("hook", "install", "--tree", str(repo))
    assert inst.returncode == 0, inst.stderr
    hook = repo / ".git" / "hooks" / "pre-push"
    assert MARKER in hook.read_text() and os.access(hook, os.X_OK)

    git(repo, "checkout", "--quiet", "-b", "topic")
    commit_edit(repo, "mm/vma.c", XA_ZERO,
                XA_ZERO + "\tif (vp->remove && vp->remove2)\n\t\tmas_store(&vmi->mas, XA_ZERO_ENTRY);\n",
                "mm/vma: mark removed ranges with XA_ZERO_ENTRY",
                "Leave a marker in the tree so that the exit path knows where to stop.")
    blocked = push(repo, "topic")
    assert blocked.returncode != 0
    assert "xa-zero-marker" in blocked.stderr and "push blocked" in blocked.stderr
    assert "FINDINGS" in blocked.stderr
    assert "topic" not in remote_branches(repo)

    git(repo, "checkout", "--quiet", "master")
    git(repo, "checkout", "--quiet", "-b", "clean")
    commit_edit(repo, "mm/vma.c", " * vma_complete- Helper function", " * vma_complete() - Helper function",
                "mm/vma: fix the kernel-doc name of vma_complete()",
                "The kernel-doc header names the function without its parentheses.")
    ok = push(repo, "clean")
    assert ok.returncode == 0, ok.stderr
    assert "CLEAN" in ok.stderr
    assert "clean" in remote_branches(repo)

    # A fast-forward push reviews remote..local only: the one new commit.
    commit_edit(repo, "mm/vma.c", " * or for inserting a VMA.", " * or for inserting a vma.",
                "mm/vma: lower-case vma in the vma_complete() comment", "Consistency.")
    ff = push(repo, "clean")
    assert ff.returncode == 0, ff.stderr
    assert "(v1, 1 patch)" in ff.stderr and "lower-case vma" in ff.stderr


def test_existing_hook_is_chained_and_restored(pushing_clone):
    repo = pushing_clone
    hooks = repo / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    theirs = "#!/bin/sh\ncat > \"$(dirname \"$0\")/../their-hook-ran\"\nexit 0\n"
    (hooks / "pre-push").write_text(theirs)
    (hooks / "pre-push").chmod(0o755)

    assert mmreview("hook", "install", "--tree", str(repo), "--profile", "rules").returncode == 0
    assert (hooks / CHAINED).read_text() == theirs
    again = mmreview("hook", "install", "--tree", str(repo))
    assert again.returncode == 0 and b"updated" in again.stdout
    assert (hooks / CHAINED).read_text() == theirs          # not chained to itself

    git(repo, "checkout", "--quiet", "-b", "doc")
    commit_edit(repo, "mm/vma.c", " * vma_complete- Helper function", " * vma_complete() - Helper function",
                "mm/vma: fix the kernel-doc name of vma_complete()", "Kernel-doc.")
    ok = push(repo, "doc")
    assert ok.returncode == 0, ok.stderr
    ran = (repo / ".git" / "their-hook-ran").read_text()
    assert ran.startswith("refs/heads/doc ")                # their hook saw git's stdin

    un = mmreview("hook", "uninstall", "--tree", str(repo))
    assert un.returncode == 0 and b"restored" in un.stdout
    assert (hooks / "pre-push").read_text() == theirs and not (hooks / CHAINED).exists()
    # Not ours any more: uninstall refuses, one line, exit 2.
    again = mmreview("hook", "uninstall", "--tree", str(repo))
    assert again.returncode == 2 and again.stderr.count(b"\n") == 1
    assert (hooks / "pre-push").read_text() == theirs


def test_uninstall_without_previous_hook_removes_only_ours(pushing_clone):
    repo = pushing_clone
    hooks = repo / ".git" / "hooks"
    before = sorted(p.name for p in hooks.iterdir()) if hooks.exists() else []
    assert mmreview("hook", "install", "--tree", str(repo)).returncode == 0
    assert mmreview("hook", "uninstall", "--tree", str(repo)).returncode == 0
    assert sorted(p.name for p in hooks.iterdir()) == before


def test_push_ranges_from_git_stdin(pushing_clone):
    repo = pushing_clone
    git(repo, "checkout", "--quiet", "-b", "t")
    tip = commit_edit(repo, "mm/vma.c", " * or for inserting a VMA.", " * or for inserting a vma.",
                      "mm/vma: c", "c")
    zero = "0" * 40
    # new branch: the commits no remote-tracking ref has, on their parent
    (r,) = push_ranges(repo, f"refs/heads/t {tip} refs/heads/t {zero}\n")
    assert (r.base, r.tip) == (base_sha(), tip)
    # existing branch: remote..local
    (r,) = push_ranges(repo, f"refs/heads/t {tip} refs/heads/t {base_sha()}\n")
    assert r.range == f"{base_sha()}..{tip}"
    # deletion and nothing-new are skipped
    assert push_ranges(repo, f"(delete) {zero} refs/heads/t {tip}\n") == []
    assert push_ranges(repo, f"refs/heads/t {tip} refs/heads/t {tip}\n") == []


def test_install_outside_a_work_tree_is_bad_input(tmp_path):
    proc = mmreview("hook", "install", "--tree", str(tmp_path))
    assert proc.returncode == 2 and b"not a git work tree" in proc.stderr


def test_pre_commit_framework_range_from_environment(pushing_clone):
    repo = pushing_clone
    git(repo, "checkout", "--quiet", "-b", "topic")
    tip = commit_edit(repo, "mm/vma.c", XA_ZERO,
                      XA_ZERO + "\tif (vp->remove && vp->remove2)\n\t\tmas_store(&vmi->mas, XA_ZERO_ENTRY);\n",
                      "mm/vma: mark removed ranges with XA_ZERO_ENTRY", "Marker.")
    env = {"PRE_COMMIT_FROM_REF": base_sha(), "PRE_COMMIT_TO_REF": tip}
    proc = subprocess.run([MMREVIEW, "hook", "run", "--profile", "rules"], cwd=repo,
                          capture_output=True, text=True, env={**os.environ, **env},
                          stdin=subprocess.DEVNULL, timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert "xa-zero-marker" in proc.stderr


def test_b4_prep_check_runs_mmreview_per_patch(pushing_clone):
    """docs/b4.md, for real: b4's prep-perpatch-check-cmd running mmreview on each patch."""
    repo = pushing_clone
    git(repo, "config", "user.name", "Test Author")
    git(repo, "config", "user.email", "test@example.org")
    env = {**os.environ, **VENV_PATH, "LC_ALL": "C.UTF-8"}   # as a user with the venv activated
    prep = subprocess.run([str(BIN / "b4"), "prep", "-n", "xazero", "-f", "master"], cwd=repo,
                          capture_output=True, text=True, env=env, timeout=300)
    assert prep.returncode == 0, prep.stderr
    commit_edit(repo, "mm/vma.c", " * vma_complete- Helper function", " * vma_complete() - Helper function",
                "mm/vma: fix the kernel-doc name of vma_complete()", "Kernel-doc.")
    commit_edit(repo, "mm/vma.c", XA_ZERO,
                XA_ZERO + "\tif (vp->remove && vp->remove2)\n\t\tmas_store(&vmi->mas, XA_ZERO_ENTRY);\n",
                "mm/vma: mark removed ranges with XA_ZERO_ENTRY", "Marker.")
    git(repo, "config", "b4.prep-perpatch-check-cmd",
        "mmreview check - --tree . --base from-tree --profile rules --format terse --quiet")
    check = subprocess.run([str(BIN / "b4"), "prep", "--check", "--no-cache"], cwd=repo, capture_output=True,
                           text=True, env=env, timeout=600)
    out = check.stdout + check.stderr
    assert "Success: 1, Warning: 0, Error: 1" in out, out
    assert "mmreview: ERROR: xa-zero-marker: mm/vma.c:" in out


def test_fail_on_takes_the_grammar_check_takes(pushing_clone):
    """`--fail-on` of the hook is the one of check and rules: a severity, optionally `,untested`;
    anything else is one line, exit 2, and no hook written."""
    repo = pushing_clone
    hook = repo / ".git" / "hooks" / "pre-push"
    bad = mmreview("hook", "install", "--tree", str(repo), "--fail-on", "warning,sometimes")
    assert bad.returncode == 2 and bad.stderr.count(b"\n") == 1 and b"--fail-on" in bad.stderr
    assert not hook.exists()
    ok = mmreview("hook", "install", "--tree", str(repo), "--fail-on", "warning,untested")
    assert ok.returncode == 0, ok.stderr
    assert "--fail-on warning,untested" in hook.read_text()
    # The rule-breaking commit with --fail-on none goes through: the same review, judged otherwise.
    git(repo, "checkout", "--quiet", "-b", "topic")
    tip = commit_edit(repo, "mm/vma.c", XA_ZERO,
                      XA_ZERO + "\tif (vp->remove && vp->remove2)\n\t\tmas_store(&vmi->mas, XA_ZERO_ENTRY);\n",
                      "mm/vma: mark removed ranges with XA_ZERO_ENTRY", "Marker.")
    env = {"PRE_COMMIT_FROM_REF": base_sha(), "PRE_COMMIT_TO_REF": tip}
    for fail_on, code in (("none,untested", 0), ("error,untested", 1)):
        proc = subprocess.run([MMREVIEW, "hook", "run", "--profile", "rules", "--fail-on", fail_on],
                              cwd=repo, capture_output=True, text=True, env={**os.environ, **env},
                              stdin=subprocess.DEVNULL, timeout=600)
        assert proc.returncode == code, (fail_on, proc.stderr)
        assert "xa-zero-marker" in proc.stderr


def test_a_git_failure_in_the_hook_is_one_line(tmp_path):
    """The hook runs outside typer (to start fast) and ends as every command does: git failing
    under it is one line and exit 3, not a traceback that blocks the push unexplained."""
    repo = tmp_path / "r"
    git(tmp_path, "init", "--quiet", str(repo))
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "--quiet",
        "--allow-empty", "-m", "x")
    bogus = "refs/heads/t " + "1" * 40 + " refs/heads/t " + "2" * 40 + "\n"
    proc = subprocess.run([str(BIN / "python"), "-m", "mmreview.review.prepush", "run", "origin",
                           str(tmp_path / "nowhere")], cwd=repo, input=bogus, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("mmreview: error: git rev-list") and "1111111" in proc.stderr
