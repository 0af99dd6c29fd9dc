"""exit-mmap-complication: fork-failure state read on the exit path, or a new limit on teardown."""

from . import INTERNAL_H, MM_H, UTIL_C, Case, before, patch

R = "exit-mmap-complication"
# dup_mmap()'s failure branch on 6.12 (kernel/fork.c)
FAIL = "\t\t\t/* Avoid OOM iterating a broken tree */\n\t\t\tset_bit(MMF_OOM_SKIP, &mm->flags);\n\t\t}\n"
EXIT_HEAD = "\tvma = vma_next(&vmi);\n\tif (!vma || unlikely(xa_is_zero(vma))) {\n"
UNMAP = "\tunmap_vmas(&tlb, &vmi.mas, vma, 0, ULONG_MAX, ULONG_MAX, false);\n"
FREE = "\tfree_pgtables(&tlb, &vmi.mas, vma, FIRST_USER_ADDRESS,\n\t\t      USER_PGTABLES_CEILING, true);\n"
LOOP_END = "\t} while (vma && likely(!xa_is_zero(vma)));\n"
STORE = "\t\t\tmas_store(&vmi.mas, XA_ZERO_ENTRY);\n"
MARKER_H = ("/* Where a failed dup_mmap() stopped copying */\n"
            "#define VMA_DUP_FAILED xa_mk_value(0xd0f)\n\n"
            "static inline bool vma_dup_failed(const struct vm_area_struct *vma)\n{\n"
            "\treturn (const void *)vma == VMA_DUP_FAILED;\n}\n\n")



def marker_patch():
    """The issue's patch 1: a marker macro and a static inline predicate in include/linux/mm.h, the
    marker stored where dup_mmap() fails."""
    return patch("mm: a marker of our own for a failed dup_mmap()",
                 before("include/linux/mm.h", MM_H, MARKER_H),
                 ("kernel/fork.c", STORE, "\t\t\tmas_store(&vmi.mas, VMA_DUP_FAILED);\n"))

