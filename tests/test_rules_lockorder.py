"""The lock hierarchy read from mm/rmap.c of the real tree, the lock-call walk, and the C helpers."""

from __future__ import annotations

import pytest

from conftest import base_sha, git
from mmreview.rules.analysis.cparse import parse
from mmreview.rules.analysis.lockorder import NoHierarchy, lock_event, parse_hierarchy, summaries, violations


@pytest.fixture(scope="module")
def rmap(kernel_tree):
    return git(kernel_tree, "show", f"{base_sha()}:mm/rmap.c")


@pytest.fixture(scope="module")
def hier(rmap):
    return parse_hierarchy(rmap)


def test_main_block_nesting_and_quoted_lines(hier):
    order = hier.order_for("mm/vma.c", "vma_prepare")
    o = order[("i_mmap_rwsem", "anon_vma_rwsem")]
    assert (o.before_line, o.after_line, o.before_no, o.after_no) == \
        ("mapping->i_mmap_rwsem", "anon_vma->rwsem", 29, 30)
    assert ("anon_vma_rwsem", "i_mmap_rwsem") not in order
    for before, after in [("i_rwsem", "mmap_lock"), ("mmap_lock", "folio_lock"), ("folio_lock", "ptl"),
                          ("vma_write", "i_mmap_rwsem"), ("ptl", "lru_lock"), ("wb_list_lock", "sb_lock")]:
        assert (before, after) in order, (before, after)
    # siblings under swap_lock are not ordered against each other
    assert ("mmlist_lock", "private_lock") not in order and ("private_lock", "mmlist_lock") not in order


def test_hugetlb_and_memory_failure_blocks(hier):
    scopes = [b.scope for b in hier.blocks]
    assert scopes == ["main", "memory_failure", "hugetlb"]
    plain = hier.order_for("mm/filemap.c", "filemap_fault")
    huge = hier.order_for("mm/hugetlb.c", "hugetlb_fault")
    assert ("folio_lock", "i_mmap_rwsem") in plain and ("i_mmap_rwsem", "folio_lock") not in plain
    assert ("i_mmap_rwsem", "folio_lock") in huge and ("folio_lock", "i_mmap_rwsem") not in huge
    assert ("hugetlb_fault_mutex", "hugetlb_vma_lock") in huge
    mf = hier.blocks[1]
    assert mf.nodes[0].ids == ["anon_vma_rwsem", "i_mmap_rwsem"]     # peers on one line
    assert ("anon_vma_rwsem", "tasklist_lock") in plain and ("tasklist_lock", "ptl") in plain


def test_no_comment_is_an_explicit_error():
    with pytest.raises(NoHierarchy, match="no 'Lock ordering in mm:' comment"):
        parse_hierarchy("/* just a file */\nint x;\n")


def test_lock_api_mapping():
    assert lock_event("i_mmap_lock_write", ["mapping"]) == ("acquire", "i_mmap_rwsem")
    assert lock_event("anon_vma_unlock_write", ["av"]) == ("release", "anon_vma_rwsem")
    assert lock_event("spin_lock", ["&mm->page_table_lock"]) == ("acquire", "ptl")
    assert lock_event("down_write", ["&anon_vma->root->rwsem"]) == ("acquire", "anon_vma_rwsem")
    assert lock_event("spin_unlock", ["ptl"]) == ("release", "ptl")
    # trylocks cannot deadlock: held afterwards, never reported themselves
    assert lock_event("folio_trylock", ["folio"]) == ("trylock", "folio_lock")
    assert lock_event("lock_page", ["page"]) == ("acquire", "folio_lock")           # 6.1's page lock
    assert lock_event("spin_lock", ["&mapping->i_private_lock"]) == ("acquire", "private_lock")
    assert lock_event("spin_lock", ["&some->other_lock"]) is None


def _walk(code, hier, path="mm/x.c"):
    cf = parse(code.encode())
    (fn,) = cf.functions
    return violations(cf.calls(fn), hier.order_for(path, fn.name))


def test_helper_of_the_same_file_one_level(hier):
    code = ("static void lock_file(struct vma_prepare *vp)\n{\n\ti_mmap_lock_write(vp->mapping);\n}\n\n"
            "void f(struct vma_prepare *vp)\n{\n\tanon_vma_lock_write(vp->anon_vma);\n"
            "\tlock_file(vp);\n}\n")
    cf = parse(code.encode())
    f = cf.function_named("f")
    (v,) = violations(cf.calls(f), hier.order_for("mm/x.c", "f"), summaries(cf))
    assert (v.held_call.name, v.taken_call.name, v.order.before) == \
        ("anon_vma_lock_write", "lock_file", "i_mmap_rwsem")


