"""`mmreview rules SERIES | --list | --explain ID`: the review rules alone (what the pre-push hook runs)."""

from __future__ import annotations

import json
import textwrap
from typing import List, Optional

import typer

from mmreview.cli.app import LoreOption, NewestOption, TreeOption, app, lore_options, fail_usage, run_command
from mmreview.common.errors import EXIT_FINDINGS, EXIT_OK, BadInput
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


def _print_result(res, series, co) -> None:
    # Subjects, file names, code and notes are the series': V() keeps its escapes off the terminal.
    for ap in co.result.patches:
        if ap.state not in ("applied", "applied-3way"):
            print(V(f"patch {ap.number}/{len(series.patches)} {ap.state}: {ap.subject} "
                    "(not checked)"))
    for f in res.findings:
        where = f"{f.file}:{f.line}" if f.file else "(commit message)"
        fn = f" in {f.function}()" if f.function else ""
        fixed = f" [removed again by patch {f.fixed_by}]" if f.fixed_by else ""
        print(V(f"patch {f.patch}: {where}{fn}: {f.severity}: [{f.rule}] {f.message}{fixed}"))
        for line in f.excerpt[:4]:
            print(f"    {V(line, keep=chr(9))}")
    for n in res.not_applied:
        print(V(f"not applied: [{n.rule}] {n.file or '(all files)'}: {n.reason}"))
    for n in getattr(res, "notes", []):
        print(V(f"note: {n}"))
    counts = {s: sum(1 for f in res.findings if f.severity == s) for s in ("error", "warning", "info")}
    print(f"{len(res.findings)} finding(s): {counts['error']} error, {counts['warning']} warning, "
          f"{counts['info']} info; {len(res.rules)} rule(s) run"
          + (f", ignored: {', '.join(res.ignored)}" if res.ignored else ""))


@app.command("rules")
def rules(series: Optional[str] = typer.Argument(None, help="mbox, directory, maildir, '-', A..B or a Message-ID / lore link"),
          tree: Optional[str] = TreeOption,
          lore: Optional[str] = LoreOption,
          newest: bool = NewestOption,
          base: Optional[str] = typer.Option(None, "--base", help="Apply on this commit."),
          ignore: List[str] = typer.Option([], "--ignore", help="Skip a rule id (repeatable); "
                                                                "'checkpatch' skips all checkpatch types."),
          as_json: bool = typer.Option(False, "--json", help="Print findings as JSON."),
          list_: bool = typer.Option(False, "--list", help="List the rules."),
          explain: Optional[str] = typer.Option(None, "--explain", help="Explain one rule (lock-order: "
                                                                        "with the lock hierarchy of --tree).")) -> None:
    """Check the review rules on what SERIES adds."""
    def body() -> int:
        from mmreview.rules.engine import find_rule, load_rules, run_rules
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
        from mmreview.apply.checkout import apply_series
        from mmreview.intake.read import load_series
        from mmreview.kernel.trees import open_tree
        t = open_tree(tree)
        s = load_series(series, t, lore=lore_options(lore, newest))      # "-": intake reads stdin (and says so if it is closed)
        with apply_series(t, s, base=base) as co:
            res = run_rules(s, co, ignore=ignore, rules=all_rules)
            if as_json:
                data = res.to_json()
                data["apply"] = co.result.to_json()
                print(json.dumps(data, indent=2))
            else:
                _print_result(res, s, co)
            failed = not co.result.ok
        return EXIT_FINDINGS if res.findings or failed else EXIT_OK
    code = run_command(body)
    raise typer.Exit(code)
