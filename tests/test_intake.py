"""Intake: every kind of SERIES into one Series, versions, replies, trailers,
encodings, and bad input as one line + exit 2.  Real files, real git."""

from __future__ import annotations

import json
import mailbox
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import base_sha, SERIES, git, mmreview
from mmreview.cli import main as cli
from mmreview.cli.app import app
from mmreview.common.errors import BadInput
from mmreview.intake.read import load_series
from mmreview.intake.mail import split_mbox

cli._load_commands()
runner = CliRunner()

CLEAN_FILES = ["mm/vma.c", "lib/maple_tree.c", "tools/testing/radix-tree/maple.c"]
CLEAN_SUBJECTS = ["mm/vma: fix the kernel-doc header of vma_complete()",
                  "maple_tree: fix the kernel-doc header of mas_find_range_rev()",
                  "maple_tree: test that mas_find_range_rev() stops on empty ranges"]


def run(*args: str, input: bytes | None = None):
    return runner.invoke(app, list(args), input=input)


def messages(name: str) -> list[bytes]:
    """The messages of a sample mbox, each with its From_ line, as bytes."""
    return [(fl or b"From x Mon Sep 17 00:00:00 2001") + b"\n" + raw
            for raw, fl in split_mbox((SERIES / name).read_bytes())]


def mbox(*msgs: bytes) -> bytes:
    return b"".join(m if m.endswith(b"\n\n") else m.rstrip(b"\n") + b"\n\n" for m in msgs)


def resubject(msg: bytes, new: str) -> bytes:
    """Replace a message's (possibly folded) Subject header."""
    return re.sub(rb"^Subject: .*(\n[ \t].*)*$", b"Subject: " + new.encode(), msg, count=1, flags=re.M)


@pytest.fixture(scope="module")
def clone(kernel_tree: Path, tmp_path_factory) -> Path:
    """A sparse scratch clone with two real commits on top of the base."""
    dest = tmp_path_factory.mktemp("intake") / "linux"
    git(dest.parent, "clone", "--quiet", "--shared", "--no-checkout", str(kernel_tree), str(dest))
    git(dest, "sparse-checkout", "set", "--no-cone", "/mm/", "/lib/maple_tree.c",
        "/tools/testing/radix-tree/")
    git(dest, "checkout", "--quiet", "-b", "work", "master")
    vma = dest / "mm/vma.c"
    vma.write_text(vma.read_text().replace(" * vma_complete- Helper", " * vma_complete() - Helper", 1))
    git(dest, "commit", "--quiet", "-a", "-m", "mm/vma: kernel-doc name for vma_complete()\n\n"
        "Signed-off-by: Test Author <test@example.org>\nReviewed-by: Bea Maintainer <bea@example.net>")
    mt = dest / "lib/maple_tree.c"
    mt.write_text(mt.read_text().replace(" * mas_find_range_rev: On", " * mas_find_range_rev() - On", 1))
    git(dest, "commit", "--quiet", "-a", "-m", "maple_tree: kernel-doc name for mas_find_range_rev()\n\n"
        "Signed-off-by: Test Author <test@example.org>")
    return dest


# ---------------------------------------------------------------- the kinds of SERIES

def test_mbox_clean_series():
    s = load_series(str(SERIES / "clean-3.mbox"))
    assert s.kind == "mbox" and s.version == 1
    assert [p.number for p in s.patches] == [1, 2, 3]
    assert [p.subject for p in s.patches] == CLEAN_SUBJECTS
    assert [p.files for p in s.patches] == [[f] for f in CLEAN_FILES]
    assert s.cover and s.cover.subject == "mm, maple_tree: kernel-doc fixes and a mas_find_range_rev() test"
    assert s.cover.message_id == "cover.1748851200.git.ada@example.org"
    # No base-commit: a bundled sample applies on any 6.12.y (series/README.md); a cover's
    # base-commit: is read in test_directory_of_format_patch_files.
    assert s.base_commit is None and s.cover.base_commit is None
    assert s.notes == [] and s.replies == 0
    p1 = s.patches[0]
    assert p1.author == "Ada Reviewer <ada@example.org>"
    assert p1.in_reply_to == s.cover.message_id
    assert p1.to == ["linux-mm@kvack.org"] and p1.cc == ["Bea Maintainer <bea@example.net>"]
    assert p1.diff.startswith("diff --git a/mm/vma.c b/mm/vma.c\n") and "-- \n" not in p1.diff
    assert p1.body.startswith("The comment above vma_complete()") and "\n---" not in p1.body
    assert [(t.name, t.value) for t in p1.trailers] == [("Signed-off-by", "Ada Reviewer <ada@example.org>")]


