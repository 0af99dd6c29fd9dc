"""vma-free-rcu: a VMA freed around vm_area_free()'s RCU path."""

from mmreview.rulehelpers import changed_functions

ID = "vma-free-rcu"
SEVERITY = "info"
TITLE = "VMA freed without going through vm_area_free()"
RATIONALE = """
With per-VMA locks, page faults find and lock VMAs under RCU, so a VMA must be freed through
vm_area_free(), which defers the free with call_rcu().  Freeing directly from the exit path because
nobody else can hold a reference was proposed and contested: Michal Hocko preferred to avoid special
casing that adds assumptions for whoever touches the scheme next, while Matthew Wilcox argued the exit
path is safe.  Later (2024) Suren Baghdasaryan found that a detached VMA still needs a valid vm_mm for
its lock, another assumption a direct free skips.  Worth a second look whenever a VMA is freed by hand.
"""
SOURCE = ("Matthew Wilcox, Michal Hocko, Suren Baghdasaryan, linux-mm, 23 Jan 2023, Re: [PATCH 39/41] "
          "kernel/fork: throttle call_rcu() calls in vm_area_free; Suren Baghdasaryan, linux-mm, 14 Nov "
          "2024, Re: [PATCH v2 4/5] mm: make vma cache SLAB_TYPESAFE_BY_RCU")

# Where freeing directly is the implementation of the RCU path itself.
OWNERS = {"__vm_area_free", "vm_area_free", "vm_area_free_rcu_cb", "vm_area_alloc", "vm_area_dup"}


def _base_free(ctx) -> str | None:
    """What skipping vm_area_free() skips in the tree at the base; None on a kernel without
    per-VMA locks (6.1), where no reader finds a VMA under RCU."""
    kconfig = ctx.source(ctx.base_rev, "mm/Kconfig") or b""
    if b"config PER_VMA_LOCK" not in kconfig:
        return None
    for path in ctx.locate("vm_area_free"):
        cf = ctx.cfile(ctx.base_rev, path)
        fn = cf.function_named("vm_area_free") if cf else None
        if fn is not None and any(c.name == "call_rcu" for c in cf.calls(fn)):
            return ("skipping vm_area_free()'s RCU grace period: lockless page-fault readers may "
                    "still see it")
    # 6.15+: the VMA cache is SLAB_TYPESAFE_BY_RCU and vm_area_free() frees at once, after its checks
    return ("skipping what vm_area_free() does first (the VMA must be detached: with the VMA cache "
            "SLAB_TYPESAFE_BY_RCU, lockless readers may still find it and must see it detached)")


def check(ctx):
    out = []
    why = None
    for ch in changed_functions(ctx, lambda path, name: name not in OWNERS):
        for call in ch.cf.calls(ch.fn):
            if call.line not in ch.lines:
                continue
            direct = call.name == "kmem_cache_free" and call.args and \
                call.args[0].strip() == "vm_area_cachep"
            if direct or call.name == "__vm_area_free":
                if why is None:
                    why = _base_free(ctx) or ""
                    if not why:
                        ctx.skip(None, "this kernel has no per-VMA locks (no PER_VMA_LOCK in "
                                       "mm/Kconfig at the base): no reader finds a VMA under RCU, "
                                       "so freeing one directly is not checked")
                if not why:
                    continue
                what = "kmem_cache_free(vm_area_cachep, ...)" if direct else "__vm_area_free()"
                out.append(ch.finding(ctx, call.line, f"{ch.fn.name}() frees a VMA with {what}, {why}"))
    return out
