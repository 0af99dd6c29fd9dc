#!/usr/bin/env python3
"""Re-create the issue-2 sample series (clean-3, thread-v2, no-apply, encodings, bad/*).

    python3 series/make_samples.py [OUTDIR]      # default: the directory of this script

Real commits in a scratch clone of the default tree (`mmreview tree path`), made with fixed
identities and dates, then `git format-patch --cover-letter --thread=shallow --base=...` with its
base-commit: line taken out (the tree's commit is a function of one Debian version's tarball, and
the samples are to apply on any 6.12.y, on the tree's HEAD); the
thread replies and the transfer encodings are added with Python's email tools.  With git 2.39.5
the output is byte-identical to the files in series/ (format-patch signs with git's version).
"""
import base64
import email.quoprimime
import email.utils
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TREE = subprocess.run(["mmreview", "tree", "path"], capture_output=True, text=True,
                      check=True).stdout.strip().splitlines()[-1]
BASE = subprocess.run(["git", "-C", TREE, "rev-parse", "HEAD"], capture_output=True, text=True,
                      check=True).stdout.strip()          # whichever 6.12.y the tree is
OUT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent)
_TMP = tempfile.TemporaryDirectory(prefix="mmreview-samples-")
R = os.path.join(_TMP.name, "linux")
ADA = {"GIT_COMMITTER_NAME": "Ada Reviewer", "GIT_COMMITTER_EMAIL": "ada@example.org",
       "GIT_AUTHOR_NAME": "Ada Reviewer", "GIT_AUTHOR_EMAIL": "ada@example.org", "LC_ALL": "C"}


def git(*a, env=None):
    e = dict(os.environ, **ADA)
    e.update(env or {})
    return subprocess.run(["git", "-C", R, *a], check=True, capture_output=True, text=True, env=e).stdout


def edit(path, old, new):
    p = os.path.join(R, path)
    s = open(p).read()
    assert s.count(old) == 1, (path, old)
    open(p, "w").write(s.replace(old, new))


