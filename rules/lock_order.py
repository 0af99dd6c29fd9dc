"""lock-order: a changed function takes a lock the mm/rmap.c hierarchy puts above one it holds.

The reviewer's point: the lock order is the one the comment at the head of mm/rmap.c documents (of
the tree under review, read at the base), not whatever order reads nicer; taking an outer lock while
an inner one is held is a deadlock waiting for load.

Forms it takes in code: the two lock calls in one function (write or read variants: a reader queued
behind a writer deadlocks as well); a lock taken inside a helper of the same file, up to four calls
deep, while the caller holds an inner one; a take_rmap_locks()-style wrapper that returns with a
lock held, followed by an outer lock; an outer lock taken while a successful trylock's lock is held.
The helpers are followed where the kernel keeps them: a macro or `static inline` of a header
(mm/internal.h, include/linux/*.h) or a function of another .c file that the series adds or changes,
and the tree's own header macros and inlines that take a lock of the hierarchy (found wherever the
tree defines them, at the base).  The message names the definition and the patch that wrote it.
Fine and not reported: a trylock against the order (it cannot deadlock); a lock taken after the
wrapper that drops it (drop_rmap_locks()); the other arm of an if/else, or after a jump away; a
helper that takes an inner lock under an outer one.

A series that edits the documented order itself gets a warning of its own at that patch: a new
order needs its own review, and the series' code is still checked against the base's.
"""

from mmreview.rules.analysis.defs import definitions
from mmreview.rules.analysis.lockorder import (ACQUIRE, TRYLOCK, NoHierarchy, lock_event, parse_hierarchy,
                                              summaries, violations)

ID = "lock-order"
SEVERITY = "error"
TITLE = "Lock taken against the order documented at the head of mm/rmap.c"
RATIONALE = """
Lock ordering is not something to change because a new order looks nicer: the comment at the head of
mm/rmap.c is the authority, and mm/mremap.c shows the usual order of file versus anon rmap locks
(i_mmap_rwsem before anon_vma->rwsem).  Hugh Dickins found exactly this in the maple-tree rework of
vma_expand(), which took the anon_vma lock before the file's i_mmap lock, while hunting rmap BUGs under
swapping load.
"""
SOURCE = ("Hugh Dickins, maple-tree list, 7 Jul 2022, Re: [PATCH] maple_tree: Fix use of node for "
          "global range in mas_wr_spanning_store()")

RMAP = "mm/rmap.c"


def _pairs(calls, order, helpers):
    return {(v.held_call.name, v.taken_call.name) for v in violations(calls, order, helpers)}


def hierarchy(ctx):
    """The order the tree at the BASE documents (a series cannot reorder the locks it is checked
    against), its unmapped lines as notes, and the series' edits of the comment: (hierarchy,
    [(patch, file change, first changed line)])."""
    src = ctx.source(ctx.base_rev, RMAP)
    if src is None:
        ctx.skip(None, f"the tree has no {RMAP} at the base, so no lock hierarchy to check against")
        return None, []
    try:
        hier = parse_hierarchy(src.decode("utf-8", "replace"), RMAP)
    except NoHierarchy as exc:
        ctx.skip(RMAP, f"could not run: {exc} at the base")
        return None, []
    for n in hier.unmapped():
        names = ", ".join(repr(x) for x in n.unmapped)
        ctx.note(f"lock line \"{n.text}\": {names} maps to no lock API mmreview knows, so orders "
                 "against it are not checked (the lines above and below it still are)", RMAP, n.line)
    first = min(n.line for _, n in hier.nodes())
    last = max(n.line for _, n in hier.nodes())
    edits = []
    for pc in ctx.patches:
        for fc in pc.files:
            changed = [ln.no for ln in [*fc.added, *fc.removed] if first - 3 <= ln.no <= last + 3]
            if fc.path == RMAP and changed:
                edits.append((pc, fc, min(changed)))
    return hier, edits


def _comment_diff(fc, hier) -> list[str]:
    """The series' lines of the lock-ordering comment, as a diff: what the reviewer must read."""
    first = min(n.line for _, n in hier.nodes()) - 3
    last = max(n.line for _, n in hier.nodes()) + 3
    return ([f"-{ln.text}" for ln in fc.removed if first <= ln.no <= last]
            + [f"+{ln.text}" for ln in fc.added if first <= ln.no <= last])[:8]


