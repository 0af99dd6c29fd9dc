"""lock-order: locks taken against mm/rmap.c's order, through helpers, wrappers and read variants."""

from . import INTERNAL_H, MM_H, UTIL_C, Case, patch

R = "lock-order"
# new functions go in front of this one in mm/mremap.c, beside take_rmap_locks()/drop_rmap_locks()
ANCHOR = "static pte_t move_soft_dirty_pte(pte_t pte)\n{\n"
VMA_ANCHOR = "static void vma_complete(struct vma_prepare *vp, struct vma_iterator *vmi,\n"


def before(path, anchor, code):
    return (path, anchor, code + "\n" + anchor)



CASES = [
    Case(R, "helper-two-calls-deep", [
        patch("mm/mremap: lock the file mapping through a helper",
              before("mm/mremap.c", ANCHOR,
                     "static void __lock_file_rmap(struct address_space *mapping)\n{\n"
                     "\ti_mmap_lock_write(mapping);\n}\n\n"
                     "static void lock_file_rmap(struct vm_area_struct *vma)\n{\n"
                     "\tif (vma->vm_file)\n\t\t__lock_file_rmap(vma->vm_file->f_mapping);\n}\n\n"
                     "static void move_lock_both(struct vm_area_struct *vma)\n{\n"
                     "\tanon_vma_lock_write(vma->anon_vma);\n\tlock_file_rmap(vma);\n}\n")),
    ], expect=[(1, "mm/mremap.c", "lock_file_rmap(vma);", ["move_lock_both()", "i_mmap_rwsem",
                                                           "in lock_file_rmap()"])],
         why="i_mmap_rwsem taken two calls down, under the anon_vma lock"),
    Case(R, "wrapper-leaves-the-lock-held", [
        patch("mm/mremap: a wrapper for the anon_vma lock",
              before("mm/mremap.c", ANCHOR,
                     "static void lock_anon_rmap(struct vm_area_struct *vma)\n{\n"
                     "\tif (vma->anon_vma)\n\t\tanon_vma_lock_write(vma->anon_vma);\n}\n\n"
                     "static void move_lock_file_late(struct vm_area_struct *vma)\n{\n"
                     "\tlock_anon_rmap(vma);\n\ti_mmap_lock_write(vma->vm_file->f_mapping);\n}\n")),
    ], expect=[(1, "mm/mremap.c", "i_mmap_lock_write(vma->vm_file->f_mapping);",
                ["move_lock_file_late()", "lock_anon_rmap"])],
         why="a vma_lock_rmap()-style wrapper returns with anon_vma->rwsem held; i_mmap_rwsem after it"),
    Case(R, "read-variants", [
        patch("mm/mremap: read both rmap trees",
              before("mm/mremap.c", ANCHOR,
                     "static void walk_both_rmaps(struct vm_area_struct *vma)\n{\n"
                     "\tanon_vma_lock_read(vma->anon_vma);\n"
                     "\ti_mmap_lock_read(vma->vm_file->f_mapping);\n"
                     "\ti_mmap_unlock_read(vma->vm_file->f_mapping);\n"
                     "\tanon_vma_unlock_read(vma->anon_vma);\n}\n")),
    ], expect=[(1, "mm/mremap.c", "i_mmap_lock_read(vma->vm_file->f_mapping);", ["walk_both_rmaps()"])],
         why="read locks against the order still deadlock against a writer queued between them"),
    Case(R, "folio-lock-under-the-existing-rmap-wrapper", [
        patch("mm/mremap: lock the folio while the rmap locks are held",
              before("mm/mremap.c", ANCHOR,
                     "static void move_lock_folio(struct vm_area_struct *vma, struct folio *folio)\n{\n"
                     "\ttake_rmap_locks(vma);\n\tfolio_lock(folio);\n\tfolio_unlock(folio);\n"
                     "\tdrop_rmap_locks(vma);\n}\n")),
    ], expect=[(1, "mm/mremap.c", "folio_lock(folio);", ["move_lock_folio()", "folio_lock",
                                                         "take_rmap_locks"])],
         why="the tree's own take_rmap_locks() leaves i_mmap_rwsem held; folio_lock is above it"),
    Case(R, "folio-lock-under-the-page-table-lock", [
        patch("mm/vma: lock a folio found under the pte lock",
              before("mm/vma.c", VMA_ANCHOR,
                     "static void vma_lock_mapped_folio(struct mm_struct *mm, pmd_t *pmd,\n"
                     "\t\t\t\t  unsigned long addr, struct folio *folio)\n{\n"
                     "\tspinlock_t *ptl;\n\tpte_t *pte = pte_offset_map_lock(mm, pmd, addr, &ptl);\n\n"
                     "\tfolio_lock(folio);\n\tpte_unmap_unlock(pte, ptl);\n\tfolio_unlock(folio);\n}\n")),
    ], expect=[(1, "mm/vma.c", "folio_lock(folio);", ["vma_lock_mapped_folio()", "folio_lock"])],
         why="a sleeping lock under a spinlock the comment puts below it"),
    # ---- helpers where the kernel keeps them
    Case(R, "macro-of-mm-internal-h", [
        patch("mm: a shorthand for the file rmap lock",
              before("mm/internal.h", INTERNAL_H,
                     "#define lock_file_rmap(vma)\t\\\n\ti_mmap_lock_write((vma)->vm_file->f_mapping)\n")),
        patch("mm/mremap: lock both rmaps through the shorthand",
              before("mm/mremap.c", ANCHOR,
                     "static void move_lock_both(struct vm_area_struct *vma)\n{\n"
                     "\tanon_vma_lock_write(vma->anon_vma);\n\tlock_file_rmap(vma);\n}\n")),
    ], expect=[(2, "mm/mremap.c", "lock_file_rmap(vma);",
                ["move_lock_both()", "i_mmap_rwsem", "in lock_file_rmap(), a macro in mm/internal.h:", "(patch 1)"])],
         why="i_mmap_rwsem taken by a function-like macro of mm/internal.h under the anon_vma lock"),
    Case(R, "static-inline-of-include-linux-leaves-the-lock-held", [
        patch("mm: lock a vma's anon_vma from anywhere",
              before("include/linux/mm.h", MM_H,
                     "static inline void vma_lock_anon(struct vm_area_struct *vma)\n{\n"
                     "\tif (vma->anon_vma)\n\t\tanon_vma_lock_write(vma->anon_vma);\n}\n"),
              before("mm/mremap.c", ANCHOR,
                     "static void move_lock_file_late(struct vm_area_struct *vma)\n{\n"
                     "\tvma_lock_anon(vma);\n\ti_mmap_lock_write(vma->vm_file->f_mapping);\n}\n")),
    ], expect=[(1, "mm/mremap.c", "i_mmap_lock_write(vma->vm_file->f_mapping);",
                ["move_lock_file_late()", "in vma_lock_anon(), a static inline in include/linux/mm.h:"])],
         why="a header inline that returns with anon_vma->rwsem held, then i_mmap_rwsem"),
    Case(R, "helper-declared-in-a-header-defined-in-util-c", [
        patch("mm: one helper for the file rmap lock",
              before("mm/internal.h", INTERNAL_H, "void mm_lock_file_rmap(struct vm_area_struct *vma);\n"),
              before("mm/util.c", UTIL_C, "void mm_lock_file_rmap(struct vm_area_struct *vma)\n{\n"
                                          "\ti_mmap_lock_write(vma->vm_file->f_mapping);\n}\n")),
        patch("mm/mremap: take the file rmap lock through the helper",
              before("mm/mremap.c", ANCHOR,
                     "static void move_lock_both(struct vm_area_struct *vma)\n{\n"
                     "\tanon_vma_lock_write(vma->anon_vma);\n\tmm_lock_file_rmap(vma);\n}\n")),
    ], expect=[(2, "mm/mremap.c", "mm_lock_file_rmap(vma);",
                ["move_lock_both()", "in mm_lock_file_rmap(), defined in mm/util.c:", "(patch 1)"])],
         why="declared in mm/internal.h, defined in mm/util.c, taking i_mmap_rwsem under anon_vma->rwsem"),
    # ---- negatives
    Case(R, "trylock-under-i-mmap", [
        patch("mm/mremap: try the folio lock under the file rmap lock",
              before("mm/mremap.c", ANCHOR,
                     "static bool move_try_folio(struct vm_area_struct *vma, struct folio *folio)\n{\n"
                     "\tbool locked;\n\n\ti_mmap_lock_read(vma->vm_file->f_mapping);\n"
                     "\tlocked = folio_trylock(folio);\n"
                     "\ti_mmap_unlock_read(vma->vm_file->f_mapping);\n\treturn locked;\n}\n")),
    ], why="a trylock against the order cannot deadlock (mm does this on purpose)"),
    Case(R, "wrapper-dropped-before-the-folio-lock", [
        patch("mm/mremap: lock the folio after the rmap locks are dropped",
              before("mm/mremap.c", ANCHOR,
                     "static void move_then_lock(struct vm_area_struct *vma, struct folio *folio)\n{\n"
                     "\ttake_rmap_locks(vma);\n\tdrop_rmap_locks(vma);\n\tfolio_lock(folio);\n"
                     "\tfolio_unlock(folio);\n}\n")),
    ], why="the drop_rmap_locks() wrapper releases what take_rmap_locks() left held"),
    Case(R, "helper-takes-a-lower-lock", [
        patch("mm/mremap: the anon lock under the file lock, through helpers",
              before("mm/mremap.c", ANCHOR,
                     "static void lock_anon_only(struct vm_area_struct *vma)\n{\n"
                     "\tanon_vma_lock_write(vma->anon_vma);\n}\n\n"
                     "static void move_lock_in_order(struct vm_area_struct *vma)\n{\n"
                     "\ti_mmap_lock_write(vma->vm_file->f_mapping);\n\tlock_anon_only(vma);\n"
                     "\tanon_vma_unlock_write(vma->anon_vma);\n"
                     "\ti_mmap_unlock_write(vma->vm_file->f_mapping);\n}\n")),
    ], why="a helper taking anon_vma->rwsem under i_mmap_rwsem is the documented order"),
]

