"""maple-store-alloc: maple-tree stores that may allocate, unprepared or unchecked.

The reviewer's point: a store into a maple tree can need memory, so it is either prepared for
(preallocated, with the preallocation's failure handled) or made with a gfp and its failure
unwound; a failure that is only warned about leaves the caller's state (locks, accounting) behind.

Forms it takes in code: mas_store() of NULL or of a range with nothing preallocated; an allocating
store (mas_store_gfp(), vma_iter_store_gfp(), mtree_store*(), mtree_insert*(), mas_insert()) whose
int is dropped - as a statement, cast to (void), only WARN_ON()'d, or tested with a branch that only
reports (pr_warn(), WARN(), an empty block); a preallocation (mas_preallocate(), vma_iter_prealloc(),
mas_expected_entries()) whose failure is not checked, so the mas_store_prealloc()/vma_iter_store()
after it stores with no nodes.
The same through a definition where the kernel keeps it: a macro, a header's `static inline`, or a
function of another .c file that returns an int and makes one of these stores or preallocations
(the tree's vma_iter_clear_gfp(), a series' `#define ... mtree_store_range(...)` in mm/internal.h)
is that store to its caller: its result dropped is the store's failure dropped, and a wrapped
preallocation left unchecked leaves the prepared store after it without nodes.
Fine and not reported: a checked preallocation followed by mas_store_prealloc(); a store whose
result is returned, assigned and tested, or tested with an unwind (goto, return, unlock).
"""

import re

from mmreview.rules.helpers import changed_functions, in_mm

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
# preallocations that return an int: their failure must be checked before the prepared store
CHECKED_PREALLOC = {"mas_preallocate", "vma_iter_prealloc", "mas_expected_entries"}
PREPARED_STORES = {"mas_store_prealloc", "vma_iter_store", "vma_iter_store_new",
                   "vma_iter_store_overwrite", "mas_store"}
# what a branch may do and still undo nothing: report the failure
REPORTS = re.compile(r"^(pr_\w+|printk\w*|WARN\w*|VM_WARN\w*|dump_stack|trace_\w+)$")


def _returns_int(d) -> bool:
    """The definition gives its caller a value: a macro (what it expands to), or a function whose
    return type is no void."""
    if d.kind == "macro":
        return True
    head = " ".join(d.cf.text_lines[d.fn.start - 1:d.fn.body_start]).split(d.name + "(")[0]
    return "void" not in head.split() and "bool" not in head.split()


def _wrapped(d) -> str | None:
    """The allocating store or preallocation whose failure `d` hands to its caller, or None."""
    if not _returns_int(d):
        return None
    for c in d.cf.calls(d.fn):
        if c.name in CHECKED_STORES or c.name in CHECKED_PREALLOC:
            return c.name
    return None


class _Wrappers:
    """name -> (definition, the store it wraps): the series' own definitions in any file it changes,
    and the tree's at the base wherever it keeps them (one search, on the first call the rule does
    not know whose result is dropped)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.map = None

    def get(self, name: str):
        if self.map is None:
            self.map = {}
            found = self.ctx.mentioning(CHECKED_STORES | CHECKED_PREALLOC)
            for defs in found.values():
                for d, _ in defs:
                    if d.name in CHECKED_STORES or d.name in CHECKED_PREALLOC or d.name in PREPARED_STORES:
                        continue
                    w = _wrapped(d)
                    if w and d.name not in self.map:
                        self.map[d.name] = (d, w)
        return self.map.get(name)


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
    """The branch undoes nothing: empty, or it only reports the failure."""
    body = if_node.child_by_field_name("consequence")
    if body is None:
        return False
    stmts = body.named_children if body.type == "compound_statement" else [body]
    return all(c.type == "comment" or _reports(c) for c in stmts)


def _reports(stmt) -> bool:
    if stmt.type != "expression_statement":
        return False
    if stmt.named_child_count == 0:
        return True
    call = stmt.named_children[0]
    if call.type != "call_expression":
        return False
    fn = call.child_by_field_name("function")
    return fn is not None and bool(REPORTS.match(fn.text.decode()))


KNOWN = PREALLOC | RANGE | CHECKED_STORES | PREPARED_STORES | WARNS


def check(ctx):
    out = []
    wrappers = _Wrappers(ctx)
    for ch in changed_functions(ctx, lambda path, name: in_mm(path, ctx)):
        if not ch.lines:
            continue
        prepared = False
        ranged = False
        unchecked = None        # a preallocation whose failure nobody looks at
        for call in ch.cf.calls(ch.fn):
            wrap = None
            if call.line in ch.lines and call.name not in KNOWN and call.name != ch.fn.name and \
                    not REPORTS.match(call.name) and _ignored_result(call):
                wrap = wrappers.get(call.name)
            if wrap is not None and wrap[1] in CHECKED_STORES:
                d, w = wrap
                out.append(ch.finding(ctx, call.line, f"{ch.fn.name}(): {call.name}() ({d.describe()}) hands "
                                      f"on what {w}() returns, which can fail with -ENOMEM, and "
                                      f"{_ignored_result(call)}: unwind (unlock, free) on failure",
                                      excerpt=[ch.cf.line_text(call.line).strip(),
                                               f"{d.path}:{d.line}: {d.cf.line_text(d.line).strip()}"]))
                continue
            if wrap is not None:        # a wrapped preallocation: as the preallocation itself
                prepared = True
                unchecked = (call, _ignored_result(call) + f" ({call.name}() wraps {wrap[1]}(), "
                                                           f"{wrap[0].describe()})")
                continue
            if call.name in PREALLOC:
                prepared = True
                if call.name in CHECKED_PREALLOC:
                    how = _ignored_result(call)
                    unchecked = (call, how) if how else None
            if call.name in RANGE:
                ranged = True
            if unchecked and call.name in PREPARED_STORES and \
                    (call.line in ch.lines or unchecked[0].line in ch.lines):
                pre, how = unchecked
                line = pre.line if pre.line in ch.lines else call.line
                out.append(ch.finding(ctx, line, f"{ch.fn.name}(): {pre.name}() can fail with -ENOMEM and "
                                      f"{how}, so the {call.name}() at line {call.line} may have no "
                                      "nodes to store with: check it and unwind"))
                unchecked = None
                continue
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
