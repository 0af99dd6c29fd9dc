"""Real series on your own checkout (issue 23): each row of its table, through the real CLI, in a
user's clone of the provisioned 7.3 tree (and a local bare remote for the hook)."""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
from email.utils import getaddresses
from pathlib import Path

import pytest

from conftest import MMREVIEW, git

BOX = set("│┃━─┏┓┗┛╇╭╮╰╯┡┩")
HEADER = (" * Maple Tree implementation\n", " * Maple Tree implementation: a B-tree of ranges\n")
INCLUDE = ('#include "vma_internal.h"\n', '#include "vma_internal.h"\n/* the VMA tree\'s helpers */\n')
DOC = (" * vma_complete- Helper function", " * vma_complete() - Helper function")


def run(cwd: Path, *args: str, input: bytes | None = None, env: dict | None = None):
    """mmreview as a user runs it: in `cwd`, no --tree unless given."""
    return subprocess.run([MMREVIEW, *args], cwd=cwd, input=input, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "80", **(env or {})}, timeout=900)


def commit(repo: Path, path: str, old: str, new: str, subject: str, allow_empty=False) -> str:
    if old is not None:
        f = repo / path
        text = f.read_text()
        assert old in text, (path, old)
        f.write_text(text.replace(old, new, 1))
    git(repo, "commit", "--quiet", "-a", *(["--allow-empty"] if allow_empty else []),
        "-m", subject, "-m", "Why it is needed, in a sentence.",
        "-m", "Signed-off-by: Test Author <test@example.org>")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def clone73(tree_73: Path, tmp_path: Path) -> Path:
    """A user's checkout of 7.3 (origin: the provisioned tree), sparse so that it is quick."""
    dest = tmp_path / "linux"
    git(tmp_path, "clone", "--quiet", "--shared", "--no-checkout", str(tree_73), str(dest))
    git(dest, "sparse-checkout", "set", "mm", "lib", "kernel", "tools/testing/radix-tree")
    git(dest, "checkout", "--quiet", "-b", "topic", "origin/master")
    git(dest, "config", "user.name", "Test Author")
    git(dest, "config", "user.email", "test@example.org")
    return dest


def mbox(repo: Path, rev_range: str, *extra: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), "format-patch", "--stdout", *extra, rev_range],
                          capture_output=True, check=True).stdout


# ---------------------------------------------------------------- 1. the checkout you stand in

def test_ranges_resolve_in_the_checkout_you_stand_in(clone73, tmp_path):
    first = commit(clone73, "mm/vma.c", *DOC, "mm/vma: fix the kernel-doc name of vma_complete()")
    commit(clone73, "lib/maple_tree.c", *HEADER, "maple_tree: say what the tree is")
    # No --tree: the range is the checkout's, and the review says which tree it used.
    p = run(clone73, "check", "origin..HEAD", "--profile", "rules", "-q")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "(v1, 2 patches)" in p.stdout and f"tree {clone73}, the checkout you are in" in p.stdout
    assert "the start of the range origin..HEAD" in p.stdout
    # `<sha>..HEAD` is two commits here, not "no commits" of the provisioned tree's HEAD
    p = run(clone73, "rules", f"{first}~1..HEAD")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines()[-1].startswith("CLEAN")
    # From a subdirectory too, like git.
    assert run(clone73 / "mm", "rules", "origin..HEAD").returncode == 0
    # Outside a kernel checkout the provisioned default is used, and the error says how to name one.
    away = run(tmp_path, "rules", "origin..HEAD")
    assert away.returncode == 2 and away.stderr.count("\n") == 1
    assert "'origin' is no revision of kernel 6.12 (provisioned)" in away.stderr
    assert "--tree" in away.stderr
    # --tree overrides the checkout.
    other = run(clone73, "rules", "origin..HEAD", "--tree", "6.1")
    assert other.returncode == 2 and "kernel 6.1 (provisioned), --tree" in other.stderr


# ---------------------------------------------------------------- 2. apply failures diagnosed

