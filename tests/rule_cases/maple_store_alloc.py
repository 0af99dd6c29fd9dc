"""maple-store-alloc: allocating stores whose failure is not handled, in forms the samples lack."""

from . import INTERNAL_H, MM_H, UTIL_C, Case, before, patch

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
    # ---- through definitions where the kernel keeps them
    Case(R, "store-through-a-header-macro", [
        patch("mm: a macro to clear a range of the VMA tree",
              before("mm/internal.h", INTERNAL_H,
                     "#define mm_tree_clear(mm, start, end)\t\\\n"
                     "\tmtree_store_range(&(mm)->mm_mt, start, (end) - 1, NULL, GFP_KERNEL)\n\n")),
        patch("mm/vma: clear the tree through the macro", fn(
            "static void vma_tree_forget(struct mm_struct *mm, struct vm_area_struct *vma)\n{\n"
            "\tmm_tree_clear(mm, vma->vm_start, vma->vm_end);\n}\n")),
    ], expect=[(2, "mm/vma.c", "mm_tree_clear(mm, vma->vm_start, vma->vm_end);",
                ["mm_tree_clear() (a macro in mm/internal.h:", "(patch 1)", "mtree_store_range()",
                 "return value is ignored"])],
         why="the allocating store behind a function-like macro of mm/internal.h"),
    Case(R, "store-through-a-static-inline-of-include-linux", [
        patch("mm: insert a vma into the tree from anywhere",
              before("include/linux/mm.h", MM_H,
                     "static inline int vma_tree_insert(struct mm_struct *mm, struct vm_area_struct *vma)\n{\n"
                     "\treturn mtree_insert_range(&mm->mm_mt, vma->vm_start, vma->vm_end - 1, vma,\n"
                     "\t\t\t\t  GFP_KERNEL);\n}\n\n"),
              fn("static void vma_tree_add(struct mm_struct *mm, struct vm_area_struct *vma)\n{\n"
                 "\t(void)vma_tree_insert(mm, vma);\n}\n")),
    ], expect=[(1, "mm/vma.c", "(void)vma_tree_insert(mm, vma);",
                ["vma_tree_insert() (a static inline in include/linux/mm.h:", "mtree_insert_range()"])],
         why="a static inline of include/linux/mm.h returning the store's result, cast away"),
    Case(R, "preallocation-in-another-c-file", [
        patch("mm: preallocate for a vma in one place",
              before("mm/internal.h", INTERNAL_H,
                     "int mm_tree_prealloc(struct ma_state *mas, struct vm_area_struct *vma);\n\n"),
              before("mm/util.c", UTIL_C,
                     "int mm_tree_prealloc(struct ma_state *mas, struct vm_area_struct *vma)\n{\n"
                     "\tmas_set_range(mas, vma->vm_start, vma->vm_end - 1);\n"
                     "\treturn mas_preallocate(mas, vma, GFP_KERNEL);\n}\n\n")),
        patch("mm/vma: replace a vma through the preallocation helper", fn(
            "static void vma_tree_replace(struct mm_struct *mm, struct vm_area_struct *vma)\n{\n"
            "\tMA_STATE(mas, &mm->mm_mt, 0, 0);\n\n"
            "\tmm_tree_prealloc(&mas, vma);\n\tmas_store_prealloc(&mas, vma);\n}\n")),
    ], expect=[(2, "mm/vma.c", "mm_tree_prealloc(&mas, vma);",
                ["mm_tree_prealloc() can fail", "wraps mas_preallocate()", "defined in mm/util.c:",
                 "mas_store_prealloc()"])],
         why="a preallocation declared in mm/internal.h and defined in mm/util.c, its failure unchecked"),
    Case(R, "the-trees-own-header-inline", [
        patch("mm/vma: clear a range through the iterator", fn(
            "static void vma_iter_forget(struct vma_iterator *vmi, unsigned long start, unsigned long end)\n{\n"
            "\tvma_iter_clear_gfp(vmi, start, end, GFP_KERNEL);\n}\n")),
    ], expect=[(1, "mm/vma.c", "vma_iter_clear_gfp(vmi, start, end, GFP_KERNEL);",
                ["vma_iter_clear_gfp() (a static inline in include/linux/mm.h:", "(the base)", "mas_store_gfp()"])],
         why="the tree's own vma_iter_clear_gfp() (include/linux/mm.h on 6.12) hands on mas_store_gfp()'s failure; dropped here"),
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

CASES += [
    Case(R, "header-macro-store-checked", [
        patch("mm: a macro to clear a range of the VMA tree, checked",
              before("mm/internal.h", INTERNAL_H,
                     "#define mm_tree_clear(mm, start, end)\t\\\n"
                     "\tmtree_store_range(&(mm)->mm_mt, start, (end) - 1, NULL, GFP_KERNEL)\n\n"),
              fn("static int vma_tree_forget(struct mm_struct *mm, struct vm_area_struct *vma)\n{\n"
                 "\tif (mm_tree_clear(mm, vma->vm_start, vma->vm_end))\n\t\treturn -ENOMEM;\n"
                 "\treturn 0;\n}\n")),
    ], why="the macro's store failure is returned to the caller"),
    Case(R, "header-look-alike-that-stores-nothing", [
        patch("mm: count the vmas of a range",
              before("include/linux/mm.h", MM_H,
                     "static inline int vma_store_count(struct mm_struct *mm, unsigned long start)\n{\n"
                     "\treturn mm->map_count - (start ? 1 : 0);\n}\n\n"),
              fn("static void vma_note_count(struct mm_struct *mm)\n{\n"
                 "\tvma_store_count(mm, 0);\n\tvma_iter_free(NULL);\n}\n")),
    ], why="a header inline named like a store, returning an int, that stores nothing"),
]
