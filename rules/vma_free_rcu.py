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


def check(ctx):
    out = []
    for ch in changed_functions(ctx, lambda path, name: name not in OWNERS):
        for call in ch.cf.calls(ch.fn):
            if call.line not in ch.lines:
                continue
            direct = call.name == "kmem_cache_free" and call.args and \
                call.args[0].strip() == "vm_area_cachep"
            if direct or call.name == "__vm_area_free":
                what = "kmem_cache_free(vm_area_cachep, ...)" if direct else "__vm_area_free()"
                out.append(ch.finding(
                    ctx, call.line,
                    f"{ch.fn.name}() frees a VMA with {what}, skipping vm_area_free()'s RCU grace "
                    "period: lockless page-fault readers may still see it"))
    return out