CASES = [
    Case(R, "flag-set-in-patch-1-tested-in-patch-2", [
        patch("fork: remember that dup_mmap() failed",
              ("kernel/fork.c", FAIL, FAIL + "\t\tset_bit(MMF_DUP_FAILED, &mm->flags);\n")),
        patch("mm/mmap: skip the unmap of a half-copied mm",
              ("mm/mmap.c", EXIT_HEAD,
               "\tvma = vma_next(&vmi);\n\tif (!vma || test_bit(MMF_DUP_FAILED, &mm->flags)) {\n")),
    ], expect=[(2, "mm/mmap.c", "test_bit(MMF_DUP_FAILED", ["exit_mmap()", "MMF_DUP_FAILED",
                                                            "kernel/fork.c:", "(patch 1)"])],
         why="a new mm flag set on the failure path in one patch, an early exit on it in another"),
    Case(R, "field-bounds-the-unmap-through-a-local", [
        patch("mm: stop the exit unmap where dup_mmap() stopped",
              ("kernel/fork.c", FAIL, FAIL + "\t\tmm->dup_fail_addr = mpnt ? mpnt->vm_start : 0;\n"),
              ("mm/mmap.c", "\tint count = 0;\n",
               "\tint count = 0;\n\tunsigned long end = mm->dup_fail_addr ?: ULONG_MAX;\n"),
              ("mm/mmap.c", UNMAP, "\tunmap_vmas(&tlb, &vmi.mas, vma, 0, end, end, false);\n")),
    ], expect=[(1, "mm/mmap.c", "mm->dup_fail_addr ?: ULONG_MAX", ["dup_fail_addr", "kernel/fork.c:"]),
               (1, "mm/mmap.c", "unmap_vmas(&tlb, &vmi.mas, vma, 0, end, end", ["passes end to unmap_vmas()",
                                                                             "ULONG_MAX"])],
         why="an mm field set where the copy stopped, read into a local that bounds unmap_vmas()"),
    Case(R, "helper-from-exit-mmap-reads-what-a-fork-helper-set", [
        patch("fork: mark a partly copied mm",
              ("kernel/fork.c", "static __latent_entropy int dup_mmap(",
               "static void dup_mmap_mark_partial(struct mm_struct *mm)\n{\n"
               "\tmm->flags |= BIT(MMF_DUP_PARTIAL);\n}\n\nstatic __latent_entropy int dup_mmap("),
              ("kernel/fork.c", FAIL, FAIL + "\t\tdup_mmap_mark_partial(mm);\n")),
        patch("mm/mmap: let exit_mmap() skip a partly copied mm",
              ("mm/mmap.c", "/* Release all mmaps. */\nvoid exit_mmap(",
               "static bool exit_mmap_partial(struct mm_struct *mm)\n{\n"
               "\treturn mm->flags & BIT(MMF_DUP_PARTIAL);\n}\n\n/* Release all mmaps. */\nvoid exit_mmap("),
              ("mm/mmap.c", EXIT_HEAD, "\tvma = vma_next(&vmi);\n"
               "\tif (!vma || unlikely(xa_is_zero(vma)) || exit_mmap_partial(mm)) {\n")),
    ], expect=[(2, "mm/mmap.c", "return mm->flags & BIT(MMF_DUP_PARTIAL);",
                ["exit_mmap_partial()", "reached from exit_mmap() -> exit_mmap_partial()",
                 "dup_mmap_mark_partial()"])],
         why="state set by a helper called where dup_mmap() fails, read by a new helper exit_mmap() calls"),
    Case(R, "new-limit-on-free-pgtables", [
        patch("mm/mmap: free page tables only up to the task size",
              ("mm/mmap.c", FREE, "\tfree_pgtables(&tlb, &vmi.mas, vma, FIRST_USER_ADDRESS,\n"
                                  "\t\t      mm->task_size, true);\n")),
    ], expect=[(1, "mm/mmap.c", "mm->task_size, true);", ["passes mm->task_size to free_pgtables()",
                                                       "USER_PGTABLES_CEILING"])],
         why="a changed argument to free_pgtables(): the exit teardown bounded by a new limit"),
    Case(R, "loop-bound-in-the-remove-walk", [
        patch("mm/mmap: stop removing vmas at the copy limit",
              ("mm/mmap.c", LOOP_END, "\t} while (vma && vma->vm_start < mm->dup_limit);\n")),
    ], expect=[(1, "mm/mmap.c", "vma->vm_start < mm->dup_limit", ["stops its loop at < mm->dup_limit"])],
         why="a new loop bound in the VMA walk of exit_mmap()"),
    Case(R, "return-code-kept-by-the-caller", [
        patch("fork: keep why dup_mmap() failed",
              ("kernel/fork.c", "\terr = dup_mmap(mm, oldmm);\n\tif (err)\n\t\tgoto free_pt;\n",
               "\terr = dup_mmap(mm, oldmm);\n\tif (err) {\n\t\tmm->dup_err = err;\n\t\tgoto free_pt;\n\t}\n")),
        patch("mm/vma: free only what dup_mmap() copied",
              ("mm/vma.c", "void remove_vma(struct vm_area_struct *vma, bool unreachable)\n{\n",
               "void remove_vma(struct vm_area_struct *vma, bool unreachable)\n{\n"
               "\tif (vma->vm_mm->dup_err && !vma->anon_vma)\n\t\treturn;\n")),
    ], expect=[(2, "mm/vma.c", "if (vma->vm_mm->dup_err && !vma->anon_vma)",
                ["remove_vma()", "dup_err", "dup_mm()", "(patch 1)"])],
         why="dup_mmap()'s return code kept in the mm by its caller and tested in a teardown step"),
    Case(R, "extra-argument-to-unmap-vmas", [
        patch("mm: tell unmap_vmas() where the copied vmas end",
              ("mm/mmap.c", UNMAP, "\tunmap_vmas(&tlb, &vmi.mas, vma, 0, ULONG_MAX, ULONG_MAX, false,\n"
                                   "\t\t   mm->copied_end);\n")),
    ], expect=[(1, "mm/mmap.c", "ULONG_MAX, ULONG_MAX, false,", ["passes a new argument, mm->copied_end, to unmap_vmas()"])],
         why="a new argument to a teardown step, its name saying nothing"),
    # ---- where the kernel keeps its definitions: headers, and other .c files
    Case(R, "issue-21-marker-macro-and-header-predicate", [
        marker_patch(),
        patch("mm/mmap: stop exit_mmap() at the dup_mmap() marker",
              ("mm/mmap.c", EXIT_HEAD, "\tvma = vma_next(&vmi);\n\tif (!vma || unlikely(vma_dup_failed(vma))) {\n")),
    ], expect=[(2, "mm/mmap.c", "if (!vma || unlikely(vma_dup_failed(vma)))",
                ["exit_mmap() reads VMA_DUP_FAILED through vma_dup_failed()", "a static inline in include/linux/mm.h:",
                 "kernel/fork.c:", "(patch 1): mas_store(&vmi.mas, VMA_DUP_FAILED);"])],
         why="issue 21 as reported: the marker and its predicate in include/linux/mm.h, exit_mmap() "
             "testing the predicate"),
    Case(R, "issue-21-old-xa-is-zero-left-in-the-line", [
        marker_patch(),
        patch("mm/mmap: stop exit_mmap() at either marker",
              ("mm/mmap.c", EXIT_HEAD, "\tvma = vma_next(&vmi);\n"
               "\tif (!vma || unlikely(xa_is_zero(vma) || vma_dup_failed(vma))) {\n")),
    ], expect=[(2, "mm/mmap.c", "unlikely(xa_is_zero(vma) || vma_dup_failed(vma))",
                ["reads VMA_DUP_FAILED through vma_dup_failed()", "(patch 1): mas_store(&vmi.mas, VMA_DUP_FAILED);",
                 "!XA_ZERO_ENTRY", "!(the base)"])],
         why="the same with the old xa_is_zero() test left on the line: the series' marker is the reason, "
             "not the base's XA_ZERO_ENTRY store"),
    Case(R, "flag-set-through-a-header-macro", [
        patch("mm: a helper macro to mark a failed copy",
              before("mm/internal.h", INTERNAL_H,
                     "#define mm_mark_dup_failed(mm)\t\\\n\tset_bit(MMF_DUP_FAILED, &(mm)->flags)\n\n"),
              ("kernel/fork.c", FAIL, FAIL + "\t\tmm_mark_dup_failed(mm);\n")),
        patch("mm/mmap: skip the unmap of a half-copied mm",
              ("mm/mmap.c", EXIT_HEAD,
               "\tvma = vma_next(&vmi);\n\tif (!vma || test_bit(MMF_DUP_FAILED, &mm->flags)) {\n")),
    ], expect=[(2, "mm/mmap.c", "test_bit(MMF_DUP_FAILED", ["reads MMF_DUP_FAILED", "mm/internal.h:",
                                                            "mm_mark_dup_failed() (macro)", "(patch 1)"])],
         why="the flag set by a function-like macro of mm/internal.h called where dup_mmap() fails"),
    Case(R, "helper-declared-in-a-header-defined-in-another-c-file", [
        patch("mm: say whether dup_mmap() failed",
              before("mm/internal.h", INTERNAL_H, "bool mm_dup_failed(struct mm_struct *mm);\n\n"),
              before("mm/util.c", UTIL_C, "bool mm_dup_failed(struct mm_struct *mm)\n{\n"
                                          "\treturn test_bit(MMF_DUP_FAILED, &mm->flags);\n}\n\n"),
              ("kernel/fork.c", FAIL, FAIL + "\t\tset_bit(MMF_DUP_FAILED, &mm->flags);\n")),
        patch("mm/mmap: skip the unmap of a half-copied mm",
              ("mm/mmap.c", EXIT_HEAD, "\tvma = vma_next(&vmi);\n\tif (!vma || mm_dup_failed(mm)) {\n")),
    ], expect=[(2, "mm/mmap.c", "if (!vma || mm_dup_failed(mm))",
                ["reads MMF_DUP_FAILED through mm_dup_failed() (defined in mm/util.c:", "kernel/fork.c:",
                 "(patch 1)"])],
         why="the predicate declared in mm/internal.h and defined in mm/util.c"),
    Case(R, "mmf-unstable-through-the-trees-own-header-inline", [
        patch("mm/mmap: do not tear down an unstable mm",
              ("mm/mmap.c", EXIT_HEAD, "\tvma = vma_next(&vmi);\n"
                                       "\tif (!vma || check_stable_address_space(mm)) {\n")),
    ], expect=[(1, "mm/mmap.c", "check_stable_address_space(mm)",
                ["reads MMF_UNSTABLE through check_stable_address_space() (a static inline in include/linux/oom.h:",
                 "kernel/fork.c:", "(the base)", "OOM reaper"])],
         why="MMF_UNSTABLE, which 6.12's dup_mmap() sets where it fails, read through the tree's own "
             "header inline"),
    Case(R, "mmf-unstable-read-directly", [
        patch("mm/mmap: stop early for an unstable mm",
              ("mm/mmap.c", LOOP_END, "\t} while (vma && !test_bit(MMF_UNSTABLE, &mm->flags));\n")),
    ], expect=[(1, "mm/mmap.c", "test_bit(MMF_UNSTABLE", ["reads MMF_UNSTABLE", "OOM reaper",
                                                         "cannot tell a reaped mm from a failed fork"])],
         why="MMF_UNSTABLE is failure state where dup_mmap() sets it, and the OOM reaper sets it too"),
    # ---- negatives
    Case(R, "flag-read-only-by-fork-error-handling", [
        patch("fork: say when dup_mmap() gave up part way",
              ("kernel/fork.c", FAIL, FAIL + "\t\tset_bit(MMF_DUP_FAILED, &mm->flags);\n"),
              ("kernel/fork.c", "free_pt:\n\t/* don't put binfmt in mmput, we haven't got module yet */\n",
               "free_pt:\n\tif (test_bit(MMF_DUP_FAILED, &mm->flags))\n"
               "\t\tpr_warn_ratelimited(\"fork: partial copy of %d\\n\", tsk->pid);\n"
               "\t/* don't put binfmt in mmput, we haven't got module yet */\n")),
    ], why="a failure flag read by dup_mm()'s own error path, never by the exit path"),
    Case(R, "exit-path-reads-its-own-flag", [
        patch("mm/mmap: set MMF_OOM_SKIP once",
              ("mm/mmap.c", "\tset_bit(MMF_OOM_SKIP, &mm->flags);\n\tmmap_write_lock(mm);\n",
               "\tif (!test_bit(MMF_OOM_SKIP, &mm->flags))\n\t\tset_bit(MMF_OOM_SKIP, &mm->flags);\n"
               "\tmmap_write_lock(mm);\n")),
    ], why="MMF_OOM_SKIP is also set where dup_mmap() fails, but exit_mmap() sets it itself"),
    Case(R, "constant-arguments-reflowed", [
        patch("mm/mmap: name the whole-range unmap",
              ("mm/mmap.c", UNMAP, "\tunmap_vmas(&tlb, &vmi.mas, vma, 0, ULONG_MAX, ULONG_MAX,\n"
                                   "\t\t   /* mm_wr_locked = */ false);\n")),
    ], why="the same whole-range arguments, written over two lines"),
]

