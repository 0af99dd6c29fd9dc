"""exit-mmap-complication: the exit path made to pay for a failed dup_mmap().

The reviewer's point: do not teach exit_mmap() to undo a failed fork; whatever exists in the
teardown path only because dup_mmap() can fail costs every exiting task, so dup_mmap() must clean up
after itself before it drops the lock.

Forms it takes in code (each found by what it means, not by one spelling):
- state set on dup_mmap()'s failure path (an mm flag through set_bit()/mm_flags_set()/`|=`, an mm or
  VMA field, a global, a marker such as XA_ZERO_ENTRY stored in the tree; also through a helper of
  the same file called on that path, or kept from its return code by the caller's error branch,
  dup_mm()'s `if (err)`) and read by a new line of exit_mmap() or of a function it
  reaches (a condition, an early return or goto, a loop bound, an argument);
- the teardown bounded by a new limit: a changed argument to unmap_vmas()/free_pgtables()/
  tear_down_vmas() (a variable where the exit path passed ULONG_MAX) or a new one, a new loop condition or
  for_each_vma_range() bound in the VMA walk, a new limit-like field of the unmap description, a
  new parameter of a teardown helper;
- any of these in a new helper that exit_mmap() calls;
- any of these where the kernel keeps its definitions: a marker macro (`#define X xa_mk_value(...)`)
  stored where dup_mmap() fails and a `static inline` predicate of a header testing for it, called
  from exit_mmap(); a header macro or inline, or a function of another .c file, called on the failure
  path that sets the state; a helper declared in a header and defined in another .c file that reads
  it.  The tree's own definitions count as well (check_stable_address_space() in
  include/linux/oom.h reads MMF_UNSTABLE), found wherever the tree defines them.
The message names what the series did: the series' own line where the state is set and the line
where exit pays for it; when one line reads both the base's state and the series' (an old
xa_is_zero() test left next to a new predicate), the series' is the one named.

MMF_UNSTABLE is decided so: it is failure state where dup_mmap() sets it (6.12.117 and 7.x set it on
the failure path; 6.1 does not), and reading it on the exit path is then a finding, because the OOM
reaper sets the same flag: the exit path cannot tell a reaped mm from a failed fork by it, so a test
of it there either serves the failed fork (the reviewer's objection) or makes every OOM victim's
teardown take the failed fork's shortcut.  Where only the OOM reaper sets it (6.1), reading it is
about the reaper and is not reported.
Fine and not reported: dup_mmap() undoing its own partial copy (a bound passed from dup_mmap()), a
flag set on the failure path that only fork's own error handling reads, comments in exit_mmap().
"""

import re

from mmreview.rules.analysis.cparse import identifiers, nodes_of
from mmreview.rules.analysis.forkfail import (FLAG_SETTERS, HISTORIC, TREE_STORES, State, failure_calls,
                                              failure_nodes, failure_states, reachable, set_anywhere,
                                              states_in)
from mmreview.rules.helpers import changed_functions, in_mm

ID = "exit-mmap-complication"
SEVERITY = "error"
TITLE = "exit_mmap() path complicated to undo a failed fork"
RATIONALE = """
Do not use the exit_mmap() path to undo a failed fork: checks added to the exit path run for every
task that exits, to serve the very unlikely case of dup_mmap() running out of memory.  Liam Howlett
asked instead for a helper that unmaps and frees what dup_mmap() had copied, run before the lock is
dropped; Jann Horn later supported removing the XA_ZERO_ENTRY special case from exit_mmap() altogether.
A new flag, field or marker set where dup_mmap() fails and read on the exit path, or a new limit on
how far the exit path tears down, is that special case whatever it is called.
"""
SOURCE = ("Liam R. Howlett, linux-kernel/linux-mm, Sep 2023, Re: [PATCH v2 6/6] fork: Use __mt_dup() to "
          "duplicate maple tree in dup_mmap(); Jann Horn, linux-mm, 15 Aug 2025, Re: [RFC PATCH 0/6] "
          "Remove XA_ZERO from error recovery of dup_mmap()")

# Teardown steps by name (every kernel 6.1-7.3 has some of them); the rest of the exit path is what
# exit_mmap() reaches in the files at hand.
TEARDOWN = {"exit_mmap", "unmap_vmas", "unmap_single_vma", "free_pgtables", "remove_vma",
            "tear_down_vmas", "unmap_all_init", "unmap_pgtable_init"}
# The calls whose arguments say how far the exit path tears down.
STEPS = {"unmap_vmas", "free_pgtables", "tear_down_vmas", "unmap_single_vma", "unmap_all_init",
         "unmap_pgtable_init", "unmap_region"}
