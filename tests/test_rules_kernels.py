"""The rules on every kernel mmreview supports: 6.1 LTS, 6.12 (the default tree) and 7.3.

Each tree's own mm/rmap.c is parsed (every lock line maps to lock APIs, the page/folio lock too on 6.1);
each rule's sample series (written against 6.12, see conftest_rules.py) is made again at run time on
the other trees - the same edit where that kernel keeps the function (dup_mmap() in kernel/fork.c or
mm/mmap.c, do_brk_flags() in mm/mmap.c or mm/vma.c), or the same kind of edit where the code differs -
with `git format-patch` in a scratch clone at that tree's HEAD; positives are caught and negatives not
flagged.  `mmreview rules --explain lock-order --tree T` prints that tree's own order.  Real trees,
real git, no mocks."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import git, mmreview
from conftest_rules import EXPECT, SAMPLES, make_mbox, scratch_clone
from mmreview.apply.checkout import apply_series
from mmreview.intake.read import load_series
from mmreview.rules.analysis.lockorder import is_mapped, parse_hierarchy
from mmreview.rules.engine import run_rules
from mmreview.kernel.trees import open_tree

KERNELS = ["6.1", "6.12", "7.3"]
FIXTURE = {"6.1": "tree_61", "6.12": "kernel_tree", "7.3": "tree_73"}


@pytest.fixture(scope="module", params=KERNELS)
def ktree(request) -> tuple[str, Path]:
    return request.param, request.getfixturevalue(FIXTURE[request.param])


def head(tree: Path) -> str:
    return git(tree, "rev-parse", "HEAD")


def rmap(tree: Path) -> str:
    return git(tree, "show", "HEAD:mm/rmap.c")


# ------------------------------------------------------------------ the hierarchy of each tree

def test_every_lock_line_maps(ktree):
    version, tree = ktree
    hier = parse_hierarchy(rmap(tree))
    assert hier.unmapped() == [], [n.text for n in hier.unmapped()]
    for _, n in hier.nodes():
        assert n.ids and all(is_mapped(i) for i in n.ids), n
    order = hier.order_for("mm/filemap.c", "filemap_fault")
    for pair in [("mmap_lock", "folio_lock"), ("invalidate_lock", "folio_lock"), ("folio_lock", "i_mmap_rwsem"),
                 ("folio_lock", "anon_vma_rwsem"), ("folio_lock", "ptl"), ("i_mmap_rwsem", "anon_vma_rwsem")]:
        assert pair in order, (version, pair)
    huge = hier.order_for("mm/hugetlb.c", "hugetlb_fault")
    assert ("i_mmap_rwsem", "folio_lock") in huge and ("folio_lock", "i_mmap_rwsem") not in huge
    # the hugetlbfs lockdep class line orders nothing below it: i_mmap_rwsem is never ordered both ways
    assert not ({("i_mmap_rwsem", "vma_write"), ("vma_write", "i_mmap_rwsem")} <= set(order))


def test_61_spells_the_page_lock_its_own_way(tree_61):
    hier = parse_hierarchy(rmap(tree_61))
    page = [n for _, n in hier.nodes() if "PG_locked" in n.text]
    assert len(page) == 2 and all(n.ids == ["folio_lock"] for n in page)    # main and hugetlb blocks
    order = hier.order_for("mm/memory.c", "do_fault")
    o = order[("folio_lock", "i_mmap_rwsem")]
    assert "PG_locked" in o.before_line and o.after_line == "mapping->i_mmap_rwsem"
    assert "move_lock" in {i for _, n in hier.nodes() for i in n.ids}      # gone from 7.3's comment


def test_73_order_differs(tree_73, kernel_tree):
    new, old = parse_hierarchy(rmap(tree_73)), parse_hierarchy(rmap(kernel_tree))
    ids = lambda h: {i for _, n in h.nodes() for i in n.ids}
    assert "move_lock" in ids(old) and "move_lock" not in ids(new)


def test_unmapped_line_is_a_note_not_a_gap(kernel_tree, tmp_path):
    """A lock line no lock API maps to is reported as a note of the review, and the locks around it
    are still ordered against each other."""
    clone = scratch_clone(kernel_tree, tmp_path / "linux", ["/mm/", "/.gitattributes"], base=head(kernel_tree))
    text = (clone / "mm/rmap.c").read_text()
    text = text.replace(" *                     mmlist_lock (in mmput, drain_mmlist and others)\n",
                        " *                     mmlist_lock (in mmput, drain_mmlist and others)\n"
                        " *                     frob->widget_seqlock (in frob_widgets)\n", 1)
    (clone / "mm/rmap.c").write_text(text)
    git(clone, "commit", "-q", "-am", "mm/rmap: a lock nobody can take")
    base = head(clone)
    name = "rules-lock-order-pos"
    subject, blurb, patches = SAMPLES[name]
    mbox = tmp_path / "s.mbox"
    mbox.write_bytes(make_mbox(clone, subject, blurb, patches, base=base))
    tree = open_tree(str(clone))
    series = load_series(str(mbox), tree)
    with apply_series(tree, series) as co:
        assert co.base_sha == base
        res = run_rules(series, co, ignore=("checkpatch",))
    assert [f.rule for f in res.findings] == ["lock-order"]           # still caught
    (note,) = [n for n in res.notes if n.rule == "lock-order"]
    assert note.file == "mm/rmap.c" and note.line > 0 and "frob->widget_seqlock" in note.message
    assert "frob->widget_seqlock" in str(note) and "mm/rmap.c:" in str(note)
    assert res.to_json()["notes"][0]["rule"] == "lock-order"
    p = mmreview("rules", "--explain", "lock-order", "--tree", str(clone))
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr
    assert "UNMAPPED" in out and "frob->widget_seqlock" in out.split("unmapped lines")[1]


def test_explain_shows_the_trees_own_order(ktree):
    version, tree = ktree
    p = mmreview("rules", "--explain", "lock-order", "--tree", str(tree))
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr
    assert head(tree)[:12] in out and "every lock line maps to lock APIs" in out
    rows = [m.groups() for l in out.splitlines() if (m := re.match(r"^\s+(\d+): (.*?)  -> ", l))]
    names = [n.strip() for _, n in rows]
    page = "page->flags PG_locked" if version == "6.1" else "folio_lock"
    assert names[:4] == ["inode->i_rwsem", "mm->mmap_lock", "mapping->invalidate_lock", page]
    assert ("vma_start_write" in names) == (version != "6.1")
    assert ("folio_lock_memcg move_lock" in names) == (version != "7.3")
    assert "lock_page" in out and "folio_lock" in out
    # the numbers are the tree's own rmap.c lines
    src = rmap(tree).splitlines()
    for no, name in rows:
        assert name.strip().split(",")[0] in src[int(no) - 1]


# ------------------------------------------------------------------ the samples on each tree

# Where an edit of a sample goes on another kernel: the file that defines this function there.
HOMES = {("kernel/fork.c", None): "dup_mmap",
         ("mm/mmap.c", "rules-maple-store-alloc"): "do_brk_flags",
         ("mm/mmap.c", "rules-checkpatch"): "do_brk_flags",
         ("mm/vma.c", "rules-exit-mmap-complication"): "remove_vma",
         ("mm/mmap.c", "rules-exit-mmap-complication"): "exit_mmap"}
# The same edit in another kernel's spelling: (old, new) substitutions on every edit's text.
SPELLING = {
    "6.1": [("vma_iter_store_gfp(vmi, vma, GFP_KERNEL)", "mas_store_gfp(mas, vma, GFP_KERNEL)"),
            ("struct vm_area_struct *vma, bool unreachable)", "struct vm_area_struct *vma)")],
    "7.3": [("anon_vma_interval_tree_pre_update_vma", "anon_rmap_tree_pre_update_vma"),
            ("\tBUG_ON(count != mm->map_count);\n", "\tVM_WARN_ON_ONCE(count != mm->map_count);\n"),
            ("struct vm_area_struct *vma, bool unreachable)", "struct vm_area_struct *vma)")],
}
_CHECK_DUP = "static noinline void __init check_dup(struct maple_tree *mt)\n{\n\tint i;\n\tint big_start = 100010;\n"
_61_ANON = ("\tanon_vma = vma->anon_vma;\n\tif (!anon_vma && adjust_next)\n\t\tanon_vma = next->anon_vma;\n"
            "\tif (anon_vma) {\n\t\tVM_WARN_ON(adjust_next && next->anon_vma &&\n\t\t\t   anon_vma != next->anon_vma);\n"
            "\t\tanon_vma_lock_write(anon_vma);\n\t\tanon_vma_interval_tree_pre_update_vma(vma);\n"
            "\t\tif (adjust_next)\n\t\t\tanon_vma_interval_tree_pre_update_vma(next);\n\t}\n")
_61_SPLIT = "\t\thugetlb_split(orig_vma, end);\n\t}\n"
_61_FILE = "\tif (file) {\n\t\tmapping = file->f_mapping;\n\t\troot = &mapping->i_mmap;\n"
# 6.1 has neither mm/vma.c nor vma_prepare(): the same reordering in __vma_adjust(), which took the
# two rmap locks in the same order before vma_prepare() existed.
_61_LOCK_ORDER = {
    "rules-lock-order-pos": [(
        "mm/mmap: take the anon_vma lock first in __vma_adjust()",
        "Take the anon_vma lock before the file's i_mmap lock: it reads better.",
        [("mm/mmap.c", _61_ANON, ""),
         ("mm/mmap.c", _61_SPLIT + _61_FILE, _61_SPLIT + _61_ANON + "\n" + _61_FILE)])],
    "rules-lock-order-neg": [(
        "mm/mmap: say where __vma_adjust() takes the anon_vma lock",
        "Keep the documented order: the file's i_mmap lock first, then\nthe anon_vma lock.",
        [("mm/mmap.c", _61_ANON, "\t/* after i_mmap_rwsem, as mm/rmap.c documents */\n" + _61_ANON)])],
}
_61_EXPECT = {"rules-lock-order-pos": [("lock-order", 1, "mm/mmap.c", "anon_vma_lock_write(anon_vma);")]}
_61_XA_ZERO = [(
    "fork: mark the failure point when a vma store fails in dup_mmap()",
    "Leave an XA_ZERO_ENTRY where the copy stopped, for exit_mmap().",
    [("kernel/fork.c", "\t\tmas_store(&mas, tmp);\n\t\tif (mas_is_err(&mas))\n\t\t\tgoto fail_nomem_mas_store;\n",
      "\t\tmas_store(&mas, tmp);\n\t\tif (mas_is_err(&mas)) {\n\t\t\tmas_store(&mas, XA_ZERO_ENTRY);\n"
      "\t\t\tgoto fail_nomem_mas_store;\n\t\t}\n")])]
# What a sample does on a kernel where its premise does not hold, instead of being caught:
# (rule, the not-applied reason it must give).
NOT_APPLICABLE = {
    ("6.1", "rules-vma-free-rcu-pos"): ("vma-free-rcu", "no per-VMA locks"),
    # __mt_dup() (the function the sample changes) came with 6.8's dup_mmap() rework
    ("6.1", "rules-error-path-needs-test-pos"): None,
    ("6.1", "rules-error-path-needs-test-neg"): None,
}


def _home(tree: Path, function: str) -> str:
    out = subprocess.run(["git", "-C", str(tree), "grep", "-l", "-E",
                          rf"^([A-Za-z_].*[^A-Za-z0-9_])?{function}\(", "HEAD", "--", "mm/*.c", "kernel/*.c"],
                         capture_output=True, text=True).stdout.split()
    paths = [p.split(":", 1)[1] for p in out if not p.endswith("nommu.c")]
    assert len(paths) == 1, (function, paths)
    return paths[0]


def variant(version: str, tree: Path, name: str):
    """(patches, expect) of sample `name` made for `version`, or None when it cannot be."""
    subject, blurb, patches = SAMPLES[name]
    expect = list(EXPECT[name])
    if version == "6.12":
        return patches, expect
    if (version, name) in NOT_APPLICABLE and NOT_APPLICABLE[(version, name)] is None:
        return None
    if version == "6.1" and name in _61_LOCK_ORDER:
        return _61_LOCK_ORDER[name], _61_EXPECT.get(name, [])
    if version == "6.1" and name == "rules-xa-zero-marker-pos":
        patches = _61_XA_ZERO
        expect = [("xa-zero-marker", 1, "kernel/fork.c", "mas_store(&mas, XA_ZERO_ENTRY);")]
    stem = name.rsplit("-", 1)[0]
    moved: dict[str, str] = {}

    def where(path):
        fn = HOMES.get((path, None)) or HOMES.get((path, stem))
        if fn and path not in moved:
            moved[path] = _home(tree, fn)
        return moved.get(path, path)

    def spell(text):
        for a, b in SPELLING.get(version, []):
            text = text.replace(a, b)
        return text

    out = []
    for subj, body, edits in patches:
        new_edits = []
        for path, old, new in edits:
            if old is not None:
                if path == "lib/test_maple_tree.c" and old == _CHECK_DUP and version == "7.3":
                    # 7.3's lib/test_maple_tree.c has no check_dup(): the same test code, in a function
                    # of its own
                    fn = ("static noinline void __init check_dup_more(struct maple_tree *mt)\n{\n"
                          + new[len(old):] + "}\n\n")
                    anchor = "static noinline void __init check_load(struct maple_tree *mt,"
                    new_edits.append((path, anchor, fn + anchor))
                    continue
                old, new = spell(old), spell(new)
            new_edits.append((where(path), old, new))
        out.append((subj, body, new_edits))
    expect = [(r, p, where(f), spell(snip)) for r, p, f, snip in expect]
    return out, expect


@pytest.fixture(scope="module")
def kernel_results(ktree, tmp_path_factory):
    """Every sample, made for this tree and reviewed on it: name -> (result, texts, expect) or None."""
    version, tree = ktree
    base = head(tree)
    clone = scratch_clone(tree, tmp_path_factory.mktemp(f"k{version}") / "linux",
                          ["/mm/", "/kernel/", "/lib/", "/.gitattributes"], base=base)
    t = open_tree(str(tree))
    out = {}
    for name in sorted(SAMPLES):
        v = variant(version, tree, name)
        if v is None:
            out[name] = None
            continue
        patches, expect = v
        subject, blurb, _ = SAMPLES[name]
        mbox = clone.parent / f"{name}.mbox"
        mbox.write_bytes(make_mbox(clone, subject, blurb, patches, base=base))
        series = load_series(str(mbox), t)
        with apply_series(t, series) as co:
            assert co.result.ok, (version, name, co.result.to_json())
            assert co.base_sha == base
            res = run_rules(series, co)
            texts = {}
            for f in res.findings:
                src = co.show(co.rev_after(f.patch), f.file) if f.file else None
                if src is not None:
                    texts[(f.patch, f.file, f.line)] = src.decode().splitlines()[f.line - 1]
        out[name] = (res, texts, expect)
    return version, out


@pytest.mark.parametrize("name", sorted(n for n in SAMPLES if n.endswith("-pos")))
def test_positive_caught_on_every_kernel(kernel_results, name):
    version, results = kernel_results
    got = results[name]
    na = NOT_APPLICABLE.get((version, name), "")
    if got is None:
        assert (version, name) in NOT_APPLICABLE
        return
    res, texts, expect = got
    if na:
        rule, why = na
        assert not [f for f in res.findings if f.rule == rule], res.to_json()["findings"]
        assert any(n.rule == rule and why in n.reason for n in res.not_applied), res.to_json()
        return
    assert expect
    for rule, patch, path, snippet in expect:
        hits = [f for f in res.findings if f.rule == rule and f.patch == patch and f.file == path
                and snippet in texts.get((f.patch, f.file, f.line), "")]
        assert hits, f"{version}: {rule} not caught at patch {patch} {path} '{snippet}': " \
                     f"{res.to_json()['findings']}"


@pytest.mark.parametrize("name", sorted(n for n in SAMPLES if n.endswith("-neg")))
def test_negative_not_flagged_on_every_kernel(kernel_results, name):
    version, results = kernel_results
    got = results[name]
    if got is None:
        assert (version, name) in NOT_APPLICABLE
        return
    res, _, _ = got
    assert res.findings == [], (version, [f.to_json() for f in res.findings])
    assert res.not_applied == [], (version, res.to_json()["not_applied"])
    assert [n for n in res.notes if n.rule == "lock-order"] == []


def test_page_lock_order_caught_on_61(tree_61, tmp_path):
    """6.1's page lock: lock_page() under i_mmap_rwsem is against the order its rmap.c states."""
    base = head(tree_61)
    clone = scratch_clone(tree_61, tmp_path / "linux", ["/mm/", "/.gitattributes"], base=base)
    old = "static void remove_vma(struct vm_area_struct *vma)\n{\n"
    helper = ("static void lock_mapped_page(struct address_space *mapping, struct page *page)\n{\n"
              "\ti_mmap_lock_read(mapping);\n\tlock_page(page);\n\ti_mmap_unlock_read(mapping);\n"
              "\tunlock_page(page);\n}\n\n")
    patch = ("mm/mmap: lock a mapped page", "A helper.", [("mm/mmap.c", old, helper + old)])
    mbox = tmp_path / "p.mbox"
    mbox.write_bytes(make_mbox(clone, "page lock", "Lock a page.", [patch], base=base))
    t = open_tree(str(tree_61))
    series = load_series(str(mbox), t)
    with apply_series(t, series) as co:
        res = run_rules(series, co, ignore=("checkpatch",), only=("lock-order",))
    (f,) = res.findings
    assert f.function == "lock_mapped_page" and "PG_locked" in f.excerpt[0]
    assert "mapping->i_mmap_rwsem" in f.excerpt[1]


def test_xa_zero_rules_on_a_kernel_without_the_marker(tree_73):
    """7.3 dropped XA_ZERO_ENTRY from dup_mmap()/exit_mmap(): the base has none, so nothing there to
    excuse or to trip over; the samples above show a series bringing it back is still caught."""
    src = git(tree_73, "grep", "-n", "XA_ZERO_ENTRY\\|xa_is_zero", "HEAD", "--", "mm/", "kernel/fork.c",
              check=False)
    assert "mm/mmap.c" not in src and "kernel/fork.c" not in src