def test_apply_failures_say_which_kind_and_where_the_series_applies(clone73, tmp_path):
    commit(clone73, "lib/maple_tree.c", *HEADER, "maple_tree: say what the tree is")
    made_on_73 = tmp_path / "on73.mbox"
    made_on_73.write_bytes(mbox(clone73, "origin/master..HEAD"))        # no base-commit: line
    # On 6.1 the base lacks the lines: the failing hunk, the base's nearest lines, where it applies.
    p = run(tmp_path, "apply", str(made_on_73), "--tree", "6.1")
    assert p.returncode == 1
    assert "why: the base lacks the lines the patch changes" in p.stdout
    assert "first failing hunk, lib/maple_tree.c:" in p.stdout and "+ * Maple Tree implementation: a B" \
        in p.stdout
    assert "the base at lib/maple_tree.c:1-" in p.stdout and "Liam.Howlett@oracle.com" in p.stdout
    assert "applies on: 7.3" in p.stdout
    assert "the series names no base-commit" in p.stdout and "b4 am --guess-base" in p.stdout
    assert "conflicts in" not in p.stdout
    # Already in the tree: the checkout has patch 1 (git am --3way would say "No changes" and go
    # on, shifting every later commit by one: the apply stops there instead).
    commit(clone73, "mm/vma.c", *DOC, "mm/vma: fix the kernel-doc name of vma_complete()")
    two = tmp_path / "two.mbox"
    two.write_bytes(mbox(clone73, "origin/master..HEAD"))
    git(clone73, "reset", "--quiet", "--hard", "HEAD~1")
    p = run(clone73, "apply", str(two), "--json")
    patches = json.loads(p.stdout)["apply"]["patches"]
    assert p.returncode == 1 and patches[0]["diagnosis"] == "already-applied", patches
    assert [q["state"] for q in patches] == ["failed", "not-attempted"]
    assert run(clone73, "apply", str(made_on_73)).stdout.count("why: the change is already in the tree") == 1
    git(clone73, "reset", "--quiet", "--hard", "topic@{1}")
    # A file the patch changes is not in the tree: mm/vma.c on 6.1.
    vma = tmp_path / "vma.mbox"
    vma.write_bytes(mbox(clone73, "-1"))
    p = run(tmp_path, "apply", str(vma), "--tree", "6.1", "--json")
    patch = json.loads(p.stdout)["apply"]["patches"][0]
    assert patch["diagnosis"] == "file-missing" and "mm/vma.c is not in the tree" in patch["detail"][0]
    assert "7.3" in patch["applies_on"]
    # A real 3-way conflict: the tree changed the same line the patch changes.
    git(clone73, "checkout", "--quiet", "-b", "theirs", "origin/master")
    commit(clone73, "mm/vma.c", DOC[0], " * vma_complete -- Helper function", "mm/vma: theirs")
    p = run(clone73, "apply", str(vma), "--json")
    patch = json.loads(p.stdout)["apply"]["patches"][0]
    assert patch["diagnosis"] == "conflict", patch
    assert any(line.startswith("CONFLICT (content)") for line in patch["detail"])


# ---------------------------------------------------------------- 3. rules on what can be read

def test_rules_run_on_the_diff_when_patch_1_does_not_apply(clone73, tmp_path):
    commit(clone73, "lib/maple_tree.c", *HEADER, "maple_tree: say what the tree is")
    commit(clone73, "mm/vma.c", INCLUDE[0], INCLUDE[0] + "/* trailing space */ \n",
           "mm/vma: a comment with a trailing space")
    series = tmp_path / "s.mbox"
    series.write_bytes(mbox(clone73, "origin/master..HEAD"))
    p = run(tmp_path, "rules", str(series), "--tree", "6.1")
    out = p.stdout
    assert p.returncode == 1, out + p.stderr
    assert "patch 2: mm/vma.c:12: error: [checkpatch:TRAILING_WHITESPACE]" in out
    assert "(diff alone)" in out and "checked on its diff alone by checkpatch" in out
    assert "not run on patches 1-2: patch 1 did not apply" in out
    assert "6 could not read every patch" in out and "0 finding(s)" not in out
    assert out.splitlines()[-1].startswith("DID-NOT-APPLY")
    # Nothing could run: said so, never "0 findings".
    p = run(tmp_path, "rules", str(series), "--tree", "6.1", "--ignore", "checkpatch")
    assert "nothing checked: no rule could run" in p.stdout and "0 finding(s)" not in p.stdout
    # The review JSON says how each finding was checked.
    p = run(tmp_path, "check", str(series), "--tree", "6.1", "--profile", "rules", "-q", "-f", "json")
    found = json.loads(p.stdout)["findings"]
    assert {f["checked_on"] for f in found} == {"diff"} and found


