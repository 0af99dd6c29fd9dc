"""xa-zero-marker: XA_ZERO_ENTRY stored into the mm's VMA tree.

The reviewer's point: a reserved entry left in the VMA tree as a marker (where a failed dup_mmap()
stopped) is a special case every walker of the tree must know about once the lock is dropped; clean
the tree up instead, and push such complexity into the maple tree rather than its users.

Forms it takes in code: any maple-tree or VMA-iterator store (mas_store*(), vma_iter_store*(),
mtree_store*(), mtree_insert*()) in mm code whose value is XA_ZERO_ENTRY - written as such, as its
definition xa_mk_internal(257), or through a local the function set to either.
Fine and not reported: the marker in the maple tree's own tests; reading it (xa_is_zero(),
comparing against XA_ZERO_ENTRY) without storing it.
"""

import re

from mmreview.rules.helpers import changed_functions, in_mm

ID = "xa-zero-marker"
SEVERITY = "error"
TITLE = "XA_ZERO_ENTRY stored into the VMA tree as a marker"
RATIONALE = """
Marking a failure point in the mm's VMA tree with XA_ZERO_ENTRY (so that exit_mmap() knows where the
copied VMAs stop) leaves an entry that other walkers of the tree can find once the mmap lock is
dropped, and it forces every user of the tree to know about the special case.  Liam Howlett objected
to teaching the exit path about it when dup_mmap() was converted to __mt_dup(), and Jann Horn, in
favour of removing it again, asked that such complexity be pushed down into the maple tree instead of
its users.
"""
SOURCE = ("Jann Horn, linux-mm, 15 Aug 2025, Re: [RFC PATCH 0/6] Remove XA_ZERO from error recovery of "
          "dup_mmap(); Liam R. Howlett, linux-kernel, Sep 2023, Re: [PATCH v2 6/6] fork: Use __mt_dup() "
          "to duplicate maple tree in dup_mmap()")

STORES = {"mas_store", "mas_store_gfp", "mas_store_prealloc", "mas_insert", "vma_iter_store",
          "vma_iter_store_gfp", "vma_iter_bulk_store", "mtree_store", "mtree_store_range",
          "mtree_insert", "mtree_insert_range", "vma_iter_store_new", "vma_iter_store_overwrite"}


MARKER = re.compile(r"\bXA_ZERO_ENTRY\b|\bxa_mk_internal\s*\(\s*257\s*\)")


def _marker_locals(fn) -> set[str]:
    """Locals the function sets to the marker (`void *marker = XA_ZERO_ENTRY;`)."""
    out = set()
    stack = [fn.node]
    while stack:
        n = stack.pop()
        stack.extend(n.children)
        if n.type == "init_declarator":
            d, v = n.child_by_field_name("declarator"), n.child_by_field_name("value")
        elif n.type == "assignment_expression":
            d, v = n.child_by_field_name("left"), n.child_by_field_name("right")
        else:
            continue
        while d is not None and d.type == "pointer_declarator":
            d = d.child_by_field_name("declarator")
        if d is not None and d.type == "identifier" and v is not None and MARKER.search(v.text.decode()):
            out.add(d.text.decode())
    return out


def check(ctx):
    out = []
    # Names, not paths: dup_mmap() lives in kernel/fork.c or mm/mmap.c depending on the kernel, and a
    # kernel that dropped the marker (7.x) still gets a series re-introducing it caught.
    for ch in changed_functions(ctx, lambda path, name: in_mm(path, ctx)):
        names = None
        for call in ch.cf.calls(ch.fn):
            if call.line not in ch.lines or call.name not in STORES:
                continue
            names = _marker_locals(ch.fn) if names is None else names
            if any(MARKER.search(a) or a.strip() in names for a in call.args[1:]):
                out.append(ch.finding(
                    ctx, call.line,
                    f"{call.name}() stores XA_ZERO_ENTRY into the VMA tree in {ch.fn.name}(); "
                    "clean the tree up before dropping the lock instead of leaving a marker "
                    "for exit_mmap() and other walkers to trip over"))
    return out
