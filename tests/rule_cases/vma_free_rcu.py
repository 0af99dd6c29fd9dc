"""vma-free-rcu: a VMA freed around vm_area_free(), in forms the sample lacks."""

from . import INTERNAL_H, MM_H, UTIL_C, Case, before, patch

R = "vma-free-rcu"
FAIL = "fail_nomem_policy:\n\tvm_area_free(tmp);\n"
ANCHOR = "static void vma_complete(struct vma_prepare *vp, struct vma_iterator *vmi,\n"


def fn(code):
    return ("mm/vma.c", ANCHOR, code + "\n" + ANCHOR)




CALLER = ("static void vma_abandon(struct vm_area_struct *new)\n{\n\tfput(new->vm_file);\n"
          "\tCALL(new);\n}\n")


CASES = [
    Case(R, "kmem-cache-free-on-the-cache", [
        patch("fork: return an unpublished vma to its cache",
              ("kernel/fork.c", FAIL, "fail_nomem_policy:\n\tkmem_cache_free(vm_area_cachep, tmp);\n")),
    ], expect=[(1, "kernel/fork.c", "kmem_cache_free(vm_area_cachep, tmp);",
                ["dup_mmap()", "kmem_cache_free(vm_area_cachep"])],
         why="the slab free vm_area_free() wraps, called directly"),
    Case(R, "kfree-of-a-vma-variable", [
        patch("mm/vma: drop a vma that never made it into the tree", fn(
            "static void vma_drop_new(struct vm_area_struct *new)\n{\n"
            "\tfput(new->vm_file);\n\tkfree(new);\n}\n")),
    ], expect=[(1, "mm/vma.c", "kfree(new);", ["vma_drop_new()", "struct vm_area_struct"])],
         why="any free of a struct vm_area_struct pointer other than vm_area_free()"),
    Case(R, "bulk-free-of-vmas", [
        patch("mm/vma: free a batch of unused vmas at once", fn(
            "static void vma_free_batch(void **vmas, size_t nr)\n{\n"
            "\tkmem_cache_free_bulk(vm_area_cachep, nr, vmas);\n}\n")),
    ], expect=[(1, "mm/vma.c", "kmem_cache_free_bulk(vm_area_cachep", ["kmem_cache_free_bulk"])],
         why="a bulk free on vm_area_cachep skips vm_area_free() for every VMA"),
    # ---- through definitions where the kernel keeps them
    Case(R, "macro-of-mm-internal-h", [
        patch("mm: a shorthand to return a vma to its cache",
              before("mm/internal.h", INTERNAL_H,
                     "#define vma_free_now(vma)\tkmem_cache_free(vm_area_cachep, vma)\n\n")),
        patch("mm/vma: free an abandoned vma at once", fn(CALLER.replace("CALL", "vma_free_now"))),
    ], expect=[(2, "mm/vma.c", "vma_free_now(new);", ["vma_abandon()", "vma_free_now() (a macro in mm/internal.h:",
                                                       "(patch 1)", "kmem_cache_free(vm_area_cachep"])],
         why="the slab free behind a macro of mm/internal.h"),
    Case(R, "static-inline-of-include-linux-mm-h", [
        patch("mm: free a vma nobody has seen",
              before("include/linux/mm.h", MM_H,
                     "static inline void vma_free_unseen(struct vm_area_struct *vma)\n{\n"
                     "\tkfree(vma);\n}\n\n"),
              fn(CALLER.replace("CALL", "vma_free_unseen"))),
    ], expect=[(1, "mm/vma.c", "vma_free_unseen(new);", ["vma_free_unseen() (a static inline in include/linux/mm.h:",
                                                          "kfree(vma) of a struct vm_area_struct"])],
         why="a header inline that kfree()s the VMA it is given"),
    Case(R, "helper-declared-in-a-header-defined-in-util-c", [
        patch("mm: one place to drop unpublished vmas",
              before("mm/internal.h", INTERNAL_H, "void vma_drop_unpublished(struct vm_area_struct *vma);\n\n"),
              before("mm/util.c", UTIL_C, "void vma_drop_unpublished(struct vm_area_struct *vma)\n{\n"
                                          "\tkmem_cache_free(vm_area_cachep, vma);\n}\n\n")),
        patch("mm/vma: drop an abandoned vma through the helper", fn(CALLER.replace("CALL", "vma_drop_unpublished"))),
    ], expect=[(2, "mm/vma.c", "vma_drop_unpublished(new);",
                ["vma_drop_unpublished() (defined in mm/util.c:", "(patch 1)", "kmem_cache_free(vm_area_cachep"])],
         why="declared in mm/internal.h, defined in mm/util.c, called from mm/vma.c"),
    Case(R, "kfree-macro-given-a-vma", [
        patch("mm: a generic drop macro",
              before("mm/internal.h", INTERNAL_H, "#define mm_drop(p)\tkfree(p)\n\n"),
              fn(CALLER.replace("CALL", "mm_drop"))),
    ], expect=[(1, "mm/vma.c", "mm_drop(new);", ["mm_drop() (a macro in mm/internal.h:",
                                                 "kfree(p) of the struct vm_area_struct it is passed"])],
         why="a kfree() macro that happens to be given a VMA"),
    # ---- negatives
    Case(R, "other-objects-freed-beside-a-vma", [
        patch("mm/vma: free what a new vma held before freeing it", fn(
            "static void vma_drop_new(struct vm_area_struct *new, struct anon_vma_name *name)\n{\n"
            "\tkfree(name);\n\tmpol_put(vma_policy(new));\n\tvm_area_free(new);\n}\n")),
    ], why="the vma goes through vm_area_free(); the kfree() is of its name"),
    Case(R, "vm-area-free-on-the-error-path", [
        patch("fork: free the policy and the vma on the error path",
              ("kernel/fork.c", FAIL, "fail_nomem_policy:\n\t/* through RCU like every vma */\n"
                                      "\tvm_area_free(tmp);\n")),
    ], why="the RCU-aware free"),
]

CASES += [
    Case(R, "header-inline-through-vm-area-free", [
        patch("mm: close and free a vma in one call",
              before("include/linux/mm.h", MM_H,
                     "static inline void vma_close_free(struct vm_area_struct *vma)\n{\n"
                     "\tif (vma->vm_ops && vma->vm_ops->close)\n\t\tvma->vm_ops->close(vma);\n"
                     "\tvm_area_free(vma);\n}\n\n"),
              fn(CALLER.replace("CALL", "vma_close_free"))),
    ], why="the header inline frees the VMA through vm_area_free()"),
    Case(R, "kfree-macro-given-a-name", [
        patch("mm: a generic drop macro, for a vma's name",
              before("mm/internal.h", INTERNAL_H, "#define mm_drop(p)\tkfree(p)\n\n"),
              fn("static void vma_name_abandon(struct vm_area_struct *vma, struct anon_vma_name *name)\n{\n"
                 "\tmm_drop(name);\n\tvm_area_free(vma);\n}\n")),
    ], why="the same kfree() macro given the VMA's name, and the VMA through vm_area_free()"),
]