# ---------------------------------------------------------------- 4/5. a mail that is right

CC = ['"Doe, Jane" <jane@example.org>', "James E.J. Bottomley <jejb@example.org>",
      "H. Peter Anvin <hpa@example.org>", '"O\'Neil \\"Bob\\"" <bob@example.org>',
      "Zoë Lefèvre <zoe@example.org>"]


def test_email_addresses_quoted_and_tags_only_for_failures(clone73, tmp_path):
    commit(clone73, "mm/vma.c", *DOC, "mm/vma: fix the kernel-doc name of vma_complete()")
    series = tmp_path / "s.mbox"
    series.write_bytes(mbox(clone73, "-1", *[f"--cc={c}" for c in CC]))
    saved = tmp_path / "review.json"
    p = run(tmp_path, "check", str(series), "--tree", "7.3", "--profile", "rules", "-q",
            "--json-out", str(saved), "-f", "email", env={"XDG_CONFIG_HOME": str(tmp_path / "noconfig")})
    assert p.returncode == 0, p.stderr
    msg = email.message_from_string(p.stdout, policy=email.policy.default)
    got = [(a.display_name, a.addr_spec) for a in msg["Cc"].addresses]
    assert got == [("Doe, Jane", "jane@example.org"), ("James E.J. Bottomley", "jejb@example.org"),
                   ("H. Peter Anvin", "hpa@example.org"), ('O\'Neil "Bob"', "bob@example.org"),
                   ("Zoë Lefèvre", "zoe@example.org")]
    # what a mail client's parser reads from the raw header: one address each
    assert len(getaddresses([str(msg["Cc"])])) == len(CC)
    assert '"Doe, Jane" <jane@example.org>' in p.stdout
    # clean: no tags; the default identity is one warning line
    body = msg.get_content()
    assert "Reported-by:" not in body and "Closes:" not in body
    assert p.stderr.count("warning: the reply is from the default mmreview <mmreview@localhost>") == 1
    r = run(tmp_path, "report", str(saved), "-f", "email", "--from", "Ada <ada@example.org>")
    assert r.returncode == 0 and "warning" not in r.stderr


def test_is_default_identity(tmp_path, monkeypatch):
    from mmreview.render.email import is_default_identity
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert is_default_identity() and not is_default_identity("Ada <ada@example.org>")
    (tmp_path / "mmreview").mkdir()
    (tmp_path / "mmreview" / "config.toml").write_text('[email]\nfrom = "Bot <bot@example.org>"\n')
    assert not is_default_identity()


# ---------------------------------------------------------------- 6. one exit-code contract

def test_one_exit_code_for_rules_check_report_terse_and_the_hook(clone73, tmp_path):
    commit(clone73, "mm/vma.c", INCLUDE[0], INCLUDE[0] + "/* " + "long " * 22 + "*/\n",
           "mm/vma: a long comment")                                    # checkpatch: LONG_LINE
    series = tmp_path / "s.mbox"
    series.write_bytes(mbox(clone73, "-1"))
    found = json.loads(run(tmp_path, "rules", str(series), "--tree", "7.3", "--json").stdout)["findings"]
    assert found and {f["severity"] for f in found} == {"warning"}, found
    for args in (["rules", str(series)], ["check", str(series), "--profile", "rules", "-q"]):
        assert run(tmp_path, *args, "--tree", "7.3").returncode == 0         # default: error
        assert run(tmp_path, *args, "--tree", "7.3", "--fail-on", "warning").returncode == 1
    saved = tmp_path / "r.json"
    run(tmp_path, "check", str(series), "--tree", "7.3", "--profile", "rules", "-q", "--json-out", str(saved))
    t = run(tmp_path, "report", str(saved), "-f", "terse")
    assert t.returncode == 0 and "ERROR:" not in t.stdout and "WARNING:" in t.stdout
    t = run(tmp_path, "report", str(saved), "-f", "terse", "--fail-on", "warning")
    assert t.returncode == 1 and "ERROR:" in t.stdout
    # An error-level finding with --fail-on none: no "ERROR:" and exit 0.
    git(clone73, "reset", "--quiet", "--hard", "origin/master")
    commit(clone73, "mm/vma.c", INCLUDE[0], INCLUDE[0] + "/* trailing */ \n", "mm/vma: trailing")
    err = tmp_path / "e.mbox"
    err.write_bytes(mbox(clone73, "-1"))
    run(tmp_path, "check", str(err), "--tree", "7.3", "--profile", "rules", "-q", "--json-out", str(saved))
    t = run(tmp_path, "report", str(saved), "-f", "terse", "--fail-on", "none")
    assert t.returncode == 0 and "ERROR:" not in t.stdout and "below --fail-on none" in t.stdout
    t = run(tmp_path, "report", str(saved), "-f", "terse")
    assert t.returncode == 1 and "ERROR: checkpatch:TRAILING_WHITESPACE" in t.stdout