def test_directory_of_format_patch_files(clone, tmp_path):
    out = tmp_path / "out"
    git(clone, "format-patch", "--quiet", "--cover-letter", f"--base={base_sha()}", "-o", str(out),
        "master..work")
    (out / "notes.txt").write_text("not a patch file, ignored by suffix\n")
    s = load_series(str(out))
    assert s.kind == "directory"
    assert [p.subject for p in s.patches] == ["mm/vma: kernel-doc name for vma_complete()",
                                              "maple_tree: kernel-doc name for mas_find_range_rev()"]
    assert s.cover is not None and s.base_commit == base_sha()
    assert ("Reviewed-by", "Bea Maintainer <bea@example.net>") in [(t.name, t.value) for t in s.patches[0].trailers]


def test_maildir(tmp_path):
    md = mailbox.Maildir(str(tmp_path / "md"), create=True)
    msgs = messages("clean-3.mbox")
    for raw in reversed(msgs):   # arrival order must not matter
        md.add(raw.split(b"\n", 1)[1])
    s = load_series(str(tmp_path / "md"))
    assert s.kind == "maildir" and [p.subject for p in s.patches] == CLEAN_SUBJECTS and s.cover


def test_stdin_through_the_real_cli():
    proc = mmreview("series", "-", "--json", input=(SERIES / "thread-v2.mbox").read_bytes())
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["kind"] == "stdin" and d["version"] == 2 and d["source"] == "-"
    assert [p["number"] for p in d["patches"]] == [1, 2, 3]


def test_git_range_of_the_tree(clone):
    s = load_series("master..work", tree=_tree(clone))
    assert s.kind == "range" and s.base_commit == base_sha() and s.cover is None
    assert [p.files for p in s.patches] == [["mm/vma.c"], ["lib/maple_tree.c"]]
    assert [p.author for p in s.patches] == ["Test Author <test@example.org>"] * 2
    sha = git(clone, "rev-parse", "work~1")
    s2 = load_series(f"{sha}..work", tree=_tree(clone))
    assert len(s2.patches) == 1 and s2.base_commit == sha and s2.patches[0].total == 1


def test_range_leaves_out_an_empty_cover_commit(clone):
    """b4 prep keeps its cover letter as an empty commit at the start of the branch."""
    git(clone, "checkout", "--quiet", "-b", "prep", "master")
    try:
        git(clone, "commit", "--quiet", "--allow-empty", "-m", "cover: the series' cover letter")
        git(clone, "cherry-pick", "--quiet", "master..work")
        s = load_series("master..prep", tree=_tree(clone))
        assert [(p.number, p.total) for p in s.patches] == [(1, 2), (2, 2)]
        assert [p.files for p in s.patches] == [["mm/vma.c"], ["lib/maple_tree.c"]]
    finally:
        git(clone, "checkout", "--quiet", "work")


def test_existing_path_wins_over_range(clone, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "master..work").write_bytes((SERIES / "clean-3.mbox").read_bytes())
    s = load_series("master..work", tree=_tree(clone))
    assert s.kind == "mbox" and len(s.patches) == 3


def _tree(path: Path):
    from mmreview.kernel.trees import open_tree
    return open_tree(path)


# ---------------------------------------------------------------- subjects, order, versions

def test_order_and_prefixes():
    cover, p1, p2, p3 = messages("clean-3.mbox")
    data = mbox(resubject(p3, "[PATCH mm-unstable v3 3/3] third"),
                resubject(cover, "[PATCH mm-unstable v3 0/3] the cover"),
                resubject(p1, "[RFC PATCH mm-unstable v3 1/3] first"),
                resubject(p2, "[PATCH RESEND mm-unstable v3 2/3] second"))
    s = _load_bytes(data)
    assert s.version == 3 and [p.subject for p in s.patches] == ["first", "second", "third"]
    assert s.patches[0].prefixes == ["RFC", "mm-unstable"]
    assert s.patches[1].prefixes == ["RESEND", "mm-unstable"]
    assert s.cover.subject == "the cover"


def test_single_unnumbered_patch_is_1_of_1():
    _, p1, _, _ = messages("clean-3.mbox")
    s = _load_bytes(mbox(resubject(p1, "[PATCH] a lone fix")))
    assert len(s.patches) == 1 and (s.patches[0].number, s.patches[0].total) == (1, 1)
    assert s.cover is None and s.base_commit is None


def test_base_commit_from_last_patch_without_cover(clone):
    raw = git(clone, "format-patch", "--stdout", f"--base={base_sha()}", "master..work").encode()
    s = _load_bytes(raw)
    assert s.cover is None and s.base_commit == base_sha()
    assert "base-commit" not in s.patches[-1].diff


