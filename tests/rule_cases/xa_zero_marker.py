"""xa-zero-marker: the reserved entry stored into the VMA tree, in spellings the sample lacks."""

from . import Case, patch

R = "xa-zero-marker"
ANCHOR = "static void vma_complete(struct vma_prepare *vp, struct vma_iterator *vmi,\n"
LOOP_OUT = "loop_out:\n\tvma_iter_free(&vmi);\n"


def fn(code):
    return ("mm/vma.c", ANCHOR, code + "\n" + ANCHOR)


CASES = [
    Case(R, "marker-through-a-local", [
        patch("fork: mark where the copy stopped",
              ("kernel/fork.c", LOOP_OUT,
               "loop_out:\n\tif (retval && mpnt) {\n\t\tvoid *stop = XA_ZERO_ENTRY;\n\n"
               "\t\tvma_iter_config(&vmi, mpnt->vm_start, mpnt->vm_end);\n"
               "\t\tvma_iter_store_gfp(&vmi, stop, GFP_KERNEL);\n\t}\n\tvma_iter_free(&vmi);\n")),
    ], expect=[(1, "kernel/fork.c", "vma_iter_store_gfp(&vmi, stop, GFP_KERNEL);",
                ["stores XA_ZERO_ENTRY", "dup_mmap()"])],
         why="the marker kept in a local first, stored through the VMA iterator"),
    Case(R, "marker-by-its-definition", [
        patch("mm/vma: reserve a range of the tree", fn(
            "static int vma_tree_reserve(struct mm_struct *mm, unsigned long start, unsigned long end)\n{\n"
            "\treturn mtree_store_range(&mm->mm_mt, start, end - 1, xa_mk_internal(257),\n"
            "\t\t\t\t GFP_KERNEL);\n}\n")),
    ], expect=[(1, "mm/vma.c", "mtree_store_range(&mm->mm_mt", ["vma_tree_reserve()"])],
         why="xa_mk_internal(257) is XA_ZERO_ENTRY by another name"),
    Case(R, "marker-over-a-range-outside-dup-mmap", [
        patch("mm/vma: leave a hole marker after a failed split", fn(
            "static void vma_mark_hole(struct vma_iterator *vmi, unsigned long start, unsigned long end)\n{\n"
            "\tvma_iter_config(vmi, start, end);\n\tvma_iter_store(vmi, XA_ZERO_ENTRY);\n}\n")),
    ], expect=[(1, "mm/vma.c", "vma_iter_store(vmi, XA_ZERO_ENTRY);", ["vma_mark_hole()"])],
         why="the same marker in any mm function, not only dup_mmap()"),
    # ---- negatives
    Case(R, "marker-read-not-stored", [
        patch("mm/vma: skip a reserved entry when walking", fn(
            "static bool vma_is_reserved(void *entry)\n{\n"
            "\treturn entry == XA_ZERO_ENTRY || xa_is_zero(entry);\n}\n")),
    ], why="testing for the marker is no marker left behind"),
    Case(R, "marker-in-the-maple-tree-tests", [
        patch("maple: store a zero entry in a test tree",
              ("tools/testing/radix-tree/maple.c", "void farmer_tests(void)\n{\n",
               "void farmer_tests(void)\n{\n\tDEFINE_MTREE(zt);\n\n"
               "\tmtree_store_range(&zt, 5, 10, XA_ZERO_ENTRY, GFP_KERNEL);\n"
               "\tmtree_destroy(&zt);\n")),
    ], why="the maple tree's own tests exercise the reserved entry"),
]
