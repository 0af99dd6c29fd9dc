"""`mmreview rules SERIES | --list | --explain ID`: the review rules alone (what the pre-push hook runs)."""

from __future__ import annotations

import json
import textwrap
from typing import List, Optional

import typer

from mmreview.cli.app import (FailOnOption, LoreOption, NewestOption, TreeOption, app, fail_usage,
                              lore_options, run_command)
from mmreview.common.errors import EXIT_OK, BadInput
from mmreview.review.model import parse_fail_on
from mmreview.common.textsafe import visible as V


def _print_list(rules) -> None:
    width = max(len(r.id) for r in rules)
    for r in rules:
        print(f"{r.id:<{width}}  {r.info.severity:<7}  {r.info.title}")


def _print_explain(rule) -> None:
    i = rule.info
    print(f"{i.id} ({i.severity}): {i.title}\n")
    print(textwrap.fill(i.rationale, 78))
    print(f"\nSource: {i.source}")
    doc = (rule.module.__doc__ or "").strip()
    if doc:
        print(f"Checks: {doc}")


def _print_hierarchy(tree_opt, base) -> None:
    """`--explain lock-order`: the order the tree itself documents, as the rule parses it."""
    from mmreview.common.git import show_file
    from mmreview.rules.analysis.lockorder import NoHierarchy, parse_hierarchy
    from mmreview.kernel.trees import open_tree
    t = open_tree(tree_opt)
    rev = base or "HEAD"
    sha = t.rev(rev)
    if sha is None:
        raise BadInput(f"--base {rev}", "no such revision in the tree")
    print(f"\nLock hierarchy of {t.path} at {rev} ({sha[:12]}), as parsed from mm/rmap.c:")
    src = show_file(t.path, sha, "mm/rmap.c")
    if src is None:
        print("  the tree has no mm/rmap.c: the rule cannot run on it")
        return
    try:
        hier = parse_hierarchy(src.decode("utf-8", "replace"), "mm/rmap.c")
    except NoHierarchy as exc:
        print(f"  {exc}: the rule cannot run on it")
        return
    for line in hier.describe():
        print(f"  {line}")


def _print_result(review) -> None:
    # Subjects, file names, code and notes are the series': V() keeps its escapes off the terminal.
    n = len(review.apply)
    # Rules that said they could not read the patches that did not apply; the others that ran
    # read them from the diff alone.
    partial = sorted({na.rule for na in review.not_applied if na.file is None
                      and na.reason.startswith("not run on")})
    on_diff = [r.id for r in review.rules if r.id not in partial]
    for ap in review.apply:
        if not ap.ok:
            how = (f"checked on its diff alone by {', '.join(on_diff)}" if on_diff
                   else "not checked: no rule that reads the diff alone ran")
            print(V(f"patch {ap.number}/{n} {ap.state}: {ap.subject} ({how})"))
    for f in review.findings:
        where = f"{f.file}:{f.line}" if f.file else "(commit message)"
        fn = f" in {f.function}()" if f.function else ""
        fixed = f" [removed again by patch {f.fixed_by}]" if f.fixed_by else ""
        on = " (diff alone)" if f.checked_on == "diff" else ""
        print(V(f"patch {f.patch}: {where}{fn}: {f.severity}: [{f.rule}] {f.message}{fixed}{on}"))
        for line in f.excerpt[:4]:
            print(f"    {V(line, keep=chr(9))}")
    for na in review.not_applied:
        print(V(f"not applied: [{na.rule}] {na.file or '(all files)'}: {na.reason}"))
    for note in review.series.notes + review.notes:
        if not note.startswith("matrix not run"):
            print(V(f"note: {note}"))
    counts = review.severity_counts()
    ran = [r.id for r in review.rules]
    tally = (f"{len(review.findings)} finding(s): {counts.get('error', 0)} error, "
             f"{counts.get('warning', 0)} warning, {counts.get('info', 0)} info; "
             f"{len(ran)} rule(s) run" if ran else "nothing checked: no rule could run")
    if partial:
        tally += f"; {len(partial)} could not read every patch ({', '.join(partial)})"
    # The last line is the verdict the exit code gives: they never disagree.
    print(f"{tally}; fails on {review.fails_on}")
    print(V(f"{review.verdict.upper()}: {review.summary()}"))


@app.command("rules")
def rules(series: Optional[str] = typer.Argument(None, help="mbox, directory, maildir, '-', A..B or a Message-ID / lore link"),
          tree: Optional[str] = TreeOption,
          lore: Optional[str] = LoreOption,
          newest: bool = NewestOption,
          base: Optional[str] = typer.Option(None, "--base", help="Apply on this commit."),
          ignore: List[str] = typer.Option([], "--ignore", help="Skip a rule id (repeatable); "
                                                                "'checkpatch' skips all checkpatch types."),
          as_json: bool = typer.Option(False, "--json", help="Print findings as JSON."),
          fail_on: str = FailOnOption,
          list_: bool = typer.Option(False, "--list", help="List the rules."),
          explain: Optional[str] = typer.Option(None, "--explain", help="Explain one rule (lock-order: "
                                                                        "with the lock hierarchy of --tree).")) -> None:
    """Check the review rules on what SERIES adds: what `check --profile rules` and the pre-push
    hook run, with the same exit code (0 clean; 1 a finding at or above --fail-on, or a patch that
    did not apply; 2 bad input; 3 infrastructure)."""
    def body() -> int:
        from mmreview.rules.engine import find_rule, load_rules
        all_rules = load_rules()
        if list_:
            _print_list(all_rules)
            return EXIT_OK
        if explain:
            rule = find_rule(explain, all_rules)
            if rule is None:
                raise BadInput(explain, "no such rule (see `mmreview rules --list`)")
            _print_explain(rule)
            if rule.id == "lock-order":
                _print_hierarchy(tree, base)
            return EXIT_OK
        if not series:
            fail_usage("rules: give a SERIES, --list or --explain ID")
        known = {r.id for r in all_rules}
        for i in ignore:
            if i.split(":", 1)[0] not in known:
                raise BadInput(f"--ignore {i}", "no such rule (see `mmreview rules --list`)")
        try:
            severity, fail_untested = parse_fail_on(fail_on)
        except ValueError as exc:
            fail_usage(f"--fail-on {fail_on}: {exc}")
        from mmreview.review.pipeline import CheckRequest, run_check
        review = run_check(CheckRequest(source=series, tree=tree, base=base, profile="rules",
                                        fail_on=severity, fail_on_untested=fail_untested,
                                        ignore=tuple(ignore), lore=lore_options(lore, newest)))
        if as_json:
            data = review.to_json()
            print(json.dumps({k: data[k] for k in ("verdict", "exit_code", "summary", "fail_on",
                                                   "findings", "rules", "not_applied", "notes",
                                                   "apply", "tree")}, indent=2))
        else:
            _print_result(review)
        return review.exit_code
    code = run_command(body)
    raise typer.Exit(code)