def test_thread_export_newest_version_replies_and_followup_trailers():
    s = load_series(str(SERIES / "thread-v2.mbox"))
    assert s.version == 2 and [p.subject for p in s.patches] == CLEAN_SUBJECTS
    assert all(p.version == 2 for p in s.patches)
    assert s.notes[0] == "v2 chosen; v1 (3 patches) superseded"
    assert s.replies == 5   # 4 replies (2 with quoted diffs) + 1 unrelated mail
    assert "Reviewed-by: Bea Maintainer <bea@example.net> given for patch 2/3 in a reply" in s.notes
    assert "Tested-by: Cy Tester <cy@example.com> given for the series in a reply" in s.notes
    assert "stopping on empty ranges as well" in s.patches[1].diff   # v2's text, not v1's
    assert s.cover.message_id == "cover.1748851201.git.ada@example.org"


def test_incomplete_newest_falls_back_to_complete_older():
    msgs = messages("thread-v2.mbox")
    v2_2 = next(m for m in msgs if b"\nSubject: [PATCH v2 2/3]" in m)
    s = _load_bytes(mbox(*[m for m in msgs if m is not v2_2]))
    assert s.version == 1
    assert s.notes[:2] == ["v1 chosen", "v2 skipped: it is missing patch 2/3"]


# ---------------------------------------------------------------- encodings and git am

def test_encodings_decoded():
    s = load_series(str(SERIES / "encodings.mbox"))
    assert [p.number for p in s.patches] == [1, 2, 3]
    assert "thanks, Zoë." in s.cover.body                       # quoted-printable UTF-8
    assert s.patches[0].author == "Zoë Lefèvre <zoe@example.org>"  # latin-1 encoded word
    assert s.patches[0].subject == ("mm/vma: say how i_mmap_rwsem must be held in "
                                    "__remove_shared_vm_struct()")   # base64 body, folded subject
    assert "+/* Page offset of @addr in @vma, assumes addr >= vma->vm_start. */\n" in s.patches[1].diff
    p3 = s.patches[2]                                              # latin-1 8bit, CRLF
    assert "\r" not in p3.diff and "\r" not in p3.body
    assert ("Suggested-by", "Zoë Lefèvre <zoe@example.org>") in [(t.name, t.value) for t in p3.trailers]
    assert p3.subject == "maple_tree: mention @max in the mt_next() return description"


@pytest.fixture(scope="module")
def am_tree(clone):
    wt = clone.parent / "am"
    git(clone, "worktree", "add", "--quiet", "--detach", str(wt), "master")
    yield wt
    git(clone, "worktree", "remove", "--force", str(wt))


@pytest.mark.parametrize("name", ["clean-3.mbox", "thread-v2.mbox", "encodings.mbox"])
def test_mbox_bytes_apply_with_git_am(am_tree, name):
    s = load_series(str(SERIES / name))
    wt = am_tree
    git(wt, "checkout", "--quiet", "--force", "--detach", "master")
    try:
        git(wt, "am", "--quiet", input=s.mbox_bytes())
        log = git(wt, "log", "--format=%an|%s", f"{base_sha()}..HEAD").splitlines()[::-1]
        assert [line.split("|")[1] for line in log] == [p.subject for p in s.patches]
        assert sorted(git(wt, "diff", "--name-only", base_sha(), "HEAD").splitlines()) == sorted(s.files())
        if name == "encodings.mbox":
            assert log[0].split("|")[0] == "Zoë Lefèvre"
            assert "Suggested-by: Zoë Lefèvre" in git(wt, "log", "-1", "--format=%B")
            assert "assumes addr >= vma->vm_start. */" in (wt / "mm/vma.h").read_text()
        else:   # thread-v2's v2 is clean-3: the same change
            clean = load_series(str(SERIES / "clean-3.mbox"))
            assert [p.diff for p in s.patches] == [p.diff for p in clean.patches]
    finally:
        git(wt, "am", "--abort", check=False)


# ---------------------------------------------------------------- the command

def test_series_table_and_json():
    r = run("series", str(SERIES / "thread-v2.mbox"))
    assert r.exit_code == 0, r.output
    for needle in ("[PATCH v2 0/3]", "version: v2", "1/3", "3/3",
                   "note: v2 chosen; v1 (3 patches) superseded"):
        assert needle in r.stdout
    r = run("series", str(SERIES / "clean-3.mbox"), "--json")
    d = json.loads(r.stdout)
    assert set(d) >= {"cover", "patches", "version", "notes", "base_commit"}
    assert d["cover"]["base_commit"] is None and d["base_commit"] is None
    assert set(d["patches"][0]) >= {"number", "subject", "author", "message_id", "files"}
    assert "mbox" not in d["patches"][0]


# ---------------------------------------------------------------- bad input

def _load_bytes(data: bytes):
    from io import BytesIO
    return load_series("-", stdin=BytesIO(data))


