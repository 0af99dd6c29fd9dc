"""C as the rules see it: tree-sitter-c over whole kernel files, no preprocessing.

Kernel sources parse with a few ERROR nodes (macros tree-sitter cannot know,
e.g. `__acquires(x)` annotations); those stay local.  A line is only
"unparseable" when it sits in an ERROR region outside any function, which is
what `CFile.unparsed_at(line)` answers, so rules can report it as not applied
instead of guessing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache

import tree_sitter_c
from tree_sitter import Language, Node, Parser

_LANG = Language(tree_sitter_c.language())
_PARSER = Parser(_LANG)

C_SUFFIXES = (".c", ".h")

# Kernel annotations tree-sitter cannot know: `struct foo __user *p;` in a function's declarations
# makes it lose the whole function (7.3's userfaultfd_register() and everything after it).  They are
# blanked with spaces of the same length before parsing, so every byte offset and line stays where
# it is; rules read the original text through CFile.text_lines.
_ANNOTATIONS = re.compile(
    rb"\b(__user|__kernel|__iomem|__rcu|__percpu|__force|__nocast|__bitwise|__private|__safe"
    rb"|__must_check|__maybe_unused|__always_unused|__read_mostly|__ro_after_init|__cold|__hot"
    rb"|__noreturn|__counted_by\s*\([^()]*\)|__(acquires|releases|must_hold|cond_acquires"
    rb"|cond_releases)\s*\([^()]*\))(?![\w])")


# A loop macro closing a do-block (`do { ... } for_each_vma_range(vmi, cur, end);`, 7.3's
# userfaultfd_register()) is its while: spelled as one, of the same length, it parses as a do-while.
_DO_MACRO = re.compile(rb"(\}[ \t]*)(for_each_\w+|\w+_for_each\w*)(\s*\()")
# `scoped_guard(lock, &x) {` is an if over a comma expression as far as the parse is concerned.
_GUARD = re.compile(rb"\b(scoped_guard|scoped_cond_guard)(\s*\()")


def _blank(src: bytes) -> bytes:
    src = _ANNOTATIONS.sub(lambda m: b" " * len(m.group(0)), src)
    src = _DO_MACRO.sub(lambda m: m.group(1) + b"while" + b" " * (len(m.group(2)) - 5) + m.group(3), src)
    return _GUARD.sub(lambda m: b"if" + b" " * (len(m.group(1)) - 2) + m.group(2), src)


def is_c_path(path: str) -> bool:
    return path.endswith(C_SUFFIXES)


@dataclass
class Call:
    name: str                 # callee as written: "mas_store", "WARN_ON"
    args: list[str]           # argument texts
    line: int                 # 1-based line of the call's start
    end_line: int
    node: Node = field(repr=False)

    @property
    def text(self) -> str:
        return self.node.text.decode("utf-8", "replace")


@dataclass
class Function:
    name: str
    start: int                # 1-based, first line of the definition (declarator)
    end: int                  # 1-based, closing brace
    body_start: int           # line of the opening brace
    node: Node = field(repr=False)
    params: list[str] = field(default_factory=list)

    def contains(self, line: int) -> bool:
        return self.start <= line <= self.end

    def lines(self, src_lines: list[str]) -> list[str]:
        return src_lines[self.start - 1:self.end]


class CFile:
    """One parsed file: its functions and the regions tree-sitter could not make sense of."""

    def __init__(self, src: bytes):
        self.src = src
        self.tree = _PARSER.parse(_blank(src))
        self.text_lines = src.decode("utf-8", "replace").splitlines()
        self.functions: list[Function] = []
        self._errors: list[tuple[int, int]] = []
        self._collect(self.tree.root_node)
        self.functions.sort(key=lambda f: f.start)

    def _collect(self, node: Node) -> None:
        for child in node.children:
            if child.type == "function_definition":
                fn = _function(child)
                if fn:
                    self.functions.append(fn)
                continue
            if child.type == "ERROR" or child.is_missing:
                self._errors.append((child.start_point[0] + 1, child.end_point[0] + 1))
                # an ERROR may still hold whole function definitions
            if child.type in ("ERROR", "preproc_if", "preproc_ifdef", "preproc_else", "preproc_elif",
                              "linkage_specification", "declaration_list") or child.has_error:
                self._collect(child)

    def _uncovered(self, s: int, e: int) -> int:
        """Lines of [s, e] that no recognised function covers."""
        covered = set()
        for fn in self.functions:
            if fn.end >= s and fn.start <= e:
                covered.update(range(max(s, fn.start), min(e, fn.end) + 1))
        return (e - s + 1) - len(covered)

    @property
    def error_ratio(self) -> float:
        """Share of the file lost to parse errors (lines in ERROR regions outside any function)."""
        bad = sum(self._uncovered(s, e) for s, e in self._merged_errors())
        return bad / max(1, len(self.text_lines))

    def _merged_errors(self) -> list[tuple[int, int]]:
        out: list[list[int]] = []
        for s, e in sorted(self._errors):
            if out and s <= out[-1][1] + 1:
                out[-1][1] = max(out[-1][1], e)
            else:
                out.append([s, e])
        return [(s, e) for s, e in out]

    def function_at(self, line: int) -> Function | None:
        best = None
        for fn in self.functions:
            if fn.start <= line <= fn.end and (best is None or fn.start >= best.start):
                best = fn
        return best

    def function_named(self, name: str) -> Function | None:
        found = [f for f in self.functions if f.name == name]
        # #ifdef'd twins (e.g. nommu vs mmu): the longest is the real one
        return max(found, key=lambda f: f.end - f.start) if found else None

    def unparsed_at(self, line: int) -> bool:
        """True when `line` lies outside any function, in a parse error that spans several lines
        (a function body tree-sitter could not recognise).  One-line errors at file level are
        macros it does not know (DEFINE_*, __setup(...)): no function code is lost there."""
        if self.function_at(line):
            return False
        return any(s <= line <= e and self._uncovered(s, e) >= 3 for s, e in self._merged_errors())

    def calls(self, fn: Function | Node | None = None) -> list[Call]:
        """Call sites in textual order (within `fn`, or the whole file)."""
        root = self.tree.root_node if fn is None else (fn.node if isinstance(fn, Function) else fn)
        out: list[Call] = []
        stack = [root]
        while stack:
            n = stack.pop()
            if n.type == "call_expression":
                c = _call(n)
                if c:
                    out.append(c)
            stack.extend(reversed(n.children))
        out.sort(key=lambda c: c.node.start_byte)
        return out

    def line_text(self, line: int) -> str:
        return self.text_lines[line - 1] if 0 < line <= len(self.text_lines) else ""


def _text(n: Node | None) -> str:
    return n.text.decode("utf-8", "replace") if n is not None else ""


def _declarator_name(decl: Node | None) -> tuple[str | None, list[str]]:
    """Walk pointer/parenthesized declarators down to `name(params)`."""
    while decl is not None:
        if decl.type == "function_declarator":
            inner = decl.child_by_field_name("declarator")
            params = decl.child_by_field_name("parameters")
            plist = [_text(p) for p in params.named_children if p.type == "parameter_declaration"] \
                if params is not None else []
            while inner is not None and inner.type not in ("identifier", "field_identifier"):
                inner = inner.child_by_field_name("declarator") or (inner.named_children[0]
                                                                    if inner.named_children else None)
            return (_text(inner) if inner is not None else None), plist
        decl = decl.child_by_field_name("declarator")
    return None, []


def _function(node: Node) -> Function | None:
    name, params = _declarator_name(node.child_by_field_name("declarator"))
    body = node.child_by_field_name("body")
    if not name or body is None:
        return None
    return Function(name=name, start=node.start_point[0] + 1, end=node.end_point[0] + 1,
                    body_start=body.start_point[0] + 1, node=node, params=params)


def _call(n: Node) -> Call | None:
    fn = n.child_by_field_name("function")
    if fn is None or fn.type != "identifier":
        return None
    args_node = n.child_by_field_name("arguments")
    args = [_text(a) for a in args_node.named_children if a.type != "comment"] if args_node else []
    return Call(name=_text(fn), args=args, line=n.start_point[0] + 1, end_line=n.end_point[0] + 1,
                node=n)


@lru_cache(maxsize=256)
def _parse_cached(digest: str, src: bytes) -> CFile:
    return CFile(src)


def parse(src: bytes) -> CFile:
    """Parse once per distinct content (a series' revisions share most files)."""
    return _parse_cached(hashlib.blake2b(src, digest_size=16).hexdigest(), src)


def enclosing_statement(node: Node) -> Node:
    """The statement a call belongs to (expression_statement, if, return, declaration...)."""
    n = node
    while n.parent is not None and not n.type.endswith("statement") and n.type != "declaration":
        n = n.parent
    return n


def parent_chain(node: Node):
    n = node.parent
    while n is not None:
        yield n
        n = n.parent


def nodes_of(root: Node, *types: str):
    """Every node of `types` under `root` (itself included), depth first."""
    stack = [root]
    while stack:
        n = stack.pop()
        if n.type in types:
            yield n
        stack.extend(n.children)


def identifiers(fn: Function | Node, lines: set[int] | None = None) -> list[tuple[str, int]]:
    """(identifier, line) in code (comments and strings excluded), optionally only on `lines`."""
    root = fn.node if isinstance(fn, Function) else fn
    out = []
    stack = [root]
    while stack:
        n = stack.pop()
        if n.type in ("comment", "string_literal", "char_literal"):
            continue
        if n.type in ("identifier", "field_identifier", "type_identifier", "statement_identifier"):
            ln = n.start_point[0] + 1
            if lines is None or ln in lines:
                out.append((_text(n), ln))
            continue
        if lines is not None and (n.end_point[0] + 1 < min(lines, default=0)
                                  or n.start_point[0] + 1 > max(lines, default=0)):
            continue
        stack.extend(n.children)
    out.sort(key=lambda t: t[1])
    return out


def calls_on_lines(cf: CFile, fn: Function | None, lines: set[int]) -> list[Call]:
    """Call sites that start on one of `lines`."""
    if fn is None:
        return []
    return [c for c in cf.calls(fn) if c.line in lines]