# callees of exit_mmap() that are no teardown step of their own (locking, accounting, tracing)
NOT_TEARDOWN = re.compile(r"^(mmap_(read|write)_(un)?lock|cond_resched|trace_|vm_unacct_memory|"
                          r"mmu_notifier_release|vma_next|vma_find|vma_iter_|mas_|mt_|__mt_|"
                          r"flush_cache_mm|lru_add_drain|arch_exit_mmap|set_bit|mm_flags_|"
                          r"tlb_gather_mmu|tlb_finish_mmu|BUG_ON|WARN|VM_|vma_pages|[A-Z_0-9]+$|"
                          r"(un)?likely|READ_ONCE|WRITE_ONCE|test_bit|clear_bit|atomic_|spin_|rcu_|"
                          r"might_sleep|lockdep_|pr_|printk)")
DEPTH = 3                    # exit_mmap() -> unmap_vmas() -> unmap_single_vma() -> ...
LIMITISH = re.compile(r"max|limit|end|stop|fail|zero|dup|last|bound", re.I)
WHOLE = re.compile(r"^\s*([A-Z][A-Z0-9_]*|\d+[UL]*|0x[0-9a-fA-F]+[UL]*|NULL|true|false)\s*$")
RELATIONAL = {"<", "<=", ">", ">="}
# fork-failure state another path sets as well: said in the message, the author must say which is meant
ALSO_SET_BY = {"MMF_UNSTABLE": "the OOM reaper (__oom_reap_task_mm()) sets MMF_UNSTABLE as well, so the "
                               "exit path cannot tell a reaped mm from a failed fork by it"}
# definitions whose mention of a state is no read of it
NOT_READERS = TEARDOWN | {"dup_mmap", "dup_mm"}
MACRO_LIKE = re.compile(r"^[A-Z][A-Z0-9_]{2,}$")
WHY = ("every exiting task pays for a rare dup_mmap() failure; undo the failed copy in dup_mmap() "
       "before the lock is dropped instead")


def _fork_states(ctx, changed) -> dict[str, State]:
    """token -> where dup_mmap()'s failure path sets it: the series first, then the base."""
    homes = set(ctx.locate("dup_mmap"))
    found: dict[str, State] = {}
    on_failure: dict[tuple[int, str], set[str]] = {}     # (patch, path) -> helpers called on failure
    for ch in changed:
        if ch.path in homes and ch.fn.name == "dup_mmap":
            for s in failure_states(ch.cf, ch.fn, ch.lines, ch.path, ch.pc.number):
                found.setdefault(s.token, s)
            on_failure[(ch.pc.number, ch.path)] = failure_calls(ch.cf, ch.fn)
    for ch in changed:
        # dup_mmap()'s return code reaches the exit path only as state its caller keeps (dup_mm():
        # `if (err) mm->... = err;`): the caller's failure branches count as the failure path
        if ch.path in homes and ch.fn.name != "dup_mmap" and \
                any(c.name == "dup_mmap" for c in ch.cf.calls(ch.fn)):
            for s in failure_states(ch.cf, ch.fn, ch.lines, ch.path, ch.pc.number):
                found.setdefault(s.token, State(s.token, s.kind, s.path, s.line, s.patch,
                                                f"in {ch.fn.name}(), where dup_mmap()'s error is "
                                                f"handled: {s.text}"))
    for ch in changed:       # a same-file helper called where dup_mmap() fails: all it sets counts
        helpers = on_failure.get((ch.pc.number, ch.path))
        if helpers is None:
            cf = ctx.cfile(ch.pc.rev_after, ch.path) if ch.path in homes else None
            dup = cf.function_named("dup_mmap") if cf else None
            helpers = on_failure[(ch.pc.number, ch.path)] = failure_calls(cf, dup) if dup else set()
        if ch.fn.name in helpers:
            body = ch.fn.node.child_by_field_name("body")
            for tok, kind, ln in states_in([body], ch.fn, ch.lines):
                found.setdefault(tok, State(tok, kind, ch.path, ln, ch.pc.number,
                                            f"in {ch.fn.name}(), called where dup_mmap() fails: "
                                            + ch.cf.line_text(ln).strip()))
    for ch in changed:       # a macro, a header's inline, another file's function on the failure path
        if ch.path in homes and ch.fn.name == "dup_mmap":
            for st in _through_definitions(ctx, ch):
                found.setdefault(st.token, st)
    for path in homes:
        cf = ctx.cfile(ctx.base_rev, path)
        fn = cf.function_named("dup_mmap") if cf else None
        if fn is not None:
            for s in failure_states(cf, fn, None, path, 0):
                found.setdefault(s.token, s)
    for tok, kind in HISTORIC.items():
        found.setdefault(tok, State(tok, kind, "", 0, 0, ""))
    # what the exit path sets for itself (MMF_OOM_SKIP) says nothing about a failed fork
    for path in ctx.locate("exit_mmap"):
        cf = ctx.cfile(ctx.base_rev, path)
        fn = cf.function_named("exit_mmap") if cf else None
        if fn is not None:
            for tok in set_anywhere(cf, fn):
                if found.get(tok) and found[tok].kind != "tree marker":
                    del found[tok]
    return found


