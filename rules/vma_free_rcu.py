"""vma-free-rcu: a VMA freed around vm_area_free()'s RCU path.

The reviewer's point: with per-VMA locks a lockless page fault may still find a VMA, so every VMA is
freed through vm_area_free() (RCU-deferred, or SLAB_TYPESAFE_BY_RCU after its checks); a free that
skips it because "nobody can see this one" is a special case the next person must know about.

Forms it takes in code: __vm_area_free(); kmem_cache_free() or kmem_cache_free_bulk() on
vm_area_cachep; kfree()/kvfree()/kmem_cache_free() of a variable the function declares as a struct
vm_area_struct pointer - outside the functions that implement the RCU path themselves.
The same through a definition where the kernel keeps it: a macro (`#define ... kmem_cache_free(
vm_area_cachep, v)`, or a kfree() of the parameter the caller passes a VMA in), a header's
`static inline`, a function of another .c file that frees the VMA it is given - the series' own, or
the tree's found wherever it mentions vm_area_cachep - reported at the call.
Fine and not reported: vm_area_free(); freeing other objects next to a VMA (its anon_vma_name, a
policy); the implementation of vm_area_free() itself.
"""

import re

from mmreview.rules.helpers import changed_functions

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


FREES = {"kfree", "kvfree", "kmem_cache_free", "kfree_rcu_mightsleep"}


def _vma_vars(fn, cf) -> set[str]:
    """Names the function declares (parameters, locals) as struct vm_area_struct pointers."""
    text = "\n".join(fn.lines(cf.text_lines))
    out = set()
    for decl in re.findall(r"struct\s+vm_area_struct\s+([^;)(=]*)", text):
        for piece in decl.split(","):
            if re.search(r"\w+\s+\**\s*\w+", piece.strip()):
                break           # the next parameter, of another type (`struct anon_vma_name *name`)
            out |= set(re.findall(r"\*\s*(\w+)", piece))
    return out


def _what(call, vmas) -> str | None:
    """How `call` frees a VMA around vm_area_free(), or None."""
    if call.name == "__vm_area_free":
        return "__vm_area_free()"
    if call.name in ("kmem_cache_free", "kmem_cache_free_bulk") and call.args and \
            call.args[0].strip() == "vm_area_cachep":
        return f"{call.name}(vm_area_cachep, ...)"
    if call.name in FREES and call.args:
        obj = call.args[-1].strip()
        if re.fullmatch(r"\w+", obj) and obj in vmas:
            return f"{call.name}({obj}) of a struct vm_area_struct"
    return None


def _bare(arg: str) -> str:
    return arg.strip().strip("()").strip()


def _frees(d, caller_args: list[str], caller_vmas: set[str]) -> str | None:
    """How definition `d` frees a VMA around vm_area_free() when called with `caller_args`."""
    vmas = _vma_vars(d.fn, d.cf) if d.kind != "macro" else set()
    for c in d.cf.calls(d.fn):
        what = _what(c, vmas)
        if what is None and d.kind == "macro" and c.name in FREES and c.args and \
                _bare(c.args[-1]) in d.params:
            i = d.params.index(_bare(c.args[-1]))
            if i < len(caller_args) and _bare(caller_args[i]) in caller_vmas:
                what = f"{c.name}({_bare(c.args[-1])}) of the struct vm_area_struct it is passed"
        if what:
            return what
    return None


class _Definitions:
    """What a call on a new line stands for: the series' own definition (any file it changes), else
    the tree's among those that mention vm_area_cachep or __vm_area_free (one search, made the first
    time a new line calls something unknown with a VMA)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.base = None

    def get(self, pc, name: str, passes_vma: bool):
        d = self.ctx.series_definition(name, pc.rev_after)
        if d is not None:
            return d
        if not passes_vma:
            return None
        if self.base is None:
            self.base = {}
            for defs in self.ctx.mentioning({"vm_area_cachep", "__vm_area_free"}).values():
                for dd, _ in defs:
                    self.base.setdefault(dd.name, dd)
        return self.base.get(name)


def check(ctx):
    out = []
    why = None
    defs = _Definitions(ctx)
    for ch in changed_functions(ctx, lambda path, name: name not in OWNERS):
        vmas = None
        for call in ch.cf.calls(ch.fn):
            if call.line not in ch.lines:
                continue
            if vmas is None:
                vmas = _vma_vars(ch.fn, ch.cf)
            what = _what(call, vmas or set())
            if what is None and call.name not in OWNERS and call.name not in FREES and \
                    call.name != ch.fn.name:
                d = defs.get(ch.pc, call.name, any(_bare(a) in vmas for a in call.args))
                how = _frees(d, call.args, vmas) if d is not None and d.name not in OWNERS else None
                if how:
                    what = f"{call.name}() ({d.describe()}), which frees it with {how}"
            if what:
                if why is None:
                    why = _base_free(ctx) or ""
                    if not why:
                        ctx.skip(None, "this kernel has no per-VMA locks (no PER_VMA_LOCK in "
                                       "mm/Kconfig at the base): no reader finds a VMA under RCU, "
                                       "so freeing one directly is not checked")
                if not why:
                    continue
                out.append(ch.finding(ctx, call.line, f"{ch.fn.name}() frees a VMA with {what}, {why}"))
    return out