def test_walk_straight_branches_and_jumps(hier):
    bad = "void f(struct vma_prepare *vp)\n{\n\tanon_vma_lock_write(vp->anon_vma);\n" \
          "\ti_mmap_lock_write(vp->mapping);\n}\n"
    (v,) = _walk(bad, hier)
    assert (v.held_call.line, v.taken_call.line) == (3, 4)
    good = "void f(struct vma_prepare *vp)\n{\n\ti_mmap_lock_write(vp->mapping);\n" \
           "\tanon_vma_lock_write(vp->anon_vma);\n}\n"
    assert _walk(good, hier) == []
    arms = "void f(int a)\n{\n\tif (a) {\n\t\tanon_vma_lock_write(av);\n\t} else {\n" \
           "\t\ti_mmap_lock_read(m);\n\t}\n}\n"
    assert _walk(arms, hier) == []
    jump = "int f(int a)\n{\n\tif (a) {\n\t\tanon_vma_lock_write(av);\n\t\tgoto retry;\n\t}\n" \
           "\ti_mmap_lock_read(m);\nretry:\n\treturn 0;\n}\n"
    assert _walk(jump, hier) == []
    released = "void f(void)\n{\n\tanon_vma_lock_write(av);\n\tanon_vma_unlock_write(av);\n" \
               "\ti_mmap_lock_write(m);\n}\n"
    assert _walk(released, hier) == []


@pytest.mark.parametrize("path", ["mm/vma.c", "mm/mmap.c", "mm/rmap.c", "mm/mremap.c", "kernel/fork.c",
                                  "mm/huge_memory.c", "mm/hugetlb.c", "mm/memory-failure.c",
                                  "mm/userfaultfd.c", "mm/khugepaged.c"])
def test_the_base_tree_itself_has_no_violation(kernel_tree, hier, path):
    """The tree follows its own documented order: anything reported here is a false positive."""
    cf = parse(git(kernel_tree, "show", f"{base_sha()}:{path}").encode())
    assert len(cf.functions) > 20
    helpers = summaries(cf)
    found = [(fn.name, v.held_call.name, v.taken_call.name) for fn in cf.functions
             for v in violations(cf.calls(fn), hier.order_for(path, fn.name), helpers)]
    assert found == []


def test_trylock_held_where_it_succeeded(hier):
    under = "void f(void)\n{\n\ti_mmap_lock_read(m);\n\tif (!folio_trylock(folio))\n\t\treturn;\n}\n"
    assert _walk(under, hier) == []                     # a trylock against the order is fine
    held = ("void f(void)\n{\n\tif (!folio_trylock(folio))\n\t\treturn;\n"
            "\tmmap_read_lock(mm);\n}\n")
    (v,) = _walk(held, hier)                             # but what it holds is held
    assert (v.held_call.name, v.taken_call.name) == ("folio_trylock", "mmap_read_lock")
    failed = ("void f(void)\n{\n\tif (!folio_trylock(folio)) {\n\t\tmmap_read_lock(mm);\n"
              "\t\treturn;\n\t}\n\tfolio_unlock(folio);\n}\n")
    assert _walk(failed, hier) == []                     # not where it failed
    untested = "void f(void)\n{\n\tbool ok = folio_trylock(folio);\n\tmmap_read_lock(mm);\n}\n"
    assert _walk(untested, hier) == []


def test_cparse_functions_calls_and_garbage():
    src = b"static int a(int x)\n{\n\treturn mas_store_gfp(&mas, NULL, GFP_KERNEL);\n}\n\n" \
          b"void *b(void)\n{\n\t/* mas_store(&m, NULL) */\n\treturn NULL;\n}\n"
    cf = parse(src)
    assert [(f.name, f.start, f.end) for f in cf.functions] == [("a", 1, 4), ("b", 6, 10)]
    assert cf.function_at(3).name == "a" and cf.function_at(5) is None
    (c,) = cf.calls(cf.function_at(3))
    assert (c.name, c.args, c.line) == ("mas_store_gfp", ["&mas", "NULL", "GFP_KERNEL"], 3)
    assert cf.calls(cf.function_at(8)) == []          # a call in a comment is no call
    junk = parse(b"}}} ))) not C {{{ ((( @@@ ;;;\n" * 20)
    assert junk.error_ratio > 0.5 and junk.unparsed_at(5)


def test_cparse_kernel_annotations_and_loop_macros_keep_the_function():
    """7.3's userfaultfd_register(): a `__user` declaration and a do-block closed by a loop macro
    made tree-sitter lose the function and every one after it; lines stay where they are."""
    src = (b"static int reg(struct ctx *ctx, unsigned long arg)\n{\n"
           b"\tstruct uffdio_register __user *user = (void __user *)arg;\n"
           b"\tdo {\n\t\tcond_resched();\n\t} for_each_vma_range(vmi, cur, end);\n"
           b"\tscoped_guard(spinlock, &ctx->lock) {\n\t\ti_mmap_lock_write(m);\n\t}\n"
           b"\treturn 0;\n}\n\nstatic void after(void)\n{\n\tanon_vma_lock_write(av);\n}\n")
    cf = parse(src)
    assert [(f.name, f.start, f.end) for f in cf.functions] == [("reg", 1, 11), ("after", 13, 16)]
    assert not cf.unparsed_at(6) and cf.error_ratio == 0
    assert [(c.name, c.line) for c in cf.calls(cf.function_named("reg"))] == \
        [("cond_resched", 5), ("i_mmap_lock_write", 8)]
    assert "__user" in cf.line_text(3)          # rules quote the original text
