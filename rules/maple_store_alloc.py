"""maple-store-alloc: maple-tree stores that may allocate, unprepared or unchecked."""

from mmreview.rulehelpers import changed_functions, in_mm

ID = "maple-store-alloc"
SEVERITY = "warning"
TITLE = "Maple-tree store that can allocate without preallocation or error handling"
RATIONALE = """
Storing into a maple tree can need memory, even when the value stored is NULL: a store that splits or
rebalances nodes allocates.  Liam Howlett: be careful what happens when that space is not there, use
mas_store_gfp() with GFP_KERNEL in sleepable context (as vm_area_dup() does) and handle its failure.
Hugh Dickins showed what an unhandled failure costs: in do_brk_flags() a failed mas_store_gfp() with no
rewind returned with locks still held; a WARN_ON() is not a rewind.
"""
SOURCE = ("Liam R. Howlett, linux-kernel/linux-mm, Sep 2023, Re: [PATCH v2 6/6] fork: Use __mt_dup() to "
          "duplicate maple tree in dup_mmap(); Hugh Dickins, maple-tree list, 7 Jul 2022, Re: [PATCH] "
          "maple_tree: Fix use of node for global range in mas_wr_spanning_store()")

PREALLOC = {"mas_preallocate", "vma_iter_prealloc", "mas_expected_entries", "mas_node_count",
            "mas_alloc_nodes"}
RANGE = {"mas_set_range", "vma_iter_config", "mas_wr_store_setup"}
CHECKED_STORES = {"mas_store_gfp", "vma_iter_store_gfp", "mtree_store", "mtree_store_range",
                  "mtree_insert", "mtree_insert_range", "mas_insert"}
WARNS = {"WARN_ON", "WARN_ON_ONCE", "WARN", "WARN_ONCE", "VM_WARN_ON", "VM_WARN_ON_ONCE"}


def _ignored_result(call) -> str | None:
    """How the int a store returns is dropped, or None if it is used."""
    n = call.node.parent
    while n is not None and n.type in ("parenthesized_expression", "cast_expression"):
        n = n.parent
    if n is None:
        return None
    if n.type == "expression_statement":
        return "its return value is ignored"
    if n.type == "argument_list" and n.parent is not None and n.parent.type == "call_expression":
        callee = n.parent.child_by_field_name("function")
        name = callee.text.decode() if callee is not None else ""
        if name in WARNS:
            outer = n.parent.parent
            while outer is not None and outer.type == "parenthesized_expression":
                outer = outer.parent
            if outer is not None and outer.type == "expression_statement":
                return f"its failure is only {name}()'d"
            if outer is not None and outer.type == "if_statement" and _empty(outer):
                return f"its failure is only {name}()'d, with no rewind"
        return None
    if n.type == "if_statement" and _empty(n):
        return "its failure is tested but nothing is undone"
    return None


def _empty(if_node) -> bool:
    body = if_node.child_by_field_name("consequence")
    if body is None:
        return False
    if body.type == "compound_statement":
        return all(c.type == "comment" for c in body.named_children)
    return body.type == "expression_statement" and body.named_child_count == 0


def check(ctx):
    out = []
    for ch in changed_functions(ctx, lambda path, name: in_mm(path, ctx)):
        if not ch.lines:
            continue
        prepared = False
        ranged = False
        for call in ch.cf.calls(ch.fn):
            if call.name in PREALLOC:
                prepared = True
            if call.name in RANGE:
                ranged = True
            if call.line not in ch.lines:
                continue
            msg = None
            if call.name == "mas_store" and len(call.args) == 2 and not prepared:
                val = call.args[1].strip()
                if val == "NULL":
                    msg = ("mas_store() of NULL can need memory (a node may split or rebalance) and "
                           "has no gfp: preallocate or use mas_store_gfp(..., GFP_KERNEL) and "
                           "handle its failure")
                elif ranged:
                    msg = ("mas_store() of a range can need memory and has no gfp: preallocate "
                           "(mas_preallocate/vma_iter_prealloc) or use mas_store_gfp() and handle "
                           "its failure")
            elif call.name in CHECKED_STORES:
                how = _ignored_result(call)
                if how:
                    msg = (f"{call.name}() can fail with -ENOMEM and {how}: unwind (unlock, free) "
                           "on failure")
            if msg:
                out.append(ch.finding(ctx, call.line, f"{ch.fn.name}(): {msg}"))
    return out