CASES += [
    Case(R, "header-macro-takes-the-lower-lock", [
        patch("mm: a shorthand for the anon rmap lock, taken in order",
              before("mm/internal.h", INTERNAL_H,
                     "#define lock_anon_rmap(vma)\tanon_vma_lock_write((vma)->anon_vma)\n"),
              before("mm/mremap.c", ANCHOR,
                     "static void move_lock_in_order(struct vm_area_struct *vma)\n{\n"
                     "\ti_mmap_lock_write(vma->vm_file->f_mapping);\n\tlock_anon_rmap(vma);\n"
                     "\tanon_vma_unlock_write(vma->anon_vma);\n"
                     "\ti_mmap_unlock_write(vma->vm_file->f_mapping);\n}\n")),
    ], why="a header macro taking anon_vma->rwsem under i_mmap_rwsem: the documented order"),
    Case(R, "header-inline-named-like-a-lock", [
        patch("mm: count rmap lock users",
              before("include/linux/mm.h", MM_H,
                     "static inline void vma_lock_stat(struct vm_area_struct *vma)\n{\n"
                     "\tvma->vm_lock_seq++;\n}\n"),
              before("mm/mremap.c", ANCHOR,
                     "static void move_count_locks(struct vm_area_struct *vma)\n{\n"
                     "\tanon_vma_lock_write(vma->anon_vma);\n\tvma_lock_stat(vma);\n"
                     "\tanon_vma_unlock_write(vma->anon_vma);\n}\n")),
    ], why="a header inline named like a lock that takes none, called under the anon_vma lock"),
]