def commit(msg, date, author=None):
    env = dict(os.environ, **ADA, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    if author:
        env["GIT_AUTHOR_NAME"], env["GIT_AUTHOR_EMAIL"] = author
    subprocess.run(["git", "-C", R, "commit", "-q", "-a", "-F", "-"], input=msg, text=True,
                   check=True, env=env)


def branch(name, start=BASE):
    git("checkout", "-q", "-B", name, start)


def clone():
    subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", TREE, R], check=True)
    # .gitattributes too: it picks the C function-name rule for hunk headers
    git("sparse-checkout", "set", "--no-cone", "/.gitattributes", "/mm/", "/lib/maple_tree.c",
        "/tools/testing/radix-tree/")
    git("checkout", "-q", "master")

MAPLE_TEST = """/*
 * mas_find_range_rev() stops on the empty range between two entries,
 * mas_find_rev() skips it.
 */
static noinline void __init check_find_range_rev(struct maple_tree *mt)
{
	MA_STATE(mas, mt, 0, 0);
	void *entry;

	mtree_store_range(mt, 10, 19, xa_mk_value(1), GFP_KERNEL);
	mtree_store_range(mt, 30, 39, xa_mk_value(3), GFP_KERNEL);

	rcu_read_lock();
	mas_set(&mas, 35);
	entry = mas_find_range_rev(&mas, 0);
	MT_WARN_ON(mt, entry != xa_mk_value(3));
	MT_WARN_ON(mt, mas.index != 30 || mas.last != 39);

	entry = mas_find_range_rev(&mas, 0);
	MT_WARN_ON(mt, entry != NULL);
	MT_WARN_ON(mt, mas.index != 20 || mas.last != 29);

	entry = mas_find_range_rev(&mas, 0);
	MT_WARN_ON(mt, entry != xa_mk_value(1));
	MT_WARN_ON(mt, mas.index != 10 || mas.last != 19);

	mas_set(&mas, 35);
	entry = mas_find_rev(&mas, 0);
	MT_WARN_ON(mt, entry != xa_mk_value(3));
	entry = mas_find_rev(&mas, 0);
	MT_WARN_ON(mt, entry != xa_mk_value(1));
	MT_WARN_ON(mt, mas.index != 10 || mas.last != 19);
	rcu_read_unlock();
}

"""


VMA_DOC_MSG = """mm/vma: fix the kernel-doc header of vma_complete()

The comment above vma_complete() reads "vma_complete- Helper ...", which
kernel-doc does not recognise as a function description, so the helper
is missing from the generated documentation.  Use the "name() - text"
form the neighbouring helpers already use and rewrap the line.

No functional change.

Signed-off-by: Ada Reviewer <ada@example.org>
"""


def fix_vma_complete_doc(message, date):
    """Patch 1 of clean-3 (v2) and of its v1, which differ only in the message."""
    edit("mm/vma.c", """ * vma_complete- Helper function for handling the unlocking after altering VMAs,
 * or for inserting a VMA.""", """ * vma_complete() - Helper function for handling the unlocking after altering
 * VMAs, or for inserting a VMA.""")
    commit(message, date)


def make_clean():
    branch("clean-3")
    fix_vma_complete_doc(VMA_DOC_MSG, "2025-06-02T10:00:00+0200")
    edit("lib/maple_tree.c", """ * mas_find_range_rev: On the first call, find the first non-null entry at or
 * below mas->index down to %min.  Otherwise advance to the previous slot after
 * mas->index down to %min.""", """ * mas_find_range_rev() - On the first call, find the first non-null entry at
 * or below mas->index down to %min.  Otherwise advance to the previous slot
 * after mas->index down to %min, stopping on empty ranges as well.""")
    commit("""maple_tree: fix the kernel-doc header of mas_find_range_rev()

The description of mas_find_range_rev() uses "name:" instead of the
"name() - text" form, so kernel-doc does not pick it up.  While here,
say that later calls stop on empty ranges too: that is what sets it
apart from mas_find_rev(), which skips them.

No functional change.

Signed-off-by: Ada Reviewer <ada@example.org>
""", "2025-06-02T10:05:00+0200")
    edit("tools/testing/radix-tree/maple.c", "void farmer_tests(void)\n",
         MAPLE_TEST + "void farmer_tests(void)\n")
    call = "\tmt_init(&tree);\n\tcheck_bulk_rebalance(&tree);\n\tmtree_destroy(&tree);\n"
    edit("tools/testing/radix-tree/maple.c", call, call + "\n\tmt_init_flags(&tree, MT_FLAGS_ALLOC_RANGE);"
         "\n\tcheck_find_range_rev(&tree);\n\tmtree_destroy(&tree);\n")
    commit("""maple_tree: test that mas_find_range_rev() stops on empty ranges

Add a test for the behaviour the previous patch documents: walking
backwards with mas_find_range_rev() returns the empty range between two
entries, while mas_find_rev() skips it and returns the next entry.

Signed-off-by: Ada Reviewer <ada@example.org>
""", "2025-06-02T10:10:00+0200")

def make_v1():
    # v1 of clean-3: patch 1 has a typo in its message, patch 2 lacks the empty-range remark.
    branch("clean-3-v1")
    # v1's message has the typo the review in thread-v2 points out.
    fix_vma_complete_doc(VMA_DOC_MSG.replace("function description", "function descripton"),
                         "2025-05-26T09:00:00+0200")
    edit("lib/maple_tree.c", """ * mas_find_range_rev: On the first call, find the first non-null entry at or
 * below mas->index down to %min.  Otherwise advance to the previous slot after
 * mas->index down to %min.""", """ * mas_find_range_rev() - On the first call, find the first non-null entry at
 * or below mas->index down to %min.  Otherwise advance to the previous slot
 * after mas->index down to %min.""")
    commit("""maple_tree: fix the kernel-doc header of mas_find_range_rev()

The description of mas_find_range_rev() uses "name:" instead of the
"name() - text" form, so kernel-doc does not pick it up.

No functional change.

Signed-off-by: Ada Reviewer <ada@example.org>
""", "2025-05-26T09:05:00+0200")
    # patch 3 identical to clean-3's
    diff = git("show", "clean-3", "--format=", "--", "tools/testing/radix-tree/maple.c")
    subprocess.run(["git", "-C", R, "apply"], input=diff, text=True, check=True)
    commit(git("log", "-1", "--format=%B", "clean-3"), "2025-05-26T09:10:00+0200")
def make_noapply():
    branch("no-apply")
    # X: a change the series was made on top of, but never sent (think mm-unstable).
    edit("mm/mmap.c", """ * Note that RCU lock is missing here since the external mmap_lock() is used
 * instead.""", """ * The caller holds the mmap_lock, so no RCU read lock is taken here.""")
    commit("""mm/mmap: reword the locking note of find_vma_prev()

Signed-off-by: Ada Reviewer <ada@example.org>
""", "2025-06-09T08:55:00+0200")
    edit("mm/mmap.c", "existing mapping within it's guard gaps", "existing mapping within its guard gaps")
    commit("""mm/mmap: fix a typo in the stack_guard_placement() comment

"it's" is "it is"; the comment means the possessive.

Signed-off-by: Ada Reviewer <ada@example.org>
""", "2025-06-09T09:00:00+0200")
    edit("mm/mmap.c", """ * Returns: The VMA associated with @addr, or the next vma.
 * May return %NULL in the case of no vma at addr or above.
 */
struct vm_area_struct *
find_vma_prev(""", """ * Returns: The VMA associated with @addr, or the next VMA.
 * May return %NULL in the case of no VMA at @addr or above.
 */
struct vm_area_struct *
find_vma_prev(""")
    commit("""mm/mmap: spell VMA consistently in the find_vma_prev() comment

The kernel-doc of find_vma_prev() mixes "VMA" and "vma" and refers to
the address without its @ marker.  Make it match find_vma() above it.

Signed-off-by: Ada Reviewer <ada@example.org>
""", "2025-06-09T09:05:00+0200")
    edit("mm/vma.h", " * @unlock: Unlock after the operation.  Only unlocked on success\n",
         " * @unlock: Unlock after the operation.  Only unlocked on success.\n")
    commit("""mm/vma: end the @unlock description of init_vma_munmap() with a period

Every other parameter description of init_vma_munmap() is a sentence
that ends with a period; make @unlock match.

Signed-off-by: Ada Reviewer <ada@example.org>
""", "2025-06-09T09:10:00+0200")
def make_enc():
    branch("encodings")
    edit("mm/vma.c", "/*\n * Requires inode->i_mapping->i_mmap_rwsem\n */",
         "/*\n * Requires inode->i_mapping->i_mmap_rwsem to be held for writing.\n */")
    commit("""mm/vma: say how i_mmap_rwsem must be held in __remove_shared_vm_struct()

Every caller takes i_mmap_lock_write() first; say so, so nobody reads
"requires" as "a read lock is enough".

Signed-off-by: Zoë Lefèvre <zoe@example.org>
""", "2025-06-16T14:00:00+0200", author=("Zoë Lefèvre", "zoe@example.org"))
    edit("mm/vma.h", "/* Assumes addr >= vma->vm_start. */",
         "/* Page offset of @addr in @vma, assumes addr >= vma->vm_start. */")
    commit("""mm/vma: say what vma_pgoff_offset() returns

The comment only gave the precondition; add what the helper computes.

Signed-off-by: Ada Reviewer <ada@example.org>
""", "2025-06-16T14:05:00+0200")
    edit("lib/maple_tree.c", " * Return: The entry higher than @index or %NULL if nothing is found.\n */\nvoid *mt_next(",
         " * Return: The next entry above @index up to @max, or %NULL if none is found.\n */\nvoid *mt_next(")
    commit("""maple_tree: mention @max in the mt_next() return description

mt_next() stops at @max; say so where the return value is described.

Suggested-by: Zoë Lefèvre <zoe@example.org>
Signed-off-by: Ada Reviewer <ada@example.org>
""", "2025-06-16T14:10:00+0200")


# ---------------------------------------------------------------- commits
clone()
make_clean()
make_v1()
make_noapply()
make_enc()

# ---------------------------------------------------------------- mail
TO = ["--to=linux-mm@kvack.org", "--cc=Bea Maintainer <bea@example.net>"]


def fmt(rng, stamp, cover_date, subject, blurb, extra=()):
    d = Path(_TMP.name) / "fp" / stamp
    subprocess.run(["rm", "-rf", str(d)], check=True)
    subprocess.run(["git", "-C", R, "-c", "user.name=Ada Reviewer", "-c", "user.email=ada@example.org", "format-patch", "-q", "--thread=shallow", "--cover-letter",
                    f"--base={BASE}", *TO, *extra, "-o", str(d), rng], check=True)
    msgs = []
    for f in sorted(d.iterdir()):
        t = f.read_text()
        t = re.sub(r"\.\d{10}\.git\.", f".{stamp}.git.", t)
        # --base for no-apply's prerequisite-patch-id:, but no base-commit: (see the docstring)
        t = re.sub(r"\n\nbase-commit: [0-9a-f]{40}\n", "\n", t)
        if "cover-letter" in f.name:
            t = re.sub(r"^Date: .*$", f"Date: {cover_date}", t, count=1, flags=re.M)
            t = t.replace("*** SUBJECT HERE ***", subject).replace("*** BLURB HERE ***", blurb.strip())
        msgs.append(t)
    return msgs


CLEAN_SUBJ = "mm, maple_tree: kernel-doc fixes and a mas_find_range_rev() test"
CLEAN_BLURB = """
Two kernel-doc headers in mm/vma.c and lib/maple_tree.c use a form that
kernel-doc does not pick up; fix them.  The maple tree one also says what
sets mas_find_range_rev() apart from mas_find_rev(), and patch 3 adds a
test for exactly that to tools/testing/radix-tree.

Built and run with 'make -C tools/testing/radix-tree maple xarray' on
x86_64.
"""
clean = fmt(f"{BASE}..clean-3", "1748851200", "Mon, 2 Jun 2025 09:55:00 +0200", CLEAN_SUBJ, CLEAN_BLURB)
(OUT / "clean-3.mbox").write_text("".join(clean))

# --- thread-v2: v1, review of v1, an unrelated mail, v2, reviews of v2
v1 = fmt(f"{BASE}..clean-3-v1", "1748242800", "Mon, 26 May 2025 08:55:00 +0200", CLEAN_SUBJ, CLEAN_BLURB)
v2 = fmt(f"{BASE}..clean-3", "1748851201", "Mon, 2 Jun 2025 09:55:00 +0200", CLEAN_SUBJ,
         CLEAN_BLURB + """
Changes in v2:
- patch 1: fix a typo in the commit message (Bea)
- patch 2: say that mas_find_range_rev() stops on empty ranges (Bea)
- v1: https://lore.kernel.org/all/cover.1748242800.git.ada@example.org/
""", extra=["-v2"])


def mid(msgs, i):
    return re.search(r"^Message-I[dD]: <([^>]+)>", msgs[i], re.M).group(1)


def subj(msgs, i):
    m = re.search(r"^Subject: (.*(?:\n .*)*)", msgs[i], re.M).group(1)
    return re.sub(r"\n\s+", " ", m)


def reply(frm, date, msgs, i, body, msgid):
    parent = mid(msgs, i)
    asc = time.asctime(time.gmtime(email.utils.mktime_tz(email.utils.parsedate_tz(date))))
    return f"""From {re.search(r'<(.*)>', frm).group(1)} {asc}
From: {frm}
Date: {date}
Subject: Re: {subj(msgs, i)}
Message-ID: <{msgid}>
In-Reply-To: <{parent}>
References: <{mid(msgs, 0)}> <{parent}>
To: Ada Reviewer <ada@example.org>
Cc: linux-mm@kvack.org
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

{body.lstrip()}
"""


def quoted_diff(msg, nlines=14):
    diff = msg[msg.index("diff --git"):].split("\n-- \n")[0].splitlines()
    return "\n".join("> " + l if l else ">" for l in diff[:nlines])


BEA = "Bea Maintainer <bea@example.net>"
r1 = reply(BEA, "Tue, 27 May 2025 10:12:00 +0200", v1, 1, """
On Mon, May 26, 2025 at 09:00:00AM +0200, Ada Reviewer wrote:
> kernel-doc does not recognise as a function descripton, so the helper

s/descripton/description/
""", "20250527081200.aaaa1@bea.example.net")
r2 = reply(BEA, "Tue, 27 May 2025 10:20:00 +0200", v1, 2, f"""
On Mon, May 26, 2025 at 09:05:00AM +0200, Ada Reviewer wrote:
{quoted_diff(v1[2])}

While you are here: please say that later calls stop on empty ranges,
that is the whole difference to mas_find_rev() and what your test in
patch 3 checks.
""", "20250527082000.aaaa2@bea.example.net")
noise = """From cy@example.com Wed May 28 07:30:00 2025
From: Cy Tester <cy@example.com>
Date: Wed, 28 May 2025 07:30:00 +0000
Subject: maple tree test runs on big-endian this week
Message-ID: <20250528073000.cccc1@example.com>
To: linux-mm@kvack.org
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Hi all,

the weekly radix-tree/maple runs on s390x and ppc64 were green for
everything in mm-unstable as of Tuesday.  Nothing to do, just a heads-up
that the runners are back.

Cy
"""
r3 = reply(BEA, "Tue, 3 Jun 2025 09:41:00 +0200", v2, 2, f"""
On Mon, Jun 02, 2025 at 10:05:00AM +0200, Ada Reviewer wrote:
{quoted_diff(v2[2])}

Thanks, reads right now.

Reviewed-by: {BEA}
""", "20250603074100.aaaa3@bea.example.net")
r4 = reply("Cy Tester <cy@example.com>", "Tue, 3 Jun 2025 12:02:00 +0000", v2, 0, """
On Mon, Jun 02, 2025 at 09:55:00AM +0200, Ada Reviewer wrote:
> Built and run with 'make -C tools/testing/radix-tree maple xarray' on
> x86_64.

Ran the new test on s390x and ppc64 too: all green.

Tested-by: Cy Tester <cy@example.com>
""", "20250603120200.cccc2@example.com")
thread = v1 + [r1, r2, noise] + v2 + [r3, r4]
(OUT / "thread-v2.mbox").write_text("\n".join(m.rstrip("\n") + "\n" for m in thread))

# --- no-apply: made on top of an unsent change (prerequisite-patch-id)
na = fmt("no-apply~3..no-apply", "1749452400", "Mon, 9 Jun 2025 08:58:00 +0200",
         "mm: comment fixes in mmap.c and vma.h", """
Three comment fixes in mm/.  These were made on top of my local
find_vma_prev() rework, which is not part of this posting.
""")
(OUT / "no-apply.mbox").write_text("".join(na))

# --- encodings: QP cover, base64 + latin-1 From header, QP patch, latin-1 8bit CRLF patch
enc = fmt(f"{BASE}..encodings", "1750075200", "Mon, 16 Jun 2025 13:55:00 +0200",
          "mm/vma, maple_tree: three small comment fixes", """
Three small comment fixes: two in mm/vma.[ch], one in lib/maple_tree.c.
Patch 1 is from Zoë Lefèvre, who found the i_mmap_rwsem wording while
reviewing the vma_prepare() locking — thanks, Zoë.
""")


def split(msg):
    head, body = msg.split("\n\n", 1)
    return head, body


def set_cte(head, cte, charset="UTF-8"):
    if "Content-Transfer-Encoding:" not in head:   # git leaves plain ASCII mail without MIME headers
        head += "\nMIME-Version: 1.0\nContent-Type: text/plain\nContent-Transfer-Encoding: 8bit"
    head = re.sub(r"^Content-Type: .*$", f"Content-Type: text/plain; charset={charset}", head, flags=re.M)
    return re.sub(r"^Content-Transfer-Encoding: .*$", f"Content-Transfer-Encoding: {cte}", head, flags=re.M)


def qp(body: bytes) -> str:
    return email.quoprimime.body_encode(body.decode("latin-1"), maxlinelen=76)


out = []
# cover: quoted-printable UTF-8
h, b = split(enc[0])
out.append((set_cte(h, "quoted-printable") + "\n\n" + qp(b.encode("utf-8")) + "\n\n").encode())
# patch 1: base64 body, latin-1 encoded-word author
h, b = split(enc[1])
h = re.sub(r"^From: .*$", "From: =?iso-8859-1?q?Zo=EB_Lef=E8vre?= <zoe@example.org>", h, flags=re.M)
b64 = base64.encodebytes(b.encode("utf-8")).decode()
out.append((set_cte(h, "base64") + "\n\n" + b64 + "\n").encode())
# patch 2: quoted-printable ('=' in the C context lines gets encoded)
h, b = split(enc[2])
out.append((set_cte(h, "quoted-printable") + "\n\n" + qp(b.encode("utf-8")) + "\n\n").encode())
# patch 3: latin-1 8bit body, CRLF line endings throughout, the Subject folded (git did it)
h, b = split(enc[3])
assert "\n description" in h
raw = (set_cte(h, "8bit", "ISO-8859-1") + "\n\n" + b).encode("latin-1")
out.append(raw.replace(b"\n", b"\r\n"))
(OUT / "encodings.mbox").write_bytes(b"".join(out))

# --- reusable bad inputs
(OUT / "bad").mkdir(exist_ok=True)
(OUT / "bad" / "missing-2.mbox").write_text(clean[0] + clean[1] + clean[3])
(OUT / "bad" / "corrupt-hunk.mbox").write_text(
    "".join(clean[:3]) + clean[3].replace("@@ -36339,6 +36339,41 @@", "@@ -36339,6 +36339,44 @@"))