class _Resolver:
    """name -> its definition for the helper walk: the series' own (any file it changes, as patch
    `rev` leaves it), else, for a function that takes a lock itself, the tree's header macros and
    inlines that name a lock API of the hierarchy (one search, at the first need)."""

    def __init__(self, ctx, rev, base):
        self.ctx, self.rev, self.base = ctx, rev, base

    def __call__(self, name):
        d = self.ctx.series_definition(name, self.rev)
        if d is not None:
            return d
        if not self.base:
            return None
        return _tree_definition(self.ctx, name)


def _tree_locks(ctx) -> dict:
    """name -> file: the tree's header macros and inlines naming a lock API of the hierarchy."""
    key = ("lock-order", "tree")
    if key not in ctx._defs:
        ctx._defs[key] = ctx.tree_names(set(ACQUIRE) | set(TRYLOCK), headers_only=True)
    return ctx._defs[key]


def _tree_definition(ctx, name):
    path = _tree_locks(ctx).get(name)
    cf = ctx.cfile(ctx.base_rev, path) if path else None
    return definitions(cf, path).get(name) if cf is not None else None


def _called(ctx, pc, name, line, resolver) -> str:
    """`(in helper(), called at line N)`, saying where a helper of another file is defined."""
    d = resolver(name) if resolver is not None else None
    where = f", {d.describe()}" if d is not None else ""
    return f"(in {name}(){where}, called at line {line})"


def check(ctx):
    hier, edits = hierarchy(ctx)
    if hier is None:
        return []
    out = [ctx.finding(pc, RMAP, line, f"patch {pc.number} changes the lock-ordering comment at the "
                       f"head of {RMAP}: a change of the documented order needs its own review "
                       "(this series is checked against the order of its base)", severity="warning",
                       excerpt=_comment_diff(fc, hier))
           for pc, fc, line in edits]
    resolvers: dict = {}
    for pc, fc, cf in ctx.c_changes():
        added = fc.added_numbers
        seen_fns = set()
        for ln in fc.added:
            fn = cf.function_at(ln.no)
            if fn is None or fn.name in seen_fns:
                continue
            seen_fns.add(fn.name)
            order = hier.order_for(fc.path, fn.name)
            calls = cf.calls(fn)
            # the tree's lock helpers are looked up only for a function that takes a lock itself
            base = any(lock_event(c.name, c.args) for c in calls)
            resolver = resolvers.setdefault((pc.rev_after, base), _Resolver(ctx, pc.rev_after, base))
            helpers = summaries(cf, resolver)
            found = violations(calls, order, helpers)
            if not found:
                continue
            before = set()
            for pcf, pfn in ctx.prior_function(pc, fc.path, fn.name):
                prior = resolvers.setdefault((pc.rev_before, base), _Resolver(ctx, pc.rev_before, base))
                before |= _pairs(pcf.calls(pfn), order, summaries(pcf, prior))
            for v in found:
                held, taken, o = v.held_call, v.taken_call, v.order
                if taken.line not in added and held.line not in added:
                    continue
                if (held.name, taken.name) in before:
                    continue
                line = taken.line if taken.line in added else held.line
                how = (f"({taken.name}, line {taken.line})" if lock_event(taken.name, taken.args)
                       else _called(ctx, pc, taken.name, taken.line,
                                    None if cf.function_named(taken.name) else resolver))
                held_how = held.name if lock_event(held.name, held.args) or cf.function_named(held.name) \
                    else _called(ctx, pc, held.name, held.line, resolver)[1:-1].replace(
                        f", called at line {held.line}", "")
                msg = (f"{fn.name}() takes {o.before} {how} while holding "
                       f"{o.after} ({held_how}, line {held.line}); {RMAP} orders "
                       f"\"{o.before_line}\" (line {o.before_no}) above \"{o.after_line}\" "
                       f"(line {o.after_no})")
                out.append(ctx.finding(pc, fc.path, line, msg, function=fn.name,
                                       excerpt=[f"{RMAP}:{o.before_no}: {o.before_line}",
                                                f"{RMAP}:{o.after_no}: {o.after_line}",
                                                cf.line_text(held.line).strip(),
                                                cf.line_text(taken.line).strip()]))
    return out