def _through_definitions(ctx, ch) -> list[State]:
    """State set by what the series' new failure-path lines of dup_mmap() call: a macro or inline of
    a header, a function of another file.  A definition the series wrote is pointed at on its own
    line; the tree's own, at the series' call."""
    out = []
    for node in failure_nodes(ch.fn):
        for call in ch.cf.calls(node):
            if call.line not in ch.lines or call.name in FLAG_SETTERS or call.name in TREE_STORES or \
                    call.name == "dup_mmap" or NOT_TEARDOWN.match(call.name):
                continue
            d = ctx.definition(call.name, ch.pc.rev_after)
            if d is None or (d.path == ch.path and d.kind == "function"):
                continue        # same-file helpers: _fork_states() reads the series' own lines
            body = d.fn.node.child_by_field_name("body")
            for tok, kind, ln in states_in([body] if body is not None else [], d.fn, None):
                set_text = d.cf.line_text(ln).strip()
                if d.patch:
                    out.append(State(tok, kind, d.path, ln, d.patch,
                                     f"in {d.name}() ({d.kind}), called where dup_mmap() fails "
                                     f"({ch.path}:{call.line}): {set_text}"))
                else:
                    out.append(State(tok, kind, ch.path, call.line, ch.pc.number,
                                     f"{ch.cf.line_text(call.line).strip()} ({d.name}(), {d.describe()}, "
                                     f"sets it: {set_text})"))
    return out


class _Derived:
    """Names that read fork-failure state for whoever calls them: macros and functions whose body
    names a state token (a header's `static inline` predicate testing the series' marker, the
    tree's check_stable_address_space() testing MMF_UNSTABLE), found in the series' files and, one
    level deep, wherever the tree defines them at the base; computed the first time a new line of
    the exit path calls something the rule does not know."""

    def __init__(self, ctx, states):
        self.ctx, self.states = ctx, states
        self.map: dict[str, tuple[State, list]] | None = None

    def get(self, name: str):
        if self.map is None:
            self.map = self._build()
        return self.map.get(name)

    def _build(self) -> dict[str, tuple[State, list]]:
        out: dict[str, tuple[State, list]] = {}
        level = {t: (s, []) for t, s in self.states.items() if s.kind in ("mm flag", "tree marker") or s.patch}
        for depth in range(3):
            if not level:
                break
            got = self.ctx.mentioning(set(level), base=depth == 0)
            nxt: dict[str, tuple[State, list]] = {}
            for tok, defs in got.items():
                s, chain = level[tok]
                for d, ln in defs:
                    if d.name in self.states or d.name in out or d.name in nxt or d.name in NOT_READERS:
                        continue
                    body = d.fn.node.child_by_field_name("body")
                    if tok in {t for t, _, _ in states_in([body] if body is not None else [], d.fn, None)}:
                        continue        # it sets the state (the OOM reaper), it does not test it
                    nxt[d.name] = (s, chain + [(d, ln)])
            out.update(nxt)
            level = nxt
        return out


class _Reach:
    """exit_mmap()'s reach through exit_mmap()'s own file and the files the series changes (a helper
    is in one of those, or the series does not touch it), at the tip and at the base: a helper a
    later patch calls from exit_mmap() is on the exit path from the patch that adds it."""

    def __init__(self, ctx, changed):
        exit_files = ctx.locate("exit_mmap")
        paths = sorted({ch.path for ch in changed} | set(exit_files))
        skip = lambda n: bool(NOT_TEARDOWN.match(n))
        files = [cf for p in paths if (cf := ctx.cfile(ctx.tip_rev, p)) is not None]
        self.chains = reachable(files, {"exit_mmap"}, DEPTH, skip=skip)
        base = [cf for p in exit_files if (cf := ctx.cfile(ctx.base_rev, p)) is not None]
        for name, chain in reachable(base, {"exit_mmap"}, 1, skip=skip).items():
            self.chains.setdefault(name, chain)


