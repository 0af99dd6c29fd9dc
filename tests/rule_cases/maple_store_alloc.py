"""maple-store-alloc: allocating stores whose failure is not handled, in forms the samples lack."""

from . import Case, patch

R = "maple-store-alloc"
ANCHOR = "static void vma_complete(struct vma_prepare *vp, struct vma_iterator *vmi,\n"


def fn(code):
    return ("mm/vma.c", ANCHOR, code + "\n" + ANCHOR)


CASES = [
    Case(R, "unchecked-mas-preallocate-then-prealloc-store", [
        patch("mm/vma: replace a vma in the tree in one step", fn(
            "static void vma_tree_replace(struct mm_struct *mm, struct vm_area_struct *vma)\n{\n"
            "\tMA_STATE(mas, &mm->mm_mt, vma->vm_start, vma->vm_end - 1);\n\n"
            "\tmas_preallocate(&mas, vma, GFP_KERNEL);\n\tmas_store_prealloc(&mas, vma);\n}\n")),
    ], expect=[(1, "mm/vma.c", "mas_preallocate(&mas, vma, GFP_KERNEL);",
                ["mas_preallocate() can fail", "mas_store_prealloc()"])],
         why="a preallocation that can fail, not checked, then the store that relies on it"),
    Case(R, "unchecked-vma-iter-prealloc", [
        patch("mm/vma: store a vma through the iterator", fn(
            "static void vma_iter_put(struct vma_iterator *vmi, struct vm_area_struct *vma)\n{\n"
            "\tvma_iter_config(vmi, vma->vm_start, vma->vm_end);\n"
            "\t(void)vma_iter_prealloc(vmi, vma);\n\tvma_iter_store(vmi, vma);\n}\n")),
    ], expect=[(1, "mm/vma.c", "(void)vma_iter_prealloc(vmi, vma);", ["vma_iter_prealloc() can fail",
                                                                      "vma_iter_store()"])],
         why="the iterator spelling, its result cast away"),
    Case(R, "store-result-cast-to-void", [
        patch("mm/vma: clear a range of the tree", fn(
            "static void vma_tree_clear(struct mm_struct *mm, unsigned long start, unsigned long end)\n{\n"
            "\t(void)mtree_store_range(&mm->mm_mt, start, end - 1, NULL, GFP_KERNEL);\n}\n")),
    ], expect=[(1, "mm/vma.c", "(void)mtree_store_range(", ["mtree_store_range() can fail",
                                                             "ignored"])],
         why="storing NULL over a range allocates; (void) is still ignoring it"),
    Case(R, "failure-only-printed", [
        patch("mm/vma: report a failed iterator store", fn(
            "static int vma_iter_put_gfp(struct vma_iterator *vmi, struct vm_area_struct *vma)\n{\n"
            "\tif (vma_iter_store_gfp(vmi, vma, GFP_KERNEL))\n"
            "\t\tpr_warn(\"vma store failed\\n\");\n\treturn 0;\n}\n")),
    ], expect=[(1, "mm/vma.c", "if (vma_iter_store_gfp(vmi, vma, GFP_KERNEL))",
                ["vma_iter_store_gfp() can fail", "nothing is undone"])],
         why="a branch that only prints is no rewind"),
    # ---- negatives
    Case(R, "checked-preallocate-then-prealloc-store", [
        patch("mm/vma: replace a vma in the tree, checked", fn(
            "static int vma_tree_replace(struct mm_struct *mm, struct vm_area_struct *vma)\n{\n"
            "\tMA_STATE(mas, &mm->mm_mt, vma->vm_start, vma->vm_end - 1);\n\n"
            "\tif (mas_preallocate(&mas, vma, GFP_KERNEL))\n\t\treturn -ENOMEM;\n"
            "\tmas_store_prealloc(&mas, vma);\n\treturn 0;\n}\n")),
    ], why="the preallocation's failure returns before the store"),
    Case(R, "result-returned-or-unwound", [
        patch("mm/vma: range clear and iterator store that pass failure on", fn(
            "static int vma_tree_clear(struct mm_struct *mm, unsigned long start, unsigned long end)\n{\n"
            "\treturn mtree_store_range(&mm->mm_mt, start, end - 1, NULL, GFP_KERNEL);\n}\n\n"
            "static int vma_iter_put_gfp(struct vma_iterator *vmi, struct vm_area_struct *vma)\n{\n"
            "\tif (vma_iter_store_gfp(vmi, vma, GFP_KERNEL)) {\n"
            "\t\tpr_warn(\"vma store failed\\n\");\n\t\treturn -ENOMEM;\n\t}\n\treturn 0;\n}\n")),
    ], why="returned to the caller, or reported and unwound"),
]
