#!/usr/bin/env python3
"""Re-create the report sample (issue 22): a list series shaped like a real one, for the reports.

    .venv/bin/python series/make_report_samples.py [OUTDIR]   # default: this script's directory

Real commits on the default 6.12 tree, like make_kernel_samples.py:

  report-fix-with-test  2 patches shaped like "maple_tree: fix alloc node fail issue": patch 1 is the
                        upstream fix to mas_alloc_nodes() with a `Fixes:` tag (a commit the one-commit
                        tree cannot look up), patch 2 a maple test asserting with MT_BUG_ON() (checkpatch's
                        AVOID_BUG, info in a userland test).  Clean on every cell; its reports are short.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_kernel_samples import Clone  # noqa: E402

DATE = "Mon, 23 Nov 2026 10:00:00 +0000"
SOB = "\n\nSigned-off-by: Ada Reviewer <ada@example.org>\n"

FIX = """maple_tree: fix alloc node fail issue

In mas_alloc_nodes(), when mt_alloc_bulk() fills fewer slots than
asked, the next loop moves on to node->slot[0], which may be a node that
is already full (node_count == MAPLE_ALLOC_SLOTS).  Filling it writes
past its slots.  Walk on to the first node that is not full instead.

Fixes: 54a611b60590 ("Maple Tree: add new data structure")"""

TEST = """maple_tree: test that mas_alloc_nodes() fills every node

Ask for more nodes than two allocation nodes hold, after a failed
attempt, and check that every allocated node is counted."""

TEST_CODE = """
/*
 * mas_alloc_nodes() must not link a full node as the next one to fill: after
 * a request larger than two nodes hold, every node is counted.
 */
static noinline void __init check_alloc_node_fill(struct maple_tree *mt)
{
	MA_STATE(mas, mt, 0, 0);

	mtree_lock(mt);
	mt_set_non_kernel(0);
	mas_node_count(&mas, MAPLE_ALLOC_SLOTS * 2 + 2);
	MT_BUG_ON(mt, mas.node != MA_ERROR(-ENOMEM));
	MT_BUG_ON(mt, !mas_nomem(&mas, GFP_KERNEL));
	MT_BUG_ON(mt, mas_allocated(&mas) != MAPLE_ALLOC_SLOTS * 2 + 2);
	check_mas_alloc_node_count(&mas);
	mas_destroy(&mas);
	mtree_unlock(mt);
}
"""


def fix_with_test() -> None:
    c = Clone("6.12", ["lib/", "tools/testing/radix-tree/"])
    c.edit("lib/maple_tree.c", "\t\tallocated += count;\n\t\tnode = node->slot[0];\n",
           "\t\tallocated += count;\n\t\t/* find a node that is not full */\n\t\tdo {\n"
           "\t\t\tnode = node->slot[0];\n\t\t} while (unlikely(node->node_count == MAPLE_ALLOC_SLOTS));\n")
    c.commit(FIX + SOB, DATE)
    c.edit("tools/testing/radix-tree/maple.c", "static noinline void __init check_new_node(struct maple_tree *mt)\n",
           TEST_CODE.lstrip("\n") + "\nstatic noinline void __init check_new_node(struct maple_tree *mt)\n")
    c.edit("tools/testing/radix-tree/maple.c", "\tmt_init_flags(&tree, 0);\n\tcheck_new_node(&tree);\n",
           "\tmt_init_flags(&tree, 0);\n\tcheck_alloc_node_fill(&tree);\n\tmtree_destroy(&tree);\n\n"
           "\tmt_init_flags(&tree, 0);\n\tcheck_new_node(&tree);\n")
    c.commit(TEST + SOB, DATE)
    c.write("report-fix-with-test", 2, cover=(
        "maple_tree: fix alloc node fail issue",
        "Patch 1 fixes mas_alloc_nodes() walking onto a full node after a short\n"
        "bulk allocation; patch 2 adds a test for it."))


if __name__ == "__main__":
    fix_with_test()