def _chain(chain: tuple[str, ...]) -> str:
    return " -> ".join(f"{c}()" for c in chain)


def _set_where(s: State) -> str:
    if not s.path:
        return f"the {s.kind} a failed dup_mmap() has left in the tree on earlier kernels"
    return f"{s.kind} {s.token} set where dup_mmap() fails, {s.where()}: {s.text.rstrip(';')}"


def _rank(cand) -> tuple:
    """The series' own state first, then state read through the series' own definition, then the
    base's, then what earlier kernels did."""
    s, _, via = cand
    return (0 if s.patch else 1 if any(d.patch for d, _ in via) else 2 if s.path else 3, len(via))


def _candidates(ch, states) -> set[str]:
    """Names on the new lines the rule does not know yet: calls and macro-like identifiers."""
    names = {c.name for c in ch.cf.calls(ch.fn) if c.line in ch.lines}
    names |= {n for n, _ in identifiers(ch.fn, ch.lines) if MACRO_LIKE.match(n)}
    return {n for n in names if n not in states and not NOT_TEARDOWN.match(n) and n not in TEARDOWN}


def _reads(ctx, ch, states, chain, derived):
    by_line: dict[int, list] = {}
    seen: set[str] = set()
    unknown = _candidates(ch, states)
    for name, ln in identifiers(ch.fn, ch.lines):
        if name in seen:
            continue
        if name in states:
            cand = (states[name], name, [])
        elif name in unknown and (d := derived.get(name)) is not None:
            cand = (d[0], name, d[1])
        else:
            continue
        seen.add(name)
        by_line.setdefault(ln, []).append(cand)
    out = []
    via_reach = f" (reached from {_chain(chain)})" if len(chain) > 1 else ""
    for ln, cands in sorted(by_line.items()):
        s, name, via = min(cands, key=_rank)
        through = ""
        if via:
            through = " through " + " -> ".join(f"{d.name}() ({d.describe()})" for d, _ in via)
        read = s.token if via else name
        also = f" ({ALSO_SET_BY[s.token]})" if s.token in ALSO_SET_BY else ""
        excerpt = [ch.cf.line_text(ln).strip()]
        excerpt += [f"{d.path}:{dl}: {d.cf.line_text(dl).strip()}" for d, dl in via]
        excerpt += [f"{s.path}:{s.line}: {s.text}"] if s.path else []
        out.append(ch.finding(ctx, ln, f"{ch.fn.name}(){via_reach} reads {read}{through}, "
                                       f"{_set_where(s)}{also}; {WHY}", excerpt=excerpt))
    return out


def _whole(arg: str) -> bool:
    return bool(WHOLE.match(arg))


def _reference_calls(ctx, ch) -> dict[str, list]:
    """Calls of the teardown steps in this function before the patch and in exit_mmap() at the
    base: what a changed argument is compared with."""
    out: dict[str, list] = {}
    prior = list(ctx.prior_function(ch.pc, ch.path, ch.fn.name))
    for path in ctx.locate("exit_mmap"):
        cf = ctx.cfile(ctx.base_rev, path)
        fn = cf.function_named("exit_mmap") if cf else None
        if fn is not None:
            prior.append((cf, fn))
    for cf, fn in prior:
        for c in cf.calls(fn):
            if c.name in STEPS:
                out.setdefault(c.name, []).append(c)
    return out


