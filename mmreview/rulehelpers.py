"""Helpers shared by the rule files in rules/."""

MM_PATHS = ("mm/", "kernel/fork.c")


def in_mm(path: str) -> bool:
    return path.startswith(MM_PATHS)


def norm(text: str) -> str:
    return " ".join(text.split())


def new_lines(ctx, pc, fc, cf, fn):
    """Added lines of `fn` that neither the base nor the previous revision had in the same function."""
    prior = ctx.prior_lines(pc, fc.path, fn.name)
    return {ln.no for ln in ctx.added_in(fc, fn) if norm(ln.text) and norm(ln.text) not in prior}


def functions_with_additions(fc, cf):
    seen = {}
    for ln in fc.added:
        fn = cf.function_at(ln.no)
        if fn is not None:
            seen.setdefault((fn.name, fn.start), fn)
    return list(seen.values())


def code_lines(cf, fn, lines):
    """Of `lines`, those holding code (a comment-only line added next to code is not code)."""
    from mmreview.cparse import identifiers
    return {ln for _, ln in identifiers(fn, lines)}
