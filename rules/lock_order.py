"""lock-order: a changed function takes a lock the mm/rmap.c hierarchy puts above one it holds.

The reviewer's point: the lock order is the one the comment at the head of mm/rmap.c documents (of
the tree under review, read at the base), not whatever order reads nicer; taking an outer lock while
an inner one is held is a deadlock waiting for load.

Forms it takes in code: the two lock calls in one function (write or read variants: a reader queued
behind a writer deadlocks as well); a lock taken inside a helper of the same file, up to four calls
deep, while the caller holds an inner one; a take_rmap_locks()-style wrapper that returns with a
lock held, followed by an outer lock; an outer lock taken while a successful trylock's lock is held.
Fine and not reported: a trylock against the order (it cannot deadlock); a lock taken after the
wrapper that drops it (drop_rmap_locks()); the other arm of an if/else, or after a jump away; a
helper that takes an inner lock under an outer one.

A series that edits the documented order itself gets a warning of its own at that patch: a new
order needs its own review, and the series' code is still checked against the base's.
"""

from mmreview.rules.analysis.lockorder import NoHierarchy, lock_event, parse_hierarchy, summaries, violations

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


def check(ctx):
    hier, edits = hierarchy(ctx)
    if hier is None:
        return []
    out = [ctx.finding(pc, RMAP, line, f"patch {pc.number} changes the lock-ordering comment at the "
                       f"head of {RMAP}: a change of the documented order needs its own review "
                       "(this series is checked against the order of its base)", severity="warning",
                       excerpt=_comment_diff(fc, hier))
           for pc, fc, line in edits]
    for pc, fc, cf in ctx.c_changes():
        added = fc.added_numbers
        helpers = summaries(cf)
        seen_fns = set()
        for ln in fc.added:
            fn = cf.function_at(ln.no)
            if fn is None or fn.name in seen_fns:
                continue
            seen_fns.add(fn.name)
            order = hier.order_for(fc.path, fn.name)
            found = violations(cf.calls(fn), order, helpers)
            if not found:
                continue
            before = set()
            for pcf, pfn in ctx.prior_function(pc, fc.path, fn.name):
                before |= _pairs(pcf.calls(pfn), order, summaries(pcf))
            for v in found:
                held, taken, o = v.held_call, v.taken_call, v.order
                if taken.line not in added and held.line not in added:
                    continue
                if (held.name, taken.name) in before:
                    continue
                line = taken.line if taken.line in added else held.line
                how = (f"({taken.name}, line {taken.line})" if lock_event(taken.name, taken.args)
                       else f"(in {taken.name}(), called at line {taken.line})")
                msg = (f"{fn.name}() takes {o.before} {how} while holding "
                       f"{o.after} ({held.name}, line {held.line}); {RMAP} orders "
                       f"\"{o.before_line}\" (line {o.before_no}) above \"{o.after_line}\" "
                       f"(line {o.after_no})")
                out.append(ctx.finding(pc, fc.path, line, msg, function=fn.name,
                                       excerpt=[f"{RMAP}:{o.before_no}: {o.before_line}",
                                                f"{RMAP}:{o.after_no}: {o.after_line}",
                                                cf.line_text(held.line).strip(),
                                                cf.line_text(taken.line).strip()]))
    return out
