"""Sample series for the review rules: written here as edits, turned into real
`git format-patch --cover-letter --base=<base>` output in a scratch clone of the tree.

`python3 tests/conftest_rules.py [NAME...]` regenerates series/rules-<rule>-{pos,neg}.mbox
(without a base-commit: line, which would name one Debian version's import; they apply on any
6.12.y); tests read the committed mbox files and `EXPECT` says where each positive must be caught.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AUTHOR = ("Ada Reviewer", "ada@example.org")
SOB = f"Signed-off-by: {AUTHOR[0]} <{AUTHOR[1]}>"

# name -> (cover subject, cover blurb, [(subject, body, [(path, old, new)])])
SAMPLES: dict[str, tuple[str, str, list]] = {}
# name -> [(rule, patch number, file, line-text-substring)]: where a positive must be caught
EXPECT: dict[str, list[tuple[str, int, str, str]]] = {}


def sample(name, subject, blurb, patches, expect=()):
    SAMPLES[name] = (subject, blurb, patches)
    EXPECT[name] = list(expect)


# ---------------------------------------------------------------- lock-order
sample("rules-lock-order-pos", "mm/vma: simplify vma_prepare() locking",
       "Take the anon_vma lock up front in vma_prepare() so the interval tree\n"
       "updates read top to bottom, and tidy the comment in vma_complete().",
       [("mm/vma: take the anon_vma lock first in vma_prepare()",
         "vma_prepare() takes the file's i_mmap lock and then the anon_vma lock\n"
         "in two separate blocks.  Take the anon_vma lock first, which lets the\n"
         "anon interval tree updates sit next to each other and reads better.",
         [("mm/vma.c",
           "static void vma_prepare(struct vma_prepare *vp)\n{\n\tif (vp->file) {\n",
           "static void vma_prepare(struct vma_prepare *vp)\n{\n"
           "\tif (vp->anon_vma) {\n\t\tanon_vma_lock_write(vp->anon_vma);\n"
           "\t\tanon_vma_interval_tree_pre_update_vma(vp->vma);\n\t\tif (vp->adj_next)\n"
           "\t\t\tanon_vma_interval_tree_pre_update_vma(vp->adj_next);\n\t}\n\n\tif (vp->file) {\n"),
          ("mm/vma.c",
           "\t}\n\n\tif (vp->anon_vma) {\n\t\tanon_vma_lock_write(vp->anon_vma);\n"
           "\t\tanon_vma_interval_tree_pre_update_vma(vp->vma);\n\t\tif (vp->adj_next)\n"
           "\t\t\tanon_vma_interval_tree_pre_update_vma(vp->adj_next);\n\t}\n\n\tif (vp->file) {\n"
           "\t\tflush_dcache_mmap_lock(vp->mapping);",
           "\t}\n\n\tif (vp->file) {\n\t\tflush_dcache_mmap_lock(vp->mapping);")]),
        ("mm/vma: document the unlock order in vma_complete()",
         "Say why the locks are dropped in the order they are.",
         [("mm/vma.c",
           "static void vma_complete(struct vma_prepare *vp, struct vma_iterator *vmi,\n"
           "\t\t\t struct mm_struct *mm)\n{\n",
           "static void vma_complete(struct vma_prepare *vp, struct vma_iterator *vmi,\n"
           "\t\t\t struct mm_struct *mm)\n{\n"
           "\t/* Unlock in the reverse order of vma_prepare(). */\n")])],
       expect=[("lock-order", 1, "mm/vma.c", "anon_vma_lock_write(vp->anon_vma);")])

sample("rules-lock-order-neg", "mm/vma: split the anon_vma part out of vma_prepare()",
       "A small helper for the anon_vma half of vma_prepare(), keeping the\n"
       "documented order: the file's i_mmap lock first, then the anon_vma lock.",
       [("mm/vma: factor out vma_prepare_anon()",
         "Move the anon_vma locking and interval tree preparation of\n"
         "vma_prepare() into its own helper.  It is still called after the\n"
         "file's i_mmap_rwsem is taken, as mm/rmap.c documents.",
         [("mm/vma.c",
           "static void vma_prepare(struct vma_prepare *vp)\n{\n",
           "static void vma_prepare_anon(struct vma_prepare *vp)\n{\n"
           "\tanon_vma_lock_write(vp->anon_vma);\n"
           "\tanon_vma_interval_tree_pre_update_vma(vp->vma);\n\tif (vp->adj_next)\n"
           "\t\tanon_vma_interval_tree_pre_update_vma(vp->adj_next);\n}\n\n"
           "static void vma_prepare(struct vma_prepare *vp)\n{\n"),
          ("mm/vma.c",
           "\tif (vp->anon_vma) {\n\t\tanon_vma_lock_write(vp->anon_vma);\n"
           "\t\tanon_vma_interval_tree_pre_update_vma(vp->vma);\n\t\tif (vp->adj_next)\n"
           "\t\t\tanon_vma_interval_tree_pre_update_vma(vp->adj_next);\n\t}\n\n\tif (vp->file) {\n"
           "\t\tflush_dcache_mmap_lock(vp->mapping);",
           "\t/* i_mmap_rwsem (above) nests outside anon_vma->rwsem */\n"
           "\tif (vp->anon_vma)\n\t\tvma_prepare_anon(vp);\n\n\tif (vp->file) {\n"
           "\t\tflush_dcache_mmap_lock(vp->mapping);")])])

# ---------------------------------------------------------------- exit-mmap-complication
sample("rules-exit-mmap-complication-pos", "mm: cope with a partially duplicated tree on exit",
       "Teach remove_vma() to step over the dup_mmap() failure marker.",
       [("mm/vma: skip the dup_mmap() failure marker in remove_vma()",
         "If dup_mmap() fails part way, the tree holds an XA_ZERO_ENTRY where\n"
         "the copy stopped.  Make remove_vma() ignore it so that exit_mmap()\n"
         "can walk the whole tree.",
         [("mm/vma.c",
           "void remove_vma(struct vm_area_struct *vma, bool unreachable)\n{\n\tmight_sleep();\n",
           "void remove_vma(struct vm_area_struct *vma, bool unreachable)\n{\n\tmight_sleep();\n"
           "\t/* dup_mmap() may have left its failure marker here */\n"
           "\tif (unlikely(xa_is_zero(vma)))\n\t\treturn;\n\n")])],
       expect=[("exit-mmap-complication", 1, "mm/vma.c", "if (unlikely(xa_is_zero(vma)))")])

sample("rules-exit-mmap-complication-neg", "mm: do not crash on a map_count mismatch at exit",
       "Warn instead of BUG when exit_mmap() counts a different number of VMAs.",
       [("mm/mmap: warn rather than BUG on a map_count mismatch in exit_mmap()",
         "A wrong map_count at exit is worth a report, not a crash of the\n"
         "exiting task.  While here, say what the early exit check is for.",
         [("mm/mmap.c",
           "\t\t/* Can happen if dup_mmap() received an OOM */\n",
           "\t\t/*\n\t\t * Can happen if dup_mmap() received an OOM: the tree is\n"
           "\t\t * then empty or starts with an XA_ZERO_ENTRY.\n\t\t */\n"),
          ("mm/mmap.c", "\tBUG_ON(count != mm->map_count);\n",
           "\tWARN_ON_ONCE(count != mm->map_count);\n")])])

# ---------------------------------------------------------------- xa-zero-marker
sample("rules-xa-zero-marker-pos", "fork: mark a failed VM_DONTCOPY clear",
       "Leave a marker for exit_mmap() when clearing a VM_DONTCOPY range fails.",
       [("fork: mark the failure point when clearing a VM_DONTCOPY vma fails",
         "When vma_iter_clear_gfp() fails for a VM_DONTCOPY vma, the rest of\n"
         "the duplicated tree still points at the parent's VMAs.  Store an\n"
         "XA_ZERO_ENTRY over the range so exit_mmap() stops there.",
         [("kernel/fork.c",
           "\t\t\tif (retval)\n\t\t\t\tgoto loop_out;\n\n\t\t\tvm_stat_account(",
           "\t\t\tif (retval) {\n"
           "\t\t\t\tmas_set_range(&vmi.mas, mpnt->vm_start, mpnt->vm_end - 1);\n"
           "\t\t\t\tmas_store(&vmi.mas, XA_ZERO_ENTRY);\n"
           "\t\t\t\tgoto loop_out;\n\t\t\t}\n\n\t\t\tvm_stat_account(")])],
       expect=[("xa-zero-marker", 1, "kernel/fork.c", "mas_store(&vmi.mas, XA_ZERO_ENTRY);")])

sample("rules-xa-zero-marker-neg", "maple_tree: test duplicating a tree with zero entries",
       "Exercise __mt_dup() on a tree that holds XA_ZERO_ENTRY ranges.",
       [("maple_tree: add a zero-entry case to check_dup()",
         "Store XA_ZERO_ENTRY over a range before duplicating the tree, to\n"
         "cover the reserved entry in the duplication test.",
         [("lib/test_maple_tree.c",
           "static noinline void __init check_dup(struct maple_tree *mt)\n{\n\tint i;\n"
           "\tint big_start = 100010;\n",
           "static noinline void __init check_dup(struct maple_tree *mt)\n{\n\tint i;\n"
           "\tint big_start = 100010;\n\tMA_STATE(mas, mt, 10, 19);\n\n"
           "\t/* A reserved range must survive duplication */\n"
           "\tmt_init_flags(mt, MT_FLAGS_ALLOC_RANGE);\n"
           "\tmtree_lock(mt);\n\tmas_store(&mas, XA_ZERO_ENTRY);\n\tmtree_unlock(mt);\n"
           "\tcheck_dup_gaps(mt, 20, true, 5);\n\tmtree_destroy(mt);\n")])])

# ---------------------------------------------------------------- maple-store-alloc
sample("rules-maple-store-alloc-pos", "mm/mmap: do_brk_flags() store failure",
       "Keep going when the tree store in do_brk_flags() fails.",
       [("mm/mmap: warn on a failed store in do_brk_flags()",
         "A failed store here should be loud.  The rewind is not worked out\n"
         "yet, so carry on to the accounting below.",
         [("mm/mmap.c",
           "\tif (vma_iter_store_gfp(vmi, vma, GFP_KERNEL))\n\t\tgoto mas_store_fail;\n",
           "\tif (WARN_ON(vma_iter_store_gfp(vmi, vma, GFP_KERNEL))) {\n"
           "\t\t/*\n\t\t * Rewind not yet worked out: at the very least\n"
           "\t\t * we must unlock if locked, so proceed to below.\n\t\t */\n\t}\n")])],
       expect=[("maple-store-alloc", 1, "mm/mmap.c", "WARN_ON(vma_iter_store_gfp(vmi, vma, GFP_KERNEL))")])

sample("rules-maple-store-alloc-neg", "mm/mmap: do_brk_flags() store failure",
       "Make a failed tree store in do_brk_flags() visible, and still unwind.",
       [("mm/mmap: warn once on a failed store in do_brk_flags()",
         "A failed store here should be loud; keep freeing the vma and\n"
         "unaccounting the memory on that path.",
         [("mm/mmap.c",
           "\tif (vma_iter_store_gfp(vmi, vma, GFP_KERNEL))\n\t\tgoto mas_store_fail;\n",
           "\tif (WARN_ON_ONCE(vma_iter_store_gfp(vmi, vma, GFP_KERNEL)))\n"
           "\t\tgoto mas_store_fail;\n")])])

# ---------------------------------------------------------------- error-path-needs-test
_MT_DUP_OLD = ("\t\tif (ret == -ENOMEM)\n\t\t\tmas_dup_free(&new_mas);\n\t}\n\n\treturn ret;\n}\n"
               "EXPORT_SYMBOL(__mt_dup);\n")
_MT_DUP_NEW = ("\t\tif (ret != -ENOMEM)\n\t\t\tgoto out_destroy;\n"
               "\t\tmas_dup_free(&new_mas);\n\t}\n\n\treturn ret;\n\n"
               "out_destroy:\n\t__mt_destroy(new);\n\treturn ret;\n}\nEXPORT_SYMBOL(__mt_dup);\n")
_MT_DUP_PATCH = ("maple_tree: destroy the new tree on any __mt_dup() failure",
                 "Only -ENOMEM freed the partly built tree; other errors left it\n"
                 "behind.  Destroy it on every failure.",
                 [("lib/maple_tree.c", _MT_DUP_OLD, _MT_DUP_NEW)])
sample("rules-error-path-needs-test-pos", "maple_tree: __mt_dup() error handling",
       "Clean up the new tree on every __mt_dup() failure.", [_MT_DUP_PATCH],
       expect=[("error-path-needs-test", 1, "lib/maple_tree.c", "goto out_destroy;")])

sample("rules-error-path-needs-test-neg", "maple_tree: __mt_dup() error handling",
       "Clean up the new tree on every __mt_dup() failure, with a test.",
       [_MT_DUP_PATCH,
        ("maple_tree: test __mt_dup() into a tree that cannot take it",
         "Duplicate into a destination that is not empty, which must fail\n"
         "and leave the destination empty.",
         [("lib/test_maple_tree.c",
           "static noinline void __init check_dup(struct maple_tree *mt)\n{\n\tint i;\n"
           "\tint big_start = 100010;\n",
           "static noinline void __init check_dup(struct maple_tree *mt)\n{\n\tint i;\n"
           "\tint big_start = 100010;\n\tDEFINE_MTREE(busy);\n\n"
           "\t/* Duplicating into a tree that is in use fails and empties it */\n"
           "\tmt_init_flags(mt, MT_FLAGS_ALLOC_RANGE);\n"
           "\tmtree_store_range(mt, 10, 20, xa_mk_value(10), GFP_KERNEL);\n"
           "\tmtree_store_range(&busy, 1, 2, xa_mk_value(1), GFP_KERNEL);\n"
           "\tWARN_ON_ONCE(!__mt_dup(mt, &busy, GFP_KERNEL));\n"
           "\tWARN_ON_ONCE(!mtree_empty(&busy));\n"
           "\tmtree_destroy(mt);\n")])])

# ---------------------------------------------------------------- vma-free-rcu
sample("rules-vma-free-rcu-pos", "fork: free never-inserted VMAs directly",
       "Skip the RCU grace period for a vma dup_mmap() never published.",
       [("fork: free an unpublished vma without RCU in dup_mmap()",
         "On the fail_nomem_policy path the new vma was never inserted into\n"
         "the tree, so nobody can find it: free it directly instead of going\n"
         "through call_rcu().",
         [("kernel/fork.c", "fail_nomem_policy:\n\tvm_area_free(tmp);\n",
           "fail_nomem_policy:\n\t/* never inserted into the tree: no RCU reader can see it */\n"
           "\t__vm_area_free(tmp);\n")])],
       expect=[("vma-free-rcu", 1, "kernel/fork.c", "__vm_area_free(tmp);")])

sample("rules-vma-free-rcu-neg", "fork: comment the dup_mmap() vma free",
       "Say why the vma on the fail_nomem_policy path still goes through RCU.",
       [("fork: explain the vm_area_free() on the dup_mmap() error path",
         "The vma was never inserted, but vm_area_free() is still the right\n"
         "call: it keeps every vma free on the same RCU path.",
         [("kernel/fork.c", "fail_nomem_policy:\n\tvm_area_free(tmp);\n",
           "fail_nomem_policy:\n\t/* not __vm_area_free(): keep all vma frees on the RCU path */\n"
           "\tvm_area_free(tmp);\n")])])

# ---------------------------------------------------------------- checkpatch
sample("rules-checkpatch-pos", "mm/mmap: brk comments",
       "Explain the expand case in do_brk_flags().",
       [("mm/mmap: explain why do_brk_flags() expands only new VMAs",
         "Spell out the reason in the comment.",
         [("mm/mmap.c",
           "\t * occur after forking, so the expand will only happen on new VMAs.\n\t */\n",
           "\t * occur after forking, so the expand will only happen on new VMAs. \n"
           "\t * A vma inherited over fork() is never expanded here, because its anon_vma chain would need to be split first.\n"
           "\t */\n")])],
       expect=[("checkpatch:LONG_LINE_COMMENT", 1, "mm/mmap.c", "never expanded here"),
               ("checkpatch:TRAILING_WHITESPACE", 1, "mm/mmap.c", "on new VMAs.")])

sample("rules-checkpatch-neg", "mm/mmap: brk comments",
       "Explain the expand case in do_brk_flags().",
       [("mm/mmap: explain why do_brk_flags() expands only new VMAs",
         "Spell out the reason in the comment.",
         [("mm/mmap.c",
           "\t * occur after forking, so the expand will only happen on new VMAs.\n\t */\n",
           "\t * occur after forking, so the expand will only happen on new VMAs.\n"
           "\t * A vma inherited over fork() is never expanded here: its anon_vma chain must split.\n"
           "\t */\n")])])


def _git(repo, *args, input=None, env=None):
    e = {**os.environ, "LC_ALL": "C", "GIT_AUTHOR_NAME": AUTHOR[0], "GIT_AUTHOR_EMAIL": AUTHOR[1],
         "GIT_COMMITTER_NAME": AUTHOR[0], "GIT_COMMITTER_EMAIL": AUTHOR[1], **(env or {})}
    p = subprocess.run(["git", "-C", str(repo), *args], input=input, capture_output=True, env=e)
    if p.returncode:
        raise RuntimeError(f"git {' '.join(args)}: {p.stderr.decode()}")
    return p.stdout


def root(repo: Path) -> str:
    """The tree's import commit (the root of every clone of it), whichever version it is."""
    return _git(repo, "rev-list", "--max-parents=0", "HEAD").decode().split()[-1]


