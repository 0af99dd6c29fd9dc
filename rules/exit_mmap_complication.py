"""exit-mmap-complication: exit_mmap() and its teardown helpers special-casing a failed fork."""

from mmreview.cparse import identifiers
from mmreview.rulehelpers import changed_functions, in_mm

ID = "exit-mmap-complication"
SEVERITY = "error"
TITLE = "exit_mmap() path complicated to undo a failed fork"
RATIONALE = """
Do not use the exit_mmap() path to undo a failed fork: checks added to the exit path run for every
task that exits, to serve the very unlikely case of dup_mmap() running out of memory.  Liam Howlett
asked instead for a helper that unmaps and frees what dup_mmap() had copied, run before the lock is
dropped; Jann Horn later supported removing the XA_ZERO_ENTRY special case from exit_mmap() altogether.
"""
SOURCE = ("Liam R. Howlett, linux-kernel/linux-mm, Sep 2023, Re: [PATCH v2 6/6] fork: Use __mt_dup() to "
          "duplicate maple tree in dup_mmap(); Jann Horn, linux-mm, 15 Aug 2025, Re: [RFC PATCH 0/6] "
          "Remove XA_ZERO from error recovery of dup_mmap()")

import re

# The exit path as 6.12 has it; the helpers the tree's own exit_mmap() calls at the base are added
# (7.x: unmap_all_init(), unmap_pgtable_init(), ...), so each kernel's teardown is covered.
TEARDOWN = {"exit_mmap", "unmap_vmas", "unmap_single_vma", "free_pgtables", "remove_vma",
            "unmap_region", "__mmput", "mmput", "exit_mm", "tear_down_vmas", "vms_clear_ptes"}
# callees of exit_mmap() that are no teardown step of their own (locking, accounting, tracing)
NOT_TEARDOWN = re.compile(r"^(mmap_(read|write)_(un)?lock|cond_resched|trace_|vm_unacct_memory|"
                          r"mmu_notifier_release|vma_next|vma_find|vma_iter_|mas_|mt_|__mt_|"
                          r"flush_cache_mm|lru_add_drain|arch_exit_mmap|set_bit|mm_flags_|"
                          r"tlb_gather_mmu|tlb_finish_mmu|BUG_ON|WARN|VM_|vma_pages)")

# parameter names that carry a stop point or a failure flag down the teardown path
LIMITISH = re.compile(r"max|limit|end|stop|fail|flag|zero|dup", re.I)
FORK_FAILURE = {"xa_is_zero", "XA_ZERO_ENTRY", "MMF_UNSTABLE"}


def teardown(ctx) -> set[str]:
    """TEARDOWN plus the functions exit_mmap() calls at the base of the tree under review."""
    names = set(TEARDOWN)
    for path in ctx.locate("exit_mmap"):
        cf = ctx.cfile(ctx.base_rev, path)
        fn = cf.function_named("exit_mmap") if cf else None
        if fn is not None:
            names |= {c.name for c in cf.calls(fn) if not NOT_TEARDOWN.match(c.name)}
    return names


def check(ctx):
    out = []
    names = teardown(ctx)
    for ch in changed_functions(ctx, lambda path, name: name in names and in_mm(path, ctx)):
        fn = ch.fn
        flagged = set()
        for name, ln in identifiers(fn, ch.lines):
            if name in FORK_FAILURE and ln not in flagged:
                flagged.add(ln)
                out.append(ch.finding(
                    ctx, ln,
                    f"{fn.name}() gains a {name} check: the exit path of every task pays for "
                    "a rare dup_mmap() failure; undo the failed fork in dup_mmap() instead"))
        # a new parameter threaded through a teardown helper (a limit for dup_mmap() recovery)
        decl = {n for n in ch.lines if fn.start <= n < fn.body_start}
        if decl:
            prior = ctx.prior_function(ch.pc, ch.path, fn.name)
            old = {p for _, pf in prior for p in pf.params}
            extra = [p for p in fn.params if p not in old and LIMITISH.search(p.split()[-1])]
            if prior and extra and len(fn.params) > max(len(p.params) for _, p in prior):
                out.append(ch.finding(
                    ctx, min(decl),
                    f"{fn.name}() gains parameter(s) {', '.join(extra) or '?'}: threading a limit "
                    "through the teardown path for dup_mmap() recovery complicates every exit"))
    return out