def _corrupt_hunk() -> bytes:
    cover, p1, p2, p3 = messages("clean-3.mbox")
    bad = p3.replace(b"@@ -36339,6 +36339,41 @@", b"@@ -36339,6 +36339,44 @@")
    assert bad != p3
    return mbox(cover, p1, p2, bad)


def _bad_inputs() -> dict[str, tuple[bytes | None, str]]:
    cover, p1, p2, p3 = messages("clean-3.mbox")
    noise = next(m for m in messages("thread-v2.mbox") if b"Subject: maple tree test runs" in m)
    return {
        "empty.mbox": (b"", "empty"),
        "notmail.mbox": (b"just some words\nand more words\n", "not mail"),
        "junk.bin": (bytes(range(256)) * 8, "binary data"),
        "nopatch.mbox": (mbox(noise), "no patch in 1 message"),
        "missing.mbox": (mbox(cover, p1, p3), "missing patch 2/3"),
        "duplicate.mbox": (mbox(cover, p1, p2, p2.replace(b"Message-Id: <", b"Message-Id: <dup-"), p3),
                           "duplicate 2/3"),
        "mixed.mbox": (mbox(cover, p1, resubject(p2, "[PATCH 2/4] x"), p3), "mixes totals 3 and 4"),
        "corrupt.mbox": (_corrupt_hunk(), "patch 3/3"),
        "nodiff.mbox": (mbox(cover, p1, resubject(noise, "[PATCH 2/3] talk"), p3), "patch 2/3"),
    }


@pytest.mark.parametrize("name", sorted(_bad_inputs()))
def test_bad_input_is_one_line_exit_2(name, tmp_path):
    data, needle = _bad_inputs()[name]
    path = tmp_path / name
    path.write_bytes(data)
    r = run("series", str(path))
    assert r.exit_code == 2, r.output
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert lines[0].startswith(f"mmreview: error: {path}: ") and needle in lines[0], lines[0]


def test_corrupt_hunk_names_file_and_hunk():
    with pytest.raises(BadInput) as e:
        _load_bytes(_corrupt_hunk())
    assert "corrupt diff: tools/testing/radix-tree/maple.c: hunk @@ -36339,6 +36339,44 @@" in str(e.value)


def test_missing_duplicate_named_in_newest_version():
    msgs = messages("thread-v2.mbox")
    keep = [m for m in msgs if b"Subject: [PATCH v2 2/3]" not in m and b"Subject: [PATCH v2 3/3]" not in m
            and b"Subject: [PATCH 1/3]" not in m]
    with pytest.raises(BadInput) as e:   # neither v1 (no 1/3) nor v2 (no 2/3, 3/3) is complete
        _load_bytes(mbox(*keep))
    assert "v2 is missing patches 2/3, 3/3" in str(e.value)


@pytest.mark.parametrize("args, needle", [
    (["series", "/nonexistent/x.mbox"], "/nonexistent/x.mbox: no such file"),
    (["series", "SERIES_DIR"], "no .patch or .eml files"),
    (["series", str(SERIES / "clean-3.mbox"), "--tree", "/"], "/: not a git repository"),
    (["series", "/proc/self/mem"], "/proc/self/mem: cannot read: Input/output error"),  # unreadable, even for root
])
def test_bad_paths(args, needle, tmp_path):
    args = [str(tmp_path) if a == "SERIES_DIR" else a for a in args]
    (tmp_path / "readme.txt").write_text("x\n")
    r = run(*args)
    assert r.exit_code == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bad_range(clone):
    r = run("series", "master..nosuchbranch", "--tree", str(clone))
    assert r.exit_code == 2 and "'nosuchbranch' is no revision" in r.stderr
    r = run("series", "work..work", "--tree", str(clone))
    assert r.exit_code == 2 and "the range has no commits" in r.stderr


def test_reusable_bad_sample():
    r = run("series", str(SERIES / "bad/missing-2.mbox"))
    assert r.exit_code == 2 and "is missing patch 2/3" in r.stderr


def test_in_body_from_is_the_author():
    _, p1, _, _ = messages("clean-3.mbox")
    head, body = p1.split(b"\n\n", 1)
    msg = resubject(head, "[PATCH] a lone fix") + b"\n\nFrom: Real Author <real@example.org>\n\n" + body
    p = _load_bytes(mbox(msg)).patches[0]
    assert p.author == "Real Author <real@example.org>"
    assert p.body.startswith("The comment above vma_complete()")
    assert b"\nFrom: Real Author <real@example.org>\n" in p.mbox.split(b"\n\n", 1)[0] + b"\n"
    assert b"\nFrom: Real Author" not in p.mbox.split(b"\n\n", 1)[1]
