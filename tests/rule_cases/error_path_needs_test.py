"""error-path-needs-test: a new failure path with no test code in the series."""

from . import Case, patch

R = "error-path-needs-test"
MTREE_DUP = "\tMA_STATE(new_mas, new, 0, 0);\n\n\tmas_lock(&new_mas);\n"
ENOMEM_EARLY = patch("maple_tree: refuse a non-blocking mtree_dup() of a populated tree",
                     ("lib/maple_tree.c", MTREE_DUP,
                      "\tMA_STATE(new_mas, new, 0, 0);\n\n"
                      "\tif (!gfpflags_allow_blocking(gfp) && !mtree_empty(mt))\n"
                      "\t\treturn -ENOMEM;\n\n\tmas_lock(&new_mas);\n"))
DUP_MMAP = "static __latent_entropy int dup_mmap(struct mm_struct *mm,\n"
FARMER = "void farmer_tests(void)\n{\n"

CASES = [
    Case(R, "enomem-returned-in-maple-tree", [ENOMEM_EARLY],
         expect=[(1, "lib/maple_tree.c", "return -ENOMEM;", ["mtree_dup()", "-ENOMEM", "no test"])],
         why="a new -ENOMEM return in the maple tree, no test"),
    Case(R, "failure-in-a-helper-dup-mmap-calls", [
        patch("fork: check each vma before copying it",
              ("kernel/fork.c", DUP_MMAP,
               "static int dup_mmap_check(struct vm_area_struct *mpnt)\n{\n"
               "\tif (!mpnt->vm_mm)\n\t\treturn -ENOMEM;\n\treturn 0;\n}\n\n" + DUP_MMAP),
              ("kernel/fork.c", "\t\tcharge = 0;\n",
               "\t\tcharge = 0;\n\t\tretval = dup_mmap_check(mpnt);\n\t\tif (retval)\n"
               "\t\t\tgoto loop_out;\n")),
    ], expect=[(1, "kernel/fork.c", "return -ENOMEM;", ["dup_mmap_check()", "no test"])],
         why="the failure lives in a helper of kernel/fork.c that dup_mmap() calls"),
    Case(R, "test-patch-that-is-only-a-comment", [
        ENOMEM_EARLY,
        patch("maple: note the non-blocking mtree_dup() case",
              ("tools/testing/radix-tree/maple.c", FARMER,
               FARMER + "\t/* TODO: mtree_dup() with GFP_NOWAIT on a populated tree */\n")),
    ], expect=[(1, "lib/maple_tree.c", "return -ENOMEM;", ["mtree_dup()"])],
         why="touching a test file with a comment is no test case"),
    # ---- negatives
    Case(R, "test-in-a-later-patch", [
        ENOMEM_EARLY,
        patch("maple: test a non-blocking mtree_dup() of a populated tree",
              ("tools/testing/radix-tree/maple.c", FARMER,
               FARMER + "\tDEFINE_MTREE(src);\n\tDEFINE_MTREE(dst);\n\n"
               "\tmtree_store_range(&src, 1, 2, xa_mk_value(1), GFP_KERNEL);\n"
               "\tMT_BUG_ON(&src, mtree_dup(&src, &dst, GFP_NOWAIT) != -ENOMEM);\n"
               "\tmtree_destroy(&src);\n")),
    ], why="the same failure path, with its test two patches later in the series"),
    Case(R, "enomem-compared-not-returned", [
        patch("maple_tree: free the new tree on an interrupted mtree_dup() too",
              ("lib/maple_tree.c", "\t\tret = xa_err(mas.node);\n\t\tif (ret == -ENOMEM)\n"
                                   "\t\t\tmas_dup_free(&new_mas);\n\t}\n\n\tmas_unlock(&new_mas);\n",
               "\t\tret = xa_err(mas.node);\n\t\tif (ret == -ENOMEM || ret == -EINTR)\n"
               "\t\t\tmas_dup_free(&new_mas);\n\t}\n\n\tmas_unlock(&new_mas);\n")),
    ], why="-ENOMEM compared in an existing failure branch: no new failure path"),
]