def _bounds(ctx, ch, chain):
    """A new limit on how far the exit path tears down."""
    out = []
    via = f" (reached from {_chain(chain)})" if len(chain) > 1 else ""
    refs = None
    for c in ch.cf.calls(ch.fn):
        touched = [ln for ln in range(c.line, c.end_line + 1) if ln in ch.lines]
        if not touched:
            continue        # an argument on the call's second line changes the call too
        if c.name in STEPS:
            refs = refs if refs is not None else _reference_calls(ctx, ch)
            known = refs.get(c.name, [])
            if known and len(c.args) > max(len(r.args) for r in known):
                # the step gained an argument: what the exit path now passes in it
                seen = {" ".join(a.split()) for r in known for a in r.args}
                extra = [a.strip() for a in c.args if " ".join(a.split()) not in seen and not _whole(a)]
                if extra:
                    out.append(ch.finding(ctx, touched[0], f"{ch.fn.name}(){via} passes a new argument, "
                                          f"{extra[0]}, to {c.name}(): the teardown of every task takes "
                                          f"a new input to stop on; {WHY}"))
                    continue
            for ref in known:
                if len(ref.args) != len(c.args):
                    continue
                changed = [(i, a) for i, (r, a) in enumerate(zip(ref.args, c.args))
                           if _whole(r) and not _whole(a)]
                if changed:
                    i, a = changed[0]
                    out.append(ch.finding(ctx, touched[0], f"{ch.fn.name}(){via} passes {a.strip()} to "
                                          f"{c.name}() where exit_mmap() passed {ref.args[i].strip()} "
                                          f"(line {ref.line} of the base): the teardown of every task is "
                                          f"bounded by a new limit; {WHY}"))
                    break
        elif c.name.startswith("for_each_vma_range") and c.args and not _whole(c.args[-1]):
            out.append(ch.finding(ctx, c.line, f"{ch.fn.name}(){via} walks the VMAs only up to "
                                  f"{c.args[-1].strip()}: the teardown is bounded by a new limit; {WHY}"))
    prior_conds = set()
    for pcf, pfn in ctx.prior_function(ch.pc, ch.path, ch.fn.name):
        prior_conds |= {" ".join(n.text.decode().split()) for n in _loop_conditions(pfn.node)}
    for cond in _loop_conditions(ch.fn.node):
        ln = cond.start_point[0] + 1
        if not any(n in ch.lines for n in range(ln, cond.end_point[0] + 2)) or " ".join(cond.text.decode().split()) in prior_conds:
            continue
        for op, right in _relations(cond):
            if not _whole(right):
                out.append(ch.finding(ctx, ln, f"{ch.fn.name}(){via} stops its loop at {op} "
                                      f"{right.strip()}: the teardown is bounded by a new limit; {WHY}"))
                break
    for n in _assignments(ch.fn.node):
        ln = n.start_point[0] + 1
        left, right = n.child_by_field_name("left"), n.child_by_field_name("right")
        if ln in ch.lines and left is not None and left.type == "field_expression" and right is not None:
            fld = left.child_by_field_name("field")
            if fld is not None and LIMITISH.search(fld.text.decode()) and not _whole(right.text.decode()):
                out.append(ch.finding(ctx, ln, f"{ch.fn.name}(){via} sets {left.text.decode()} to "
                                      f"{right.text.decode()}: the teardown is bounded by a new limit; {WHY}"))
    return out


def _loop_conditions(node):
    for n in nodes_of(node, "while_statement", "do_statement", "for_statement"):
        c = n.child_by_field_name("condition")
        if c is not None:
            yield c


def _relations(cond):
    for n in nodes_of(cond, "binary_expression"):
        op = n.child_by_field_name("operator")
        if op is not None and op.type in RELATIONAL:
            yield op.type, n.child_by_field_name("right").text.decode()


def _assignments(node):
    return nodes_of(node, "assignment_expression")


def _new_params(ctx, ch, chain):
    fn = ch.fn
    decl = {n for n in ch.lines if fn.start <= n < fn.body_start}
    if not decl:
        return []
    prior = ctx.prior_function(ch.pc, ch.path, fn.name)
    old = {p for _, pf in prior for p in pf.params}
    extra = [p for p in fn.params if p not in old and LIMITISH.search(p.split()[-1])]
    if prior and extra and len(fn.params) > max(len(p.params) for _, p in prior):
        return [ch.finding(ctx, min(decl), f"{fn.name}() gains parameter(s) {', '.join(extra)}: threading "
                           f"a limit through the teardown path for dup_mmap() recovery; {WHY}")]
    return []


def check(ctx):
    changed = list(changed_functions(ctx, lambda path, name: in_mm(path, ctx)))
    if not changed:
        return []
    reach = _Reach(ctx, changed)
    states = None
    derived = None
    out = []
    for ch in changed:
        chains = reach.chains
        if ch.fn.name not in chains and ch.fn.name not in TEARDOWN:
            continue
        if not ch.lines:
            continue
        if states is None:
            states = _fork_states(ctx, changed)
            derived = _Derived(ctx, states)
        chain = chains.get(ch.fn.name, (ch.fn.name,))
        found = _reads(ctx, ch, states, chain, derived)
        # the walk itself: exit_mmap(), what it calls directly, and the named steps
        if len(chain) <= 2 or ch.fn.name in TEARDOWN:
            lines = {f.line for f in found}
            found += [f for f in _bounds(ctx, ch, chain) if f.line not in lines]
        found += _new_params(ctx, ch, chain)
        out += found
    return out