def scratch_clone(tree: Path, dest: Path, paths: list[str], base: str | None = None) -> Path:
    _git(dest.parent, "clone", "--quiet", "--shared", "--no-checkout", str(tree), str(dest))
    _git(dest, "sparse-checkout", "set", "--no-cone", *paths)
    _git(dest, "checkout", "--quiet", "-B", "work", base or root(dest))
    return dest


def make_mbox(clone: Path, subject: str, blurb: str, patches: list, stamp: int = 1735689600,
              base: str | None = None, base_commit: bool = True) -> bytes:
    """Commit each patch's edits on top of `base` (default: the import) and return format-patch
    --cover-letter output, naming `base` in a base-commit: line unless base_commit=False."""
    BASE = base or root(clone)
    _git(clone, "checkout", "--quiet", "-B", "work", BASE)
    for i, (subj, body, edits) in enumerate(patches):
        for path, old, new in edits:
            f = clone / path
            if old is None:             # a new file
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_text(new)
                _git(clone, "add", "-f", "--sparse", path)
                continue
            text = f.read_text()
            if text.count(old) != 1:
                raise RuntimeError(f"{subj}: {path}: edit anchor found {text.count(old)} times")
            f.write_text(text.replace(old, new))
            _git(clone, "add", "-f", "--sparse", path)
        date = f"@{stamp + 60 * i} +0000"
        _git(clone, "commit", "--quiet", "-m", f"{subj}\n\n{body}\n\n{SOB}\n",
             env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
    named = [f"--base={BASE}"] if base_commit else []
    out = _git(clone, "format-patch", "--stdout", "--cover-letter", *named, "--thread",
               f"{BASE}..work").decode()
    out = out.replace("*** SUBJECT HERE ***", subject).replace("*** BLURB HERE ***", blurb)
    return out.encode()


def generate(names=None, tree: Path | None = None) -> list[Path]:
    from mmreview.kernel.trees import default_tree_path
    tree = tree or default_tree_path()
    names = names or list(SAMPLES)
    paths = sorted({e[0] for n in names for p in SAMPLES[n][2] for e in p[2]})
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        clone = scratch_clone(tree, Path(tmp) / "linux", paths)
        for n in names:
            subject, blurb, patches = SAMPLES[n]
            dest = REPO / "series" / f"{n}.mbox"
            dest.write_bytes(make_mbox(clone, subject, blurb, patches, base_commit=False))
            written.append(dest)
    return written


if __name__ == "__main__":
    for p in generate(sys.argv[1:] or None):
        print(p)
