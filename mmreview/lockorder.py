"""The mm lock hierarchy, read from the comment at the head of mm/rmap.c in the tree under review.

The comment is the authority (Hugh Dickins, 2022): a lock nested deeper
(more indented) under another is taken after it.  It holds several blocks:
the main "Lock ordering in mm:" tree, the memory_failure block (two locks
named on one line, separated by a comma, are peers) and the hugetlbfs block,
which orders folio_lock and i_mmap_rwsem the other way round for hugetlb
pages.  A block with its own scope overrides the main order only where it
applies (hugetlb code, mm/memory-failure.c); elsewhere only the pairs that do
not contradict the main order are used.

Lock calls are mapped to the comment's names by `lock_event(call)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Names as the comment spells them -> a lock id shared with the call map.
NAME_IDS = {
    "inode->i_rwsem": "i_rwsem",
    "mm->mmap_lock": "mmap_lock",
    "mapping->invalidate_lock": "invalidate_lock",
    "folio_lock": "folio_lock",
    "vma_start_write": "vma_write",
    "mapping->i_mmap_rwsem": "i_mmap_rwsem",
    "anon_vma->rwsem": "anon_vma_rwsem",
    "mm->page_table_lock or pte_lock": "ptl",
    "pte map lock": "ptl",
    "swap_lock": "swap_lock",
    "mmlist_lock": "mmlist_lock",
    "mapping->private_lock": "private_lock",
    "folio_lock_memcg move_lock": "move_lock",
    "i_pages lock": "i_pages",
    "lruvec->lru_lock": "lru_lock",
    "inode->i_lock": "i_lock",
    "bdi.wb->list_lock": "wb_list_lock",
    "sb_lock": "sb_lock",
    "tasklist_lock": "tasklist_lock",
    "hugetlb_fault_mutex": "hugetlb_fault_mutex",
    "vma_lock": "hugetlb_vma_lock",
}

# Lock APIs -> lock id.  Trylocks are left out on purpose: they cannot deadlock,
# and mm takes them against the order (e.g. folio_trylock under i_mmap_rwsem).
ACQUIRE = {
    **dict.fromkeys(["i_mmap_lock_write", "i_mmap_lock_read"], "i_mmap_rwsem"),
    **dict.fromkeys(["anon_vma_lock_write", "anon_vma_lock_read"], "anon_vma_rwsem"),
    **dict.fromkeys(["mmap_write_lock", "mmap_read_lock", "mmap_write_lock_killable",
                     "mmap_read_lock_killable", "mmap_write_lock_nested"], "mmap_lock"),
    "vma_start_write": "vma_write",
    **dict.fromkeys(["folio_lock", "__folio_lock", "folio_lock_killable", "lock_page"], "folio_lock"),
    **dict.fromkeys(["filemap_invalidate_lock", "filemap_invalidate_lock_shared"], "invalidate_lock"),
    **dict.fromkeys(["inode_lock", "inode_lock_shared", "inode_lock_nested"], "i_rwsem"),
    **dict.fromkeys(["pte_offset_map_lock", "pmd_lock", "pud_lock", "huge_pte_lock"], "ptl"),
    **dict.fromkeys(["folio_lruvec_lock", "folio_lruvec_lock_irq", "folio_lruvec_lock_irqsave"],
                    "lru_lock"),
    **dict.fromkeys(["hugetlb_vma_lock_read", "hugetlb_vma_lock_write"], "hugetlb_vma_lock"),
}
RELEASE = {
    **dict.fromkeys(["i_mmap_unlock_write", "i_mmap_unlock_read"], "i_mmap_rwsem"),
    **dict.fromkeys(["anon_vma_unlock_write", "anon_vma_unlock_read"], "anon_vma_rwsem"),
    **dict.fromkeys(["mmap_write_unlock", "mmap_read_unlock"], "mmap_lock"),
    **dict.fromkeys(["folio_unlock", "unlock_page"], "folio_lock"),
    **dict.fromkeys(["filemap_invalidate_unlock", "filemap_invalidate_unlock_shared"],
                    "invalidate_lock"),
    **dict.fromkeys(["inode_unlock", "inode_unlock_shared"], "i_rwsem"),
    "pte_unmap_unlock": "ptl",
    **dict.fromkeys(["unlock_page_lruvec", "unlock_page_lruvec_irq", "unlock_page_lruvec_irqrestore",
                     "lruvec_unlock", "lruvec_unlock_irq", "lruvec_unlock_irqrestore"], "lru_lock"),
    **dict.fromkeys(["hugetlb_vma_unlock_read", "hugetlb_vma_unlock_write"], "hugetlb_vma_lock"),
}
# Generic primitives: the lock is named by the field their argument points at.
_GENERIC_ACQ = re.compile(r"^(spin_lock(_irq|_irqsave|_bh|_nested)?|down_(read|write)(_killable|_nested)?"
                          r"|mutex_lock(_nested|_killable|_interruptible)?|read_lock(_irq)?|write_lock(_irq)?"
                          r"|xa_lock(_irq|_irqsave|_bh)?)$")
_GENERIC_REL = re.compile(r"^(spin_unlock(_irq|_irqrestore|_bh)?|up_(read|write)|mutex_unlock"
                          r"|read_unlock(_irq)?|write_unlock(_irq)?|xa_unlock(_irq|_irqrestore|_bh)?)$")
_FIELD_IDS = {
    "i_mmap_rwsem": "i_mmap_rwsem", "page_table_lock": "ptl", "ptl": "ptl", "mmlist_lock": "mmlist_lock",
    "swap_lock": "swap_lock", "i_lock": "i_lock", "private_lock": "private_lock", "lru_lock": "lru_lock",
    "sb_lock": "sb_lock", "tasklist_lock": "tasklist_lock", "i_pages": "i_pages",
    "invalidate_lock": "invalidate_lock", "i_rwsem": "i_rwsem", "mmap_lock": "mmap_lock",
    "hugetlb_fault_mutex_table": "hugetlb_fault_mutex",
}
# mmap_write_unlock() also ends every vma_start_write() of the mm.
ALSO_RELEASES = {"mmap_lock": ("vma_write",)}


def _field_of(arg: str) -> str | None:
    a = re.sub(r"\[[^\]]*\]", "", arg).strip().lstrip("&(").rstrip(")").strip()
    last = re.split(r"->|\.", a)[-1].strip()
    if last == "rwsem" and "anon_vma" in a:
        return "anon_vma_rwsem"
    if last == "list_lock" and "wb" in a:
        return "wb_list_lock"
    return _FIELD_IDS.get(last)


def lock_event(name: str, args: list[str]) -> tuple[str, str] | None:
    """("acquire"|"release", lock id) for a call, or None if it is no lock call we know."""
    if name in ACQUIRE:
        return "acquire", ACQUIRE[name]
    if name in RELEASE:
        return "release", RELEASE[name]
    if args and (_GENERIC_ACQ.match(name) or _GENERIC_REL.match(name)):
        lid = _field_of(args[0])
        if lid:
            return ("acquire" if _GENERIC_ACQ.match(name) else "release"), lid
    return None


@dataclass
class Node:
    names: list[str]            # as the comment spells them
    ids: list[str]
    text: str                   # the comment line, trimmed
    line: int                   # line number in mm/rmap.c
    indent: int
    parent: "Node | None" = None


@dataclass
class Block:
    title: str                  # the line introducing the block ("" when it has none)
    scope: str                  # "main" | "hugetlb" | "memory_failure"
    nodes: list[Node] = field(default_factory=list)


@dataclass
class Order:
    """a_id must be taken before b_id: the two comment lines that say so."""
    before: str
    after: str
    before_line: str
    after_line: str
    before_no: int
    after_no: int
    scope: str


@dataclass
class Hierarchy:
    path: str
    blocks: list[Block]

    def _pairs(self, block: Block) -> dict[tuple[str, str], Order]:
        out: dict[tuple[str, str], Order] = {}
        for n in block.nodes:
            anc = n.parent
            while anc is not None:
                for a in anc.ids:
                    for b in n.ids:
                        if a != b:
                            out.setdefault((a, b), Order(a, b, anc.text, n.text, anc.line, n.line,
                                                         block.scope))
                anc = anc.parent
        return out

    def order_for(self, path: str, function: str | None) -> dict[tuple[str, str], Order]:
        """The (before, after) pairs that hold for code in `path`/`function`."""
        main: dict[tuple[str, str], Order] = {}
        special: list[tuple[str, dict]] = []
        for b in self.blocks:
            if b.scope == "main":
                main.update(self._pairs(b))
            else:
                special.append((b.scope, self._pairs(b)))
        result = dict(main)
        fname = (function or "") + " " + path
        for scope, pairs in special:
            applies = (scope == "hugetlb" and "hugetlb" in fname) or \
                      (scope == "memory_failure" and "memory-failure" in path)
            for (a, b), o in pairs.items():
                if (b, a) in result:
                    if not applies:
                        continue
                    del result[(b, a)]
                result.setdefault((a, b), o)
        return result


class NoHierarchy(Exception):
    pass


_NAME_SPLIT = re.compile(r"\t| {2,}|\s\(")


def _names(entry: str) -> list[str]:
    head = _NAME_SPLIT.split(entry, maxsplit=1)[0].strip()
    names = [n.strip() for n in head.split(",") if n.strip()]
    return [n[2:] if n.startswith("->") else n for n in names]


def _lock_id(name: str) -> str:
    if name in NAME_IDS:
        return NAME_IDS[name]
    if name.endswith(" lock"):
        name = name[:-5]
    return re.split(r"->|\.", name)[-1].strip()


def parse_hierarchy(src: str, path: str = "mm/rmap.c") -> Hierarchy:
    """Read the lock-ordering comment; NoHierarchy if the file has none."""
    lines = src.splitlines()
    start = next((i for i, l in enumerate(lines) if re.search(r"Lock ordering in mm", l)), None)
    if start is None:
        raise NoHierarchy(f"{path} has no 'Lock ordering in mm:' comment")
    blocks: list[Block] = [Block(title=lines[start].strip(" */"), scope="main")]
    stack: list[Node] = []
    open_paren = 0
    for i in range(start + 1, len(lines)):
        raw = lines[i]
        if "*/" in raw:
            break
        body = re.sub(r"^\s*\*", "", raw).expandtabs(8)
        if not body.strip():
            if blocks[-1].nodes:
                blocks.append(Block(title="", scope="main"))
            stack = []
            open_paren = 0
            continue
        text = body.strip()
        indent = len(body) - len(body.lstrip(" ")) - 1
        if open_paren > 0 and stack:
            # continuation of a parenthesised note on the previous entry
            stack[-1].text += " " + text
            open_paren += text.count("(") - text.count(")")
            continue
        if text.endswith(":") and not blocks[-1].nodes:
            blocks[-1].title = text
            blocks[-1].scope = "hugetlb" if "hugetlb" in text.lower() else "main"
            continue
        names = _names(text)
        if not names:
            continue
        while stack and stack[-1].indent >= indent:
            stack.pop()
        node = Node(names=names, ids=[_lock_id(n) for n in names], text=text, line=i + 1, indent=indent,
                    parent=stack[-1] if stack else None)
        if not blocks[-1].nodes and "memory_failure" in text:
            blocks[-1].scope = "memory_failure"
        blocks[-1].nodes.append(node)
        stack.append(node)
        open_paren = text.count("(") - text.count(")")
    blocks = [b for b in blocks if b.nodes]
    if not blocks or not any(b.scope == "main" for b in blocks):
        raise NoHierarchy(f"{path}: the lock-ordering comment lists no locks")
    return Hierarchy(path=path, blocks=blocks)


@dataclass
class Violation:
    held_call: object           # cparse.Call taken first
    taken_call: object          # cparse.Call taken while holding it
    order: Order                # the comment says order.before must come first


class summaries:
    """Per function of a file, on demand: the locks it takes itself (blocking acquires, not via
    other calls).  Only helpers called while a lock is held are ever looked at."""

    def __new__(cls, cfile):
        cached = getattr(cfile, "_lock_summaries", None)
        if cached is None:
            cached = super().__new__(cls)
            cached.cfile = cfile
            cached.memo = {}
            cfile._lock_summaries = cached
        return cached

    def get(self, name: str, default=()):
        if name not in self.memo:
            got: set[str] = set()
            for fn in self.cfile.functions:
                if fn.name == name:
                    got |= {ev[1] for c in self.cfile.calls(fn)
                            if (ev := lock_event(c.name, c.args)) and ev[0] == "acquire"}
            self.memo[name] = got
        return self.memo[name] or default


def violations(calls, order: dict[tuple[str, str], Order],
               helpers: dict[str, set[str]] | None = None) -> list[Violation]:
    """Walk lock calls in textual order (flow-insensitive); report each acquire of a lock
    the hierarchy puts above one already held.  A call to a helper of the same file that takes
    locks itself counts as taking them there (one level deep; what it leaves held is not tracked)."""
    held: list[tuple[str, object]] = []
    out = []
    for c in calls:
        ev = lock_event(c.name, c.args)
        if ev is None:
            if not held or helpers is None:
                continue
            for lid in sorted(helpers.get(c.name, ())):
                for hid, hcall in held:
                    o = order.get((lid, hid))
                    if o is not None and reachable(hcall.node, c.node):
                        out.append(Violation(held_call=hcall, taken_call=c, order=o))
            continue
        kind, lid = ev
        if kind == "release":
            for j in range(len(held) - 1, -1, -1):
                if held[j][0] == lid:
                    del held[j]
                    break
            for extra in ALSO_RELEASES.get(lid, ()):
                held = [h for h in held if h[0] != extra]
            continue
        for hid, hcall in held:
            o = order.get((lid, hid))
            if o is not None and reachable(hcall.node, c.node):
                out.append(Violation(held_call=hcall, taken_call=c, order=o))
        held.append((lid, c))
    return out


_JUMPS = ("return_statement", "goto_statement", "break_statement", "continue_statement")


def _under(node, ancestor) -> bool:
    n = node
    while n is not None:
        if n.id == ancestor.id:
            return True
        n = n.parent
    return False


def reachable(first, second) -> bool:
    """Could `second` run after `first` with nothing in between ending first's path?  Rules out the
    two arms of one if/else, and a block that takes a lock and then jumps away (goto/return)."""
    n = first.parent
    while n is not None:
        if n.type == "if_statement":
            cons, alt = n.child_by_field_name("consequence"), n.child_by_field_name("alternative")
            if cons is not None and alt is not None:
                if (_under(first, cons) and _under(second, alt)) or (_under(first, alt) and _under(second, cons)):
                    return False
        if n.type == "compound_statement" and not _under(second, n):
            for child in n.named_children:
                if child.start_byte > first.end_byte and child.type in _JUMPS:
                    return False
        n = n.parent
    return True
