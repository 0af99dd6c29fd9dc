"""error-path-needs-test: a new failure path in dup_mmap() or the maple tree, and no test for it.

The reviewer's point: a failure path that only runs when memory runs out is never exercised unless
the series brings a test case that drives it; "we should have a testcase to test this scenario".

Forms it takes in code: in dup_mmap(), a same-file helper it calls, or lib/maple_tree.c, a new goto
to an error label (or to any label under a test of an error value), a new -ENOMEM returned or
assigned, or a new error test guarding an existing goto - while no patch of the series adds test
code (C lines, not comments or build files) under tools/testing/radix-tree, tools/testing/vma,
tools/testing/shared or lib/test_maple_tree.c.
Fine and not reported: the test comes in a later patch of the same series; -ENOMEM compared, not
returned; a goto to a cleanup label on the success path.
"""

import re

from mmreview.rules.helpers import changed_functions

ID = "error-path-needs-test"
SEVERITY = "warning"
TITLE = "New failure path in dup_mmap() or lib/maple_tree.c without a test case"
RATIONALE = """
Error paths that only run when an allocation fails are the ones nobody exercises.  Reviewing the
__mt_dup() conversion of dup_mmap(), Liam Howlett asked for exactly that: "we should have a testcase to
test this scenario", suggesting a fault injected at a given interval for a task with a given name, and
the maple tree's own userland suite (tools/testing/radix-tree, lib/test_maple_tree.c) and the VMA suite
(tools/testing/vma) are where such a case belongs.
"""
SOURCE = ("Liam R. Howlett, linux-kernel/linux-mm, Sep 2023, Re: [PATCH v2 6/6] fork: Use __mt_dup() to "
          "duplicate maple tree in dup_mmap()")

TESTS = ("tools/testing/radix-tree/", "tools/testing/vma/", "lib/test_maple_tree.c",
         "tools/testing/shared/")
# Labels that name a failure by themselves; other labels (out, unlock, free_leaf...) are also
# taken on success, so a goto to one counts only under an error test.
ERROR_LABEL = re.compile(r"(^|_)(err|error|fail|failed|bail|nomem|enomem|abort|unwind|undo)", re.I)
ERROR_TEST = re.compile(r"\b(err|error|ret|retval|rc)\b|IS_ERR|is_err|ENOMEM")


def _homes(ctx) -> tuple[set[str], set[str]]:
    """Where the tree at the base keeps dup_mmap() (kernel/fork.c up to 6.x, mm/mmap.c in 7.x) and
    the maple tree (lib/maple_tree.c)."""
    return set(ctx.locate("dup_mmap")) or {"kernel/fork.c"}, \
        set(ctx.locate("mas_store", where=("lib",))) or {"lib/maple_tree.c"}


def _failure_lines(cf, fn, lines, added):
    out = {}
    for node_line, text in _gotos_and_enomem(cf, fn, lines, added):
        out.setdefault(node_line, text)
    return out


def _guard(node):
    """The condition of the `if` a statement is the body of, or None."""
    p = node.parent
    if p is not None and p.type == "compound_statement":
        p = p.parent
    if p is None or p.type != "if_statement":
        return None
    return p.child_by_field_name("condition")


def _gotos_and_enomem(cf, fn, lines, added):
    stack = [fn.node]
    while stack:
        n = stack.pop()
        ln = n.start_point[0] + 1
        # a goto that existed before is still a new failure path when the test guarding it is new
        if n.type == "goto_statement":
            cond = _guard(n)
            guard = cond.start_point[0] + 1 if cond is not None else None
            where = ln if ln in lines else guard if guard in lines else None
            label = n.child_by_field_name("label")
            name = label.text.decode() if label is not None else ""
            # an error label, or the body of an `if` that tests an error value
            under_error_test = cond is not None and bool(
                ERROR_TEST.search(cond.text.decode("utf-8", "replace")))
            if where is not None and (ERROR_LABEL.search(name) or under_error_test):
                yield where, f"goto {name}"
            continue
        if n.type == "identifier" and n.text == b"ENOMEM" and ln in lines and _returned(n):
            yield ln, "-ENOMEM"
            continue
        if n.type == "comment":
            continue
        stack.extend(n.children)


def _returned(node) -> bool:
    """-ENOMEM returned or assigned (a new failure), not compared against."""
    p = node.parent
    if p is None or p.type != "unary_expression":
        return False
    q = p.parent
    while q is not None and q.type == "parenthesized_expression":
        q = q.parent
    if q is None:
        return False
    if q.type == "return_statement":
        return True
    if q.type in ("assignment_expression", "init_declarator"):
        return q.child_by_field_name("right") == p or q.child_by_field_name("value") == p
    return False


def _adds_test_code(ctx) -> bool:
    """A patch adds code (not only comments, blank lines or build files) under a test directory."""
    for pc in ctx.patches:
        for fc in pc.files:
            if not fc.path.startswith(TESTS) or not fc.path.endswith((".c", ".h")):
                continue
            for ln in fc.added:
                t = ln.text.strip()
                if t and not t.startswith(("/*", "*", "//")):
                    return True
    return False


class _DupCallees:
    """The functions dup_mmap() calls at a revision of the series (a helper of its own file carrying
    a failure path is dup_mmap()'s failure path); read only when a helper there changes."""

    def __init__(self, ctx, dup):
        self.ctx, self.dup, self.memo = ctx, dup, {}

    def get(self, rev: str) -> set[str]:
        if rev not in self.memo:
            names: set[str] = set()
            for path in self.dup:
                cf = self.ctx.cfile(rev, path)
                fn = cf.function_named("dup_mmap") if cf else None
                if fn is not None:
                    names |= {c.name for c in cf.calls(fn)}
            self.memo[rev] = names
        return self.memo[rev]


def check(ctx):
    if _adds_test_code(ctx):
        return []
    dup, maple = _homes(ctx)
    callees = _DupCallees(ctx, dup)
    where = [t for t in ("tools/testing/radix-tree", "tools/testing/vma", "lib/test_maple_tree.c")
             if ctx.exists(ctx.base_rev, t)] or ["tools/testing/radix-tree"]
    places = ", ".join(where[:-1]) + (" or " if len(where) > 1 else "") + where[-1]
    out = []
    for ch in changed_functions(ctx, lambda path, fn: path in dup or path in maple):
        if ch.path in dup and ch.path not in maple and ch.fn.name != "dup_mmap" and \
                ch.fn.name not in callees.get(ch.pc.rev_after):
            continue
        added = {ln.no for ln in ctx.added_in(ch.fc, ch.fn)}
        for ln, what in sorted(_failure_lines(ch.cf, ch.fn, ch.lines, added).items()):
            out.append(ch.finding(
                ctx, ln,
                f"{ch.fn.name}() gains a failure path ({what}) but the series adds no test under "
                f"{places}"))
    return out
