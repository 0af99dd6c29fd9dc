"""vma-free-rcu: a VMA freed around vm_area_free(), in forms the sample lacks."""

from . import Case, patch

R = "vma-free-rcu"
FAIL = "fail_nomem_policy:\n\tvm_area_free(tmp);\n"
ANCHOR = "static void vma_complete(struct vma_prepare *vp, struct vma_iterator *vmi,\n"


def fn(code):
    return ("mm/vma.c", ANCHOR, code + "\n" + ANCHOR)


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
