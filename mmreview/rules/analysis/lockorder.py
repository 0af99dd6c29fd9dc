"""The mm lock hierarchy, read from the comment at the head of mm/rmap.c in the tree under review.

The comment is the authority (Hugh Dickins, 2022): a lock nested deeper
(more indented) under another is taken after it.  It holds several blocks:
the main "Lock ordering in mm:" tree, the memory_failure block (two locks
named on one line, separated by a comma, are peers) and the hugetlbfs block,
which orders folio_lock and i_mmap_rwsem the other way round for hugetlb
pages.  A block with its own scope overrides the main order only where it
applies (hugetlb code, mm/memory-failure.c); elsewhere only the pairs that do
not contradict the main order are used.

Lock calls are mapped to the comment's names by `lock_event(call)`.  Every name of the comment
must map to lock APIs (`apis_for(id)`); a name that maps to none is kept in the hierarchy but listed
in `Hierarchy.unmapped()`, so the rule can say which orders it cannot check instead of losing them
silently.  Older trees spell some locks differently: 6.1 writes the folio lock as
`page->flags PG_locked (lock_page)`; a name the tables do not know is also tried through the lock
API its parenthesised note names (`(lock_page)`).
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
    # 6.1 and older: the page lock, which the folio lock APIs take
    "page->flags PG_locked": "folio_lock",
    # the lockdep class of a hugetlbfs inode's i_mmap_rwsem: the same i_mmap_lock_* calls
    "hugetlbfs_i_mmap_rwsem_key": "i_mmap_rwsem",
}
# Names whose calls cannot be told apart from another line's: the locks above them are ordered
# before them, but nothing is ordered below them (hugetlbfs_i_mmap_rwsem_key sits above
# vma_start_write and mapping->i_mmap_rwsem, which would otherwise order i_mmap_rwsem both ways).
ALIASES = {"hugetlbfs_i_mmap_rwsem_key":
           "lockdep class of a hugetlbfs inode's i_mmap_rwsem (huge_pmd_share): the same calls as "
           "mapping->i_mmap_rwsem, so only the locks above it are ordered against it"}

# Lock APIs -> lock id.  Trylocks are left out on purpose: they cannot deadlock,
# and mm takes them against the order (e.g. folio_trylock under i_mmap_rwsem).
ACQUIRE = {
    **dict.fromkeys(["i_mmap_lock_write", "i_mmap_lock_read"], "i_mmap_rwsem"),
    **dict.fromkeys(["anon_vma_lock_write", "anon_vma_lock_read"], "anon_vma_rwsem"),
    **dict.fromkeys(["mmap_write_lock", "mmap_read_lock", "mmap_write_lock_killable",
                     "mmap_read_lock_killable", "mmap_write_lock_nested"], "mmap_lock"),
    "vma_start_write": "vma_write",
    **dict.fromkeys(["folio_lock", "__folio_lock", "folio_lock_killable", "__folio_lock_killable",
                     "lock_page", "__lock_page", "lock_page_killable", "__lock_page_killable",
                     "folio_lock_or_retry", "__folio_lock_or_retry"], "folio_lock"),
    **dict.fromkeys(["filemap_invalidate_lock", "filemap_invalidate_lock_shared"], "invalidate_lock"),
    **dict.fromkeys(["inode_lock", "inode_lock_shared", "inode_lock_nested"], "i_rwsem"),
    **dict.fromkeys(["pte_offset_map_lock", "pmd_lock", "pud_lock", "huge_pte_lock"], "ptl"),
    **dict.fromkeys(["folio_lruvec_lock", "folio_lruvec_lock_irq", "folio_lruvec_lock_irqsave"],
                    "lru_lock"),
    **dict.fromkeys(["hugetlb_vma_lock_read", "hugetlb_vma_lock_write"], "hugetlb_vma_lock"),
    # 6.1 (gone with the move_lock line in 6.13)
    **dict.fromkeys(["folio_memcg_lock", "lock_page_memcg"], "move_lock"),
}
# Trylocks: a lock taken with one is held afterwards (a blocking acquire of a lock above it is a
# violation), but the trylock itself is never reported: it cannot deadlock, and mm takes them
# against the order on purpose (e.g. folio_trylock under i_mmap_rwsem).
TRYLOCK = {
    **dict.fromkeys(["folio_trylock", "trylock_page"], "folio_lock"),
    **dict.fromkeys(["mmap_read_trylock", "mmap_write_trylock"], "mmap_lock"),
    **dict.fromkeys(["i_mmap_trylock_read", "i_mmap_trylock_write"], "i_mmap_rwsem"),
    **dict.fromkeys(["anon_vma_trylock_read", "anon_vma_trylock_write"], "anon_vma_rwsem"),
    **dict.fromkeys(["inode_trylock", "inode_trylock_shared"], "i_rwsem"),
    **dict.fromkeys(["filemap_invalidate_trylock_shared"], "invalidate_lock"),
    **dict.fromkeys(["hugetlb_vma_trylock_read", "hugetlb_vma_trylock_write"], "hugetlb_vma_lock"),
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
    **dict.fromkeys(["folio_memcg_unlock", "__folio_memcg_unlock", "unlock_page_memcg"], "move_lock"),
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
    "hugetlb_fault_mutex_table": "hugetlb_fault_mutex", "i_private_lock": "private_lock",
    "move_lock": "move_lock",
}
# Fields the generic primitives name only together with their owner (see _field_of).
_OWNED_FIELDS = {"anon_vma_rwsem": "down_write(&anon_vma->root->rwsem)",
                 "wb_list_lock": "spin_lock(&wb->list_lock)"}
_GENERIC_SHOWN = "spin_lock*/down_*/mutex_lock*/read_lock*/write_lock*/xa_lock*"
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
    if name in TRYLOCK:
        return "trylock", TRYLOCK[name]
    if args and (_GENERIC_ACQ.match(name) or _GENERIC_REL.match(name)):
        lid = _field_of(args[0])
        if lid:
            return ("acquire" if _GENERIC_ACQ.match(name) else "release"), lid
    return None


def apis_for(lock_id: str) -> list[str]:
    """The calls that take `lock_id`, as --explain shows them ([] when none: an unmapped line)."""
    out = [k for k, v in ACQUIRE.items() if v == lock_id]
    out += [f"{k} (trylock)" for k, v in TRYLOCK.items() if v == lock_id]
    fields = [f for f, v in _FIELD_IDS.items() if v == lock_id]
    if fields:
        out.append(f"{_GENERIC_SHOWN}(&...->{'|'.join(fields)})")
    if lock_id in _OWNED_FIELDS:
        out.append(_OWNED_FIELDS[lock_id])
    return out


def is_mapped(lock_id: str) -> bool:
    return bool(apis_for(lock_id))


@dataclass
class Node:
    names: list[str]            # as the comment spells them
    ids: list[str]
    text: str                   # the comment line, trimmed
    line: int                   # line number in mm/rmap.c
    indent: int
    parent: "Node | None" = None
    alias: bool = False         # ordered below its ancestors only (see ALIASES)

    @property
    def unmapped(self) -> list[str]:
        """The names of this line that no lock API maps to."""
        return [n for n, i in zip(self.names, self.ids) if not is_mapped(i)]


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
        # an alias line (hugetlbfs_i_mmap_rwsem_key) is quoted only when no plain line says the same
        for n in sorted(block.nodes, key=lambda n: n.alias):
            anc = n.parent
            while anc is not None:
                if anc.alias:
                    anc = anc.parent
                    continue
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


    def nodes(self) -> list[tuple[Block, Node]]:
        return [(b, n) for b in self.blocks for n in b.nodes]

    def unmapped(self) -> list[Node]:
        """Lines with a name no lock API maps to: orders through them cannot be checked."""
        return [n for _, n in self.nodes() if n.unmapped]

    def describe(self) -> list[str]:
        """The hierarchy as parsed, one line per comment line, indented by depth, with the lock
        APIs each maps to (what `mmreview rules --explain lock-order --tree T` prints)."""
        out: list[str] = []
        for b in self.blocks:
            title = b.title or "(untitled block)"
            out.append(f"{self.path}: {title}  [scope: {b.scope}]")
            for n in b.nodes:
                depth = 0
                p = n.parent
                while p is not None:
                    depth += 1
                    p = p.parent
                head = f"  {n.line:>4}: {'  ' * depth}{', '.join(n.names)}"
                parts = []
                for name, lid in zip(n.names, n.ids):
                    apis = apis_for(lid)
                    if apis:
                        parts.append(f"{lid}: {', '.join(apis)}")
                    else:
                        parts.append(f"UNMAPPED ({name!r} maps to no lock API; not checked)")
                if n.alias:
                    parts.append("note: " + ALIASES.get(n.names[0], "alias"))
                out.append(f"{head}  -> {'; '.join(parts)}")
        bad = self.unmapped()
        if bad:
            out.append("unmapped lines (orders through them are not checked):")
            out += [f"  {self.path}:{n.line}: {n.text}" for n in bad]
        else:
            out.append("every lock line maps to lock APIs")
        return out


class NoHierarchy(Exception):
    pass


_NAME_SPLIT = re.compile(r"\t| {2,}|\s\(")


def _names(entry: str) -> list[str]:
    head = _NAME_SPLIT.split(entry, maxsplit=1)[0].strip()
    names = [n.strip() for n in head.split(",") if n.strip()]
    return [n[2:] if n.startswith("->") else n for n in names]


def _lock_id(name: str, text: str = "") -> str:
    """The id of a comment name; a name no table knows is tried through the lock API its
    parenthesised note names (6.1: `page->flags PG_locked (lock_page)`)."""
    if name in NAME_IDS:
        return NAME_IDS[name]
    if "PG_locked" in name:
        return "folio_lock"
    bare = name[:-5] if name.endswith(" lock") else name
    lid = re.split(r"->|\.", bare)[-1].strip()
    if is_mapped(lid):
        return lid
    for api in re.findall(r"\(([^()]*)\)", text):
        for word in re.findall(r"\w+", api):
            if word in ACQUIRE:
                return ACQUIRE[word]
    return lid


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
        node = Node(names=names, ids=[_lock_id(n, text) for n in names], text=text, line=i + 1,
                    indent=indent, parent=stack[-1] if stack else None,
                    alias=len(names) == 1 and names[0] in ALIASES)
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


@dataclass(frozen=True)
class Effect:
    """What calling a helper does to the locks, in its order: `events` are ("take", id) for every
    blocking acquire on the way (its own and its helpers') and ("drop", id) for a release of a lock
    it did not take itself (its caller's: hugetlb_wp() drops the caller's ptl before it takes
    i_mmap_rwsem); `leaves` are the locks it returns with held (a take_rmap_locks()-style wrapper)."""
    events: tuple = ()
    leaves: tuple = ()

    @property
    def takes(self) -> frozenset:
        return frozenset(lid for kind, lid in self.events if kind == "take")


NO_EFFECT = Effect()
HELPER_DEPTH = 4        # helper -> helper -> ...: deeper chains are rare and cost a parse walk each
# Locks a helper is never taken to return with held: the page table lock is released through a
# variable the walk cannot always name (spin_unlock(old_ptl)), and a VMA write lock has no unlock of
# its own (it ends with mmap_write_unlock(), so every helper doing vma_start_write() "returns" with it)
NOT_LEFT_HELD = {"ptl", "vma_write"}


class summaries:
    """Per function of a file, on demand: the Effect of calling it, through the helpers of the same
    file it calls in turn (HELPER_DEPTH deep) and, given `resolve` (name -> a defs.Definition or
    None), through the macros, header inlines and other files' functions it names.  A file costs
    nothing until a function of it is asked for.  The memo is per resolver: what a name stands for
    depends on the series."""

    def __new__(cls, cfile, resolve=None):
        per = getattr(cfile, "_lock_summaries", None)
        if per is None:
            per = cfile._lock_summaries = {}
        key = id(resolve) if resolve is not None else None
        cached = per.get(key)
        if cached is None or cached.resolve is not resolve:
            cached = super().__new__(cls)
            cached.cfile = cfile
            cached.memo = {}
            cached.resolve = resolve
            per[key] = cached
        return cached

    def get(self, name: str, default=()):
        """The lock ids calling `name` takes."""
        return self.effect(name).takes or default

    def effect(self, name: str, depth: int = HELPER_DEPTH) -> Effect:
        if name in self.memo:
            return self.memo[name]
        fn = self.cfile.function_named(name)
        if fn is None and self.resolve is not None and depth > 0 and name not in ACQUIRE and \
                name not in RELEASE and name not in TRYLOCK:
            d = self.resolve(name)
            if d is not None:
                self.memo[name] = NO_EFFECT         # recursion guard
                eff = summaries(d.cf, self.resolve).effect(d.fn.name, depth - 1)
                self.memo[name] = eff
                return eff
        if fn is None or depth <= 0:
            return NO_EFFECT
        self.memo[name] = NO_EFFECT         # recursion guard: a cycle adds nothing
        events: list[tuple[str, str]] = []
        held: list[str] = []

        def release(lid):
            if lid in held:
                held.remove(lid)
            else:
                events.append(("drop", lid))
            for extra in ALSO_RELEASES.get(lid, ()):
                while extra in held:
                    held.remove(extra)

        for c in self.cfile.calls(fn):
            ev = lock_event(c.name, c.args)
            if ev is None:
                if c.name == name:
                    continue
                sub = self.effect(c.name, depth - 1)
                for kind, lid in sub.events:
                    if kind == "take":
                        events.append((kind, lid))
                    else:
                        release(lid)
                held += list(sub.leaves)
                continue
            kind, lid = ev
            if kind == "acquire":
                events.append(("take", lid))
                held.append(lid)
            elif kind == "release":
                release(lid)
        eff = Effect(tuple(events), tuple(l for l in dict.fromkeys(held) if l not in NOT_LEFT_HELD))
        self.memo[name] = eff
        return eff


def _released(held: list, lid: str) -> list:
    """`held` after `lid` is released: its innermost hold, and what releasing it also releases."""
    held = list(held)
    for j in range(len(held) - 1, -1, -1):
        if held[j][0] == lid:
            del held[j]
            break
    extra = ALSO_RELEASES.get(lid, ())
    return [h for h in held if h[0] not in extra]


def violations(calls, order: dict[tuple[str, str], Order],
               helpers: "summaries | None" = None) -> list[Violation]:
    """Walk lock calls in textual order (flow-insensitive); report each acquire of a lock
    the hierarchy puts above one already held.  A call to a helper of the same file counts as
    taking every lock it takes (through its own helpers too), as holding afterwards what it returns
    with held, and as releasing what it drops."""
    held: list[tuple[str, object, object]] = []     # (lock id, call, region where not held)
    out = []
    for c in calls:
        ev = lock_event(c.name, c.args)
        if ev is None:
            if helpers is None:
                continue
            eff = helpers.effect(c.name) if hasattr(helpers, "effect") else \
                Effect(events=tuple(("take", lid) for lid in helpers.get(c.name, ())))
            if not (eff.events or eff.leaves):
                continue
            for kind, lid in eff.events:
                if kind == "drop":
                    held = _released(held, lid)
                    continue
                for hid, hcall, failed in held:
                    if failed is not None or hcall.name in TRYLOCK:
                        continue    # a trylock's hold is a guess already; helpers may drop it first
                    o = order.get((lid, hid))
                    if o is not None and _held_at(hcall, failed, c):
                        out.append(Violation(held_call=hcall, taken_call=c, order=o))
            held += [(lid, c, None) for lid in eff.leaves]
            continue
        kind, lid = ev
        if kind == "trylock":
            # held afterwards where it succeeded; the trylock itself is never a violation
            failed = _trylock_failed_region(c.node)
            if failed is not False:
                held.append((lid, c, failed))
            continue
        if kind == "release":
            held = _released(held, lid)
            continue
        for hid, hcall, failed in held:
            o = order.get((lid, hid))
            if o is not None and _held_at(hcall, failed, c):
                out.append(Violation(held_call=hcall, taken_call=c, order=o))
        held.append((lid, c, None))
    return out


def _held_at(hcall, failed, c) -> bool:
    if failed is not None and _under(c.node, failed):
        return False            # the branch where the trylock failed
    return reachable(hcall.node, c.node)


def _trylock_failed_region(node):
    """Where a trylock in an `if` condition did not take the lock: the `if`'s consequence for
    `if (!trylock(...))`, its alternative (or None) for `if (trylock(...))`.  False when the
    result is not tested by an `if` (assigned, returned, looped on): then it is not tracked."""
    negated = False
    n = node
    while n.parent is not None:
        p = n.parent
        if p.type == "parenthesized_expression":
            n = p
            continue
        if p.type == "unary_expression" and p.child_by_field_name("operator") is not None and \
                p.child_by_field_name("operator").type == "!":
            negated = not negated
            n = p
            continue
        if p.type == "binary_expression" and p.child_by_field_name("operator") is not None and \
                p.child_by_field_name("operator").type in ("&&", "||"):
            n = p
            continue
        if p.type == "if_statement" and p.child_by_field_name("condition") is not None and \
                p.child_by_field_name("condition").id == n.id:
            return p.child_by_field_name("consequence") if negated else p.child_by_field_name("alternative")
        return False
    return False


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
