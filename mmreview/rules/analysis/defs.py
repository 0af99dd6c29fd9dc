"""Definitions where the kernel keeps them: macros (object- and function-like), static inline
functions in headers, functions of other .c files.

Kernel code puts its state and its little predicates in headers (include/linux/mm.h, mm/internal.h,
mm/vma.h): a rule that only followed helpers of the same file lost the thread there.  This module
turns a file's macros and functions into `Definition`s with a body the rules walk like any function:
a macro's replacement text is parsed as a function body placed on the macro's own lines, so calls
and identifiers in it keep their line numbers in the header.

Finding them is the RuleContext's job (engine.py: `definition(name)`, `mentioning(tokens)`): the
files the series changes first, then the tree at the base, searched with `git grep` wherever the
tree defines things (every header under include/ and mm/, and the .c files of the core directories).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mmreview.rules.analysis.cparse import CFile, Function

# Where the tree's definitions are searched at the base: every header a .c file of mm includes
# (include/, arch/x86/include/, the private headers of mm/, kernel/, lib/, fs/) and the .c files of
# the core directories.  Drivers and other architectures define nothing mm code calls.
HEADER_SCOPE = ("include/*.h", "arch/x86/include/*.h", "mm/*.h", "kernel/*.h", "lib/*.h", "fs/*.h")
C_SCOPE = ("mm/*.c", "kernel/*.c", "lib/*.c", "fs/*.c", "ipc/*.c", "init/*.c", "block/*.c",
           "security/*.c", "virt/*.c", "arch/x86/*.c")
SCOPE = HEADER_SCOPE + C_SCOPE


@dataclass
class Definition:
    name: str
    kind: str                   # "macro" | "static inline" | "function"
    path: str
    line: int                   # first line of the definition
    end: int
    src_lines: list[str] = field(repr=False)    # the lines of the file it is in
    params: list[str] = field(default_factory=list)
    patch: int = 0              # the series patch that last changed it (0: as the base has it)
    # the body the rules walk: the function, or a macro's replacement text parsed on its own lines
    # (on first use: most of a header's macros are never asked for)
    body_of: object = field(default=None, repr=False, compare=False)
    _body: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def cf(self) -> CFile:
        return self._parsed()[0]

    @property
    def fn(self) -> Function:
        return self._parsed()[1]

    def _parsed(self) -> tuple:
        if self._body is None:
            self._body = self.body_of()
        return self._body

    @property
    def text(self) -> str:
        """The definition, normalised: what is compared across revisions."""
        return " ".join(" ".join(self.src_lines[self.line - 1:self.end]).split())

    def source(self) -> str:
        """The definition's lines, as written."""
        return "\n".join(self.src_lines[self.line - 1:self.end])

    def where(self) -> str:
        who = f"patch {self.patch}" if self.patch else "the base"
        return f"{self.path}:{self.line} ({who})"

    def describe(self) -> str:
        """`a macro in include/linux/mm.h:123 (patch 1)`."""
        what = {"macro": "a macro", "static inline": "a static inline"}.get(self.kind, "defined")
        return f"{what} in {self.where()}" if what != "defined" else f"defined in {self.where()}"


_MACRO_FN = "__mmreview_macro_body"


def _macro(cf: CFile, node, path: str) -> Definition | None:
    name_n = node.child_by_field_name("name")
    value = node.child_by_field_name("value")
    if name_n is None or value is None:
        return None
    params_n = node.child_by_field_name("parameters")
    params = [p.text.decode() for p in params_n.named_children] if params_n is not None else []
    row = value.start_point[0]
    last = node.end_point[0] + (0 if node.end_point[1] == 0 else 1)
    raw = value.text

    def body():
        text = raw.replace(b"\\\r\n", b" \n").replace(b"\\\n", b" \n")
        # the body on the macro's own lines: `{ ... ; }` holds an expression, a statement list or a
        # do-while(0) alike
        src = b"\n" * row + f"void {_MACRO_FN}(void) {{ ".encode() + text + b" ;\n}\n"
        parsed = CFile(src)     # not parse(): a macro's body must not crowd whole files out of its cache
        parsed.text_lines[:last] = cf.text_lines[:last]     # excerpts read the header's own lines
        return parsed, parsed.function_named(_MACRO_FN)

    return Definition(name=name_n.text.decode(), kind="macro", path=path, line=node.start_point[0] + 1,
                      end=last, src_lines=cf.text_lines, params=params, body_of=body)


def definitions(cf: CFile, path: str) -> dict[str, Definition]:
    """Every macro and function `cf` defines, by name (the longest of #ifdef'd twins); kept on the
    CFile (a file's content is parsed once per process)."""
    cached = getattr(cf, "_definitions", None)
    if cached is not None and cached[0] == path:
        return cached[1]
    out: dict[str, Definition] = {}
    for fn in cf.functions:
        head = " ".join(cf.text_lines[fn.start - 1:fn.body_start])
        kind = "static inline" if path.endswith(".h") and "inline" in head.split("(")[0] else "function"
        d = Definition(name=fn.name, kind=kind, path=path, line=fn.start, end=fn.end,
                       src_lines=cf.text_lines, params=fn.params, _body=(cf, fn))
        if fn.name not in out or (fn.end - fn.start) > (out[fn.name].end - out[fn.name].line):
            out[fn.name] = d
    stack = [cf.tree.root_node]
    while stack:
        n = stack.pop()
        if n.type in ("preproc_def", "preproc_function_def"):
            m = _macro(cf, n, path)
            if m is not None and m.name not in out:
                out[m.name] = m
            continue
        if n.type in ("translation_unit", "preproc_if", "preproc_ifdef", "preproc_else", "preproc_elif",
                      "preproc_elifdef", "ERROR", "linkage_specification", "declaration_list"):
            stack.extend(reversed(n.children))
    cf._definitions = (path, out)
    return out


def calls_in(d: Definition):
    """The calls a definition's body makes."""
    return d.cf.calls(d.fn)
