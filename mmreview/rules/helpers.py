"""Helpers shared by the rule files in rules/."""

MM_PATHS = ("mm/", "kernel/fork.c")
# mm functions whose home moves between kernels (dup_mmap(): kernel/fork.c up to 6.x, mm/mmap.c in 7.x)
MM_ANCHORS = ("dup_mmap", "exit_mmap")


def in_mm(path: str, ctx=None) -> bool:
    """mm code: mm/, kernel/fork.c, and (given the rule context) wherever the tree at the base
    keeps dup_mmap() and exit_mmap()."""
    if path.startswith(MM_PATHS):
        return True
    return ctx is not None and any(path in ctx.locate(fn) for fn in MM_ANCHORS)


def norm(text: str) -> str:
    return " ".join(text.split())


def new_lines(ctx, pc, fc, cf, fn):
    """Added lines of `fn` the series introduces: an added line counts only when the function now
    holds that text more often than it did at the base and before this patch (code moved within
    the function, or re-added after an earlier patch removed it, is not new)."""
    from collections import Counter
    prior = Counter()
    for pcf, pfn in ctx.prior_function(pc, fc.path, fn.name):
        c = Counter(norm(l) for l in pfn.lines(pcf.text_lines))
        prior = prior | c                      # the larger count of the two revisions
    now = Counter(norm(l) for l in fn.lines(cf.text_lines))
    budget = {t: now[t] - prior[t] for t in now}
    out = set()
    for ln in ctx.added_in(fc, fn):
        t = norm(ln.text)
        if t and budget.get(t, 0) > 0:
            budget[t] -= 1
            out.add(ln.no)
    return out


def functions_with_additions(fc, cf):
    seen = {}
    for ln in fc.added:
        fn = cf.function_at(ln.no)
        if fn is not None:
            seen.setdefault((fn.name, fn.start), fn)
    return list(seen.values())


def code_lines(cf, fn, lines):
    """Of `lines`, those holding code (a comment-only line added next to code is not code)."""
    from mmreview.rules.analysis.cparse import identifiers
    return {ln for _, ln in identifiers(fn, lines)}


class ChangedFunction:
    """A function a patch adds lines to, with the lines the series really introduces there."""

    __slots__ = ("pc", "fc", "cf", "fn", "lines")

    def __init__(self, pc, fc, cf, fn, lines):
        self.pc, self.fc, self.cf, self.fn, self.lines = pc, fc, cf, fn, lines

    @property
    def path(self) -> str:
        return self.fc.path

    def finding(self, ctx, line: int, message: str, excerpt=None):
        """A finding on `line` of this function; the excerpt defaults to that line as added."""
        return ctx.finding(self.pc, self.fc.path, line, message, function=self.fn.name,
                           excerpt=excerpt if excerpt is not None else [self.cf.line_text(line).strip()])


def changed_functions(ctx, where=lambda path, name: True):
    """Every (patch, file, function) the series adds lines to and `where(path, name)` accepts:
    the walk each rule would otherwise write for itself."""
    for pc, fc, cf in ctx.c_changes():
        for fn in functions_with_additions(fc, cf):
            if where(fc.path, fn.name):
                yield ChangedFunction(pc, fc, cf, fn, new_lines(ctx, pc, fc, cf, fn))
