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

TEARDOWN = {"exit_mmap", "unmap_vmas", "unmap_single_vma", "free_pgtables", "remove_vma",
            "unmap_region", "__mmput", "mmput", "exit_mm", "tear_down_vmas", "vms_clear_ptes"}
import re

# parameter names that carry a stop point or a failure flag down the teardown path
LIMITISH = re.compile(r"max|limit|end|stop|fail|flag|zero|dup", re.I)
FORK_FAILURE = {"xa_is_zero", "XA_ZERO_ENTRY", "MMF_UNSTABLE"}


def check(ctx):
    out = []
    for ch in changed_functions(ctx, lambda path, name: in_mm(path) and name in TEARDOWN):
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
