"""checkpatch: the base's checkpatch.pl, read as reviewers read it."""

import re

from . import Case, patch

R = "checkpatch"
EXIT = "\tmmu_notifier_release(mm);\n\n\tmmap_read_lock(mm);\n\tarch_exit_mmap(mm);\n"
FARMER = "void farmer_tests(void)\n{\n"


def shift_hunks(by: int):
    """The mail's hunk headers moved `by` lines up, as a sender's stale tree would have them:
    `git am` applies them at an offset."""
    def mangle(mbox: bytes) -> bytes:
        def one(m):
            return (f"@@ -{int(m.group(1)) - by},{m.group(2).decode()} +{int(m.group(3)) - by},{m.group(4).decode()} @@"
                    ).encode()
        return re.sub(rb"@@ -(\d+),(\d+) \+(\d+),(\d+) @@", one, mbox)
    return mangle


CASES = [
    Case(R, "bug-on-in-kernel-code", [
        patch("mm/mmap: insist on an mm in exit_mmap()",
              ("mm/mmap.c", EXIT, "\tmmu_notifier_release(mm);\n\tBUG_ON(!mm->mm_mt.ma_root);\n\n"
                                  "\tmmap_read_lock(mm);\n\tarch_exit_mmap(mm);\n")),
    ], expect=[(1, "mm/mmap.c", "BUG_ON(!mm->mm_mt.ma_root);", ["BUG"])],
         why="AVOID_BUG where it matters: kernel code"),
    Case(R, "line-of-the-applied-commit-not-the-mail", [
        patch("mm/mmap: whitespace in exit_mmap()",
              ("mm/mmap.c", EXIT, "\tmmu_notifier_release(mm);\n\n\tmmap_read_lock(mm); \n"
                                  "\tarch_exit_mmap(mm);\n")),
    ], expect=[(1, "mm/mmap.c", "mmap_read_lock(mm); ", ["trailing whitespace"])],
         mangle=shift_hunks(40),
         why="a hunk that applies 40 lines away from where the mail says"),
    Case(R, "series-switches-checkpatch-off", [
        patch("scripts/checkpatch: quieter",
              ("scripts/checkpatch.pl", "use strict;\nuse warnings;\n", "exit 0;\nuse strict;\nuse warnings;\n")),
        patch("mm/mmap: whitespace in exit_mmap()",
              ("mm/mmap.c", EXIT, "\tmmu_notifier_release(mm);\n\n\tmmap_read_lock(mm); \n"
                                  "\tarch_exit_mmap(mm);\n")),
    ], expect=[(2, "mm/mmap.c", "mmap_read_lock(mm); ", ["trailing whitespace"])],
         why="a series cannot switch its own check off: the base's script is run"),
    # ---- negatives (checkpatch's kernel-only advice on userland tests is info, not a warning)
    Case(R, "bug-on-in-a-userland-test", [
        patch("maple: assert the tree is empty after destroy",
              ("tools/testing/radix-tree/maple.c", FARMER,
               FARMER + "\tDEFINE_MTREE(empty);\n\n\tBUG_ON(!mtree_empty(&empty));\n")),
    ], why="BUG_ON() is a userland test's assertion"),
    Case(R, "mt-bug-on-in-a-userland-test", [
        patch("maple: check an empty tree stores nothing",
              ("tools/testing/radix-tree/maple.c", FARMER,
               FARMER + "\tDEFINE_MTREE(empty);\n\n\tMT_BUG_ON(&empty, !mtree_empty(&empty));\n")),
    ], why="MT_BUG_ON() is the maple tree suite's assertion"),
]