# ---------------------------------------------------------------- 7. the hook behaves like git

@pytest.fixture
def pushing73(clone73: Path, tmp_path: Path) -> Path:
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "--quiet", "--bare", "--shared", str(clone73), str(remote))
    git(clone73, "remote", "add", "pushto", str(remote))
    git(clone73, "fetch", "--quiet", "pushto")
    assert run(clone73, "hook", "install").returncode == 0          # no --tree: the checkout
    return clone73


def push(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MMREVIEW_SKIP"}
    return subprocess.run(["git", "-C", str(repo), "push", "pushto", *args], capture_output=True,
                          text=True, env={**env, "LC_ALL": "C", "COLUMNS": "80"}, timeout=900)


def test_hook_skips_empty_commits_reviews_once_and_not_what_the_remote_has(pushing73):
    repo = pushing73
    commit(repo, "", None, None, "an empty commit", allow_empty=True)
    p = push(repo, "topic")
    assert p.returncode == 0, p.stderr
    assert "only empty commits (1): nothing to review" in p.stderr

    # A branch and a tag on one commit: one review.
    commit(repo, "mm/vma.c", *DOC, "mm/vma: fix the kernel-doc name of vma_complete()")
    git(repo, "tag", "v1")
    p = push(repo, "topic", "v1")
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("mmreview: pre-push: reviewing") == 1
    assert "reviewing refs/heads/topic, refs/tags/v1 -> refs/heads/topic (1 commit" in p.stderr
    # its note first, then the report; the base is where the remote is, not "--base"
    assert p.stderr.index("mmreview: pre-push: reviewing") < p.stderr.index("CLEAN")
    assert "given with --base" not in p.stderr and "on the remote" in p.stderr
    assert not set(p.stderr) & BOX                                  # git's stderr is no tty

    # Commits the remote has under a tag only are not reviewed again on a new branch.
    commit(repo, "lib/maple_tree.c", *HEADER, "maple_tree: say what the tree is")
    git(repo, "tag", "v2")
    assert push(repo, "v2").returncode == 0
    commit(repo, "mm/vma.c", " * or for inserting a VMA.", " * or for inserting a vma.",
           "mm/vma: lower-case vma")
    git(repo, "branch", "next")
    p = push(repo, "next")
    assert p.returncode == 0, p.stderr
    assert "(1 commit on" in p.stderr and "(v1, 1 patch)" in p.stderr
    assert "say what the tree is" not in p.stderr


# ---------------------------------------------------------------- 8. pipes get plain text

def test_pipes_get_plain_text_whole_lines(clone73, tmp_path):
    commit(clone73, "mm/vma.c", *DOC, "mm/vma: fix the kernel-doc name of vma_complete() in a long "
                                      "subject that goes on and on past eighty columns")
    git(clone73, "commit", "--quiet", "--amend", "--no-edit", "--author=Maximiliana Wilhelmina "
        "Theodora von Langenachnamenhausen-Sc <test@example.org>")
    s = run(clone73, "series", "origin..HEAD")
    assert s.returncode == 0 and not set(s.stdout) & BOX
    assert "Maximiliana Wilhelmina Theodora von Langenachnamenhausen-Sc <test@example.org>" in s.stdout
    c = run(clone73, "check", "origin..HEAD", "--profile", "rules", "-q")
    assert c.returncode == 0 and not set(c.stdout) & BOX
    assert "past eighty columns" in c.stdout
    assert "(the series' base-commit: line" not in c.stdout
    assert "the start of the range origin..HEAD; its own commits, not re-applied" in c.stdout
    a = run(clone73, "apply", "origin..HEAD")
    assert a.returncode == 0 and not set(a.stdout) & BOX