CASES += [
    Case(R, "header-predicate-reading-no-fork-state", [
        patch("mm: skip the cache flush of an mm nobody uses",
              before("include/linux/mm.h", MM_H,
                     "static inline bool mm_exit_needs_flush(struct mm_struct *mm)\n{\n"
                     "\treturn atomic_read(&mm->mm_users) == 0 && !mm->owner_exiting;\n}\n\n"),
              ("mm/mmap.c", "\tlru_add_drain();\n\tflush_cache_mm(mm);\n",
               "\tlru_add_drain();\n\tif (mm_exit_needs_flush(mm))\n\t\tflush_cache_mm(mm);\n")),
    ], why="a header predicate exit_mmap() calls, reading nothing a failed fork sets"),
    Case(R, "header-predicate-on-the-exit-paths-own-flag", [
        patch("mm: a predicate for MMF_OOM_SKIP",
              before("mm/internal.h", INTERNAL_H,
                     "static inline bool mm_oom_skipped(struct mm_struct *mm)\n{\n"
                     "\treturn test_bit(MMF_OOM_SKIP, &mm->flags);\n}\n\n"),
              ("mm/mmap.c", "\tset_bit(MMF_OOM_SKIP, &mm->flags);\n\tmmap_write_lock(mm);\n",
               "\tif (!mm_oom_skipped(mm))\n\t\tset_bit(MMF_OOM_SKIP, &mm->flags);\n"
               "\tmmap_write_lock(mm);\n")),
    ], why="MMF_OOM_SKIP, set where dup_mmap() fails, is the exit path's own flag: a header predicate "
           "for it is no fork-failure read"),
    Case(R, "marker-macro-read-only-by-fork", [
        patch("fork: a named marker for the failure point",
              before("mm/internal.h", INTERNAL_H, "#define VMA_DUP_FAILED xa_mk_value(0xd0f)\n\n"),
              ("kernel/fork.c", STORE, "\t\t\tmas_store(&vmi.mas, VMA_DUP_FAILED);\n"),
              ("kernel/fork.c", "free_pt:\n\t/* don't put binfmt in mmput, we haven't got module yet */\n",
               "free_pt:\n\tWARN_ON_ONCE(mtree_load(&mm->mm_mt, 0) == VMA_DUP_FAILED);\n"
               "\t/* don't put binfmt in mmput, we haven't got module yet */\n")),
    ], why="a marker macro of mm/internal.h stored and read by fork's own error path, never by exit"),
]
