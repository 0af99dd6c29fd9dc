"""What a failed dup_mmap() leaves behind for the exit path, and the exit path's teardown.

Liam Howlett's objection to using exit_mmap() to undo a failed fork (Sep 2023) is about meaning, not
spelling: whatever dup_mmap() sets on its failure path - an mm flag, an mm or VMA field, a global, a
marker stored in the tree - and exit_mmap() (or a helper it reaches) then reads, is a cost every
exiting task pays for a rare failure.  This module finds the two ends:

- `failure_states(cf, fn, lines)`: the state a function sets on its failure path (the branch taken
  when an error value is set, the code after an error label), as tokens the exit path would read;
- `teardown_graph(...)`: the functions exit_mmap() reaches, by name, through the files at hand.

Both are read from tree-sitter's parse of the real files; nothing is matched on one sample's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mmreview.rules.analysis.cparse import CFile, Function

# Failure branches: an `if` testing an error value, or an allocation that came back NULL.
ERROR_VAR = re.compile(r"^(retval|err|error|ret|rc|result)$")
ERROR_CALL = re.compile(r"\b(IS_ERR(_OR_NULL)?|mas_is_err|xa_is_err|unlikely\s*\(\s*ret)\b")
ERROR_CMP = re.compile(r"^(retval|err|error|ret|rc|result)\s*(<|!=)\s*0$")
ERROR_LABEL = re.compile(r"(^|_)(err|error|fail|failed|bail|nomem|enomem|abort|unwind|undo)", re.I)
# calls that set a flag bit: the flag is the first argument
FLAG_SETTERS = {"set_bit", "__set_bit", "test_and_set_bit", "mm_flags_set", "set_mask_bits",
                "mm_flags_test_and_set"}
# values a failed copy leaves in the VMA tree: what stores them, and what the exit path then tests
MARKERS = {"XA_ZERO_ENTRY": ("XA_ZERO_ENTRY", "xa_is_zero")}
# Stores into a maple tree: a constant they store where dup_mmap() fails (a macro, such as
# XA_ZERO_ENTRY or a series' own `#define ... xa_mk_value(...)`) is a marker left in the tree.
# (store -> the position of the entry it stores)
TREE_STORES = {**dict.fromkeys(["mas_store", "mas_store_gfp", "mas_store_prealloc", "mas_insert",
                                "vma_iter_store", "vma_iter_store_gfp", "vma_iter_bulk_store",
                                "vma_iter_store_new", "vma_iter_store_overwrite"], 1),
               "mtree_store": 2, "mtree_insert": 2, "mtree_store_range": 3, "mtree_insert_range": 3}
MACRO_NAME = re.compile(r"^[A-Z][A-Z0-9_]{2,}$")
# Known spellings of dup_mmap()'s failure state in kernels that had it (6.x); a kernel that dropped
# them (7.x) still gets a series reintroducing them caught, with no setter to point at.  MMF_UNSTABLE
# is not one of them: it is failure state only where dup_mmap() sets it (see the rule's docstring).
HISTORIC = {"xa_is_zero": "tree marker", "XA_ZERO_ENTRY": "tree marker"}
# Fields too general to say anything by themselves (every path writes them).
GENERIC_FIELDS = {"flags", "map_count", "vm_flags", "node", "index", "last"}


@dataclass(frozen=True)
class State:
    token: str          # the identifier the exit path would read (MMF_X, a field, a global)
    kind: str           # "mm flag" | "field" | "global" | "tree marker"
    path: str
    line: int
    patch: int          # 0: the base has it
    text: str           # the setting line, stripped

    def where(self) -> str:
        who = f"patch {self.patch}" if self.patch else "the base"
        return f"{self.path}:{self.line} ({who})"


def _strip_cond(text: str) -> str:
    t = text.strip()
    while t.startswith("(") and t.endswith(")"):
        t = t[1:-1].strip()
    m = re.match(r"^(unlikely|likely)\s*\((.*)\)$", t, re.S)
    return m.group(2).strip() if m else t


def failure_branch(if_node):
    """The branch of an `if` taken on failure, or None when its condition tests no error."""
    cond = if_node.child_by_field_name("condition")
    if cond is None:
        return None
    text = _strip_cond(cond.text.decode("utf-8", "replace"))
    cons = if_node.child_by_field_name("consequence")
    alt = if_node.child_by_field_name("alternative")
    if text.startswith("!"):
        inner = _strip_cond(text[1:])
        if ERROR_VAR.match(inner):
            return alt                      # if (!retval) { success } else { failure }
        if re.match(r"^[A-Za-z_][\w>.-]*$", inner):
            return cons                     # if (!tmp): an allocation that failed
        return None
    if ERROR_VAR.match(text) or ERROR_CALL.search(text) or ERROR_CMP.match(text):
        return cons
    return None


def failure_nodes(fn: Function) -> list:
    """Statement nodes of `fn` on its failure path."""
    out: list = []

    def walk(node, failing: bool) -> None:
        if node.type == "if_statement":
            fb = failure_branch(node)
            for c in node.children:
                walk(c, failing or (fb is not None and c.id == fb.id))
            return
        if node.type == "compound_statement":
            region = failing
            for c in node.children:
                if c.type == "labeled_statement":
                    label = c.child_by_field_name("label")
                    name = label.text.decode() if label is not None else ""
                    region = failing or bool(ERROR_LABEL.search(name))
                walk(c, region)
                if c.type == "return_statement" and not failing:
                    region = False
            return
        if failing and node.type in ("expression_statement", "declaration", "return_statement"):
            out.append(node)
            return
        for c in node.children:
            walk(c, failing)

    body = fn.node.child_by_field_name("body")
    if body is not None:
        walk(body, False)
    return out


def _locals(fn: Function) -> tuple[set[str], set[str]]:
    """(names declared in `fn`, the parameter names)."""
    declared: set[str] = set()
    stack = [fn.node.child_by_field_name("body")]
    while stack:
        n = stack.pop()
        if n is None:
            continue
        if n.type == "declaration":
            for d in n.children_by_field_name("declarator"):
                while d is not None and d.type not in ("identifier",):
                    d = d.child_by_field_name("declarator")
                if d is not None:
                    declared.add(d.text.decode())
        if n.type == "call_expression":     # VMA_ITERATOR(vmi, ...), MA_STATE(mas, ...)
            f = n.child_by_field_name("function")
            args = n.child_by_field_name("arguments")
            if f is not None and f.text.decode().isupper() and args is not None and args.named_children:
                first = args.named_children[0]
                if first.type == "identifier":
                    declared.add(first.text.decode())
        stack.extend(n.children)
    params = set()
    for p in fn.params:
        m = re.findall(r"[A-Za-z_]\w*", p)
        if m:
            params.add(m[-1])
    return declared, params


def _root(field_expr):
    """(root identifier, operator of the outermost access from it) of `a->b.c`."""
    n = field_expr
    op = None
    while n is not None and n.type == "field_expression":
        arg = n.child_by_field_name("argument")
        opn = n.child_by_field_name("operator")
        op = opn.text.decode() if opn is not None else op
        n = arg
        while n is not None and n.type in ("parenthesized_expression", "pointer_expression"):
            n = n.named_children[-1] if n.named_children else None
    return (n.text.decode() if n is not None and n.type == "identifier" else None), op


def states_in(nodes, fn: Function, lines: set[int] | None) -> list[tuple[str, str, int]]:
    """(token, kind, line) of the state the statements `nodes` set, on `lines` (None: all)."""
    declared, params = _locals(fn)
    out: list[tuple[str, str, int]] = []
    for root in nodes:
        stack = [root]
        while stack:
            n = stack.pop()
            ln = n.start_point[0] + 1
            stack.extend(n.children)
            if lines is not None and ln not in lines:
                continue
            if n.type == "call_expression":
                f = n.child_by_field_name("function")
                args = n.child_by_field_name("arguments")
                name = f.text.decode() if f is not None else ""
                argv = [a for a in (args.named_children if args is not None else []) if a.type != "comment"]
                if name in FLAG_SETTERS and argv and argv[0].type == "identifier":
                    out.append((argv[0].text.decode(), "mm flag", ln))
                if name == "WRITE_ONCE" and argv and argv[0].type == "field_expression":
                    fld = argv[0].child_by_field_name("field")
                    if fld is not None and fld.text.decode() not in GENERIC_FIELDS:
                        out.append((fld.text.decode(), "field", ln))
                for a in argv[1:]:
                    for marker, tokens in MARKERS.items():
                        if marker in a.text.decode("utf-8", "replace"):
                            out += [(t, "tree marker", ln) for t in tokens]
                if name in TREE_STORES and len(argv) > TREE_STORES[name]:
                    a = argv[TREE_STORES[name]]
                    v = a.text.decode("utf-8", "replace")
                    if a.type == "identifier" and MACRO_NAME.match(v) and v not in MARKERS and \
                            v not in declared and v not in params:
                        out.append((v, "tree marker", ln))
            elif n.type == "assignment_expression":
                left = n.child_by_field_name("left")
                right = n.child_by_field_name("right")
                op = n.child_by_field_name("operator")
                if left is None:
                    continue
                if left.type == "field_expression":
                    root_name, access = _root(left)
                    if root_name is None or (root_name in declared and access == "."):
                        continue            # a local struct (unmap.tree_end, vmi.mas): gone at exit
                    fld = left.child_by_field_name("field")
                    field = fld.text.decode() if fld is not None else ""
                    if op is not None and op.text.decode() == "|=" and right is not None:
                        out += [(t, "mm flag", ln) for t in re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b(?!\s*\()",
                                                                        right.text.decode())]
                    elif field and field not in GENERIC_FIELDS:
                        out.append((field, "field", ln))
                elif left.type == "identifier":
                    name = left.text.decode()
                    if name not in declared and name not in params:
                        out.append((name, "global", ln))
    return out


def failure_states(cf: CFile, fn: Function, lines: set[int] | None, path: str, patch: int) -> list[State]:
    """The state `fn` sets on its failure path (on `lines` only, unless None)."""
    return [State(tok, kind, path, ln, patch, cf.line_text(ln).strip())
            for tok, kind, ln in states_in(failure_nodes(fn), fn, lines)]


def failure_calls(cf: CFile, fn: Function) -> set[str]:
    """Names of the functions `fn` calls on its failure path."""
    out = set()
    for node in failure_nodes(fn):
        for c in cf.calls(node):
            out.add(c.name)
    return out


def set_anywhere(cf: CFile, fn: Function) -> set[str]:
    """Tokens `fn` sets on any path (what the exit path sets itself is no fork-failure state)."""
    body = fn.node.child_by_field_name("body")
    return {t for t, _, _ in states_in([body] if body is not None else [], fn, None)}


def reachable(files: list[CFile], roots: set[str], depth: int,
              skip=lambda name: False) -> dict[str, tuple[str, ...]]:
    """Functions defined in `files` reachable from `roots` within `depth` calls: name -> the call
    chain from a root (a name defined nowhere here ends its branch)."""
    defs: dict[str, list[tuple[CFile, Function]]] = {}
    for cf in files:
        for fn in cf.functions:
            defs.setdefault(fn.name, []).append((cf, fn))
    seen: dict[str, tuple[str, ...]] = {r: (r,) for r in roots}
    frontier = list(roots)
    for _ in range(depth):
        nxt = []
        for name in frontier:
            for cf, fn in defs.get(name, []):
                for c in cf.calls(fn):
                    if c.name not in seen and not skip(c.name):
                        seen[c.name] = seen[name] + (c.name,)
                        nxt.append(c.name)
        frontier = nxt
    return seen
