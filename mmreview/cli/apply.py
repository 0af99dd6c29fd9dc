"""`mmreview apply SERIES`: take a series in and apply it in an isolated work tree."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from mmreview.apply.diagnose import failed_on
from mmreview.apply.checkout import APPLIED, APPLIED_3WAY, FAILED, ApplyResult, apply_series
from mmreview.cli.app import (LoreOption, NewestOption, SeriesArgument, TreeOption, app, lore_options,
                              run_command, stderr, stdout)
from mmreview.common.errors import EXIT_FINDINGS, EXIT_OK
from mmreview.intake.series import Series
from mmreview.common.textsafe import visible as V
from mmreview.kernel.trees import open_tree

_STYLE = {APPLIED: "green", APPLIED_3WAY: "yellow", FAILED: "bold red"}


def render_apply(series: Series, result: ApplyResult, tree_path: str) -> None:
    # Subjects, notes, file names and git's messages come from the series: Text, never markup
    # ("[/]" in a subject is a MarkupError), and V() for control characters.
    title = Text(V(series.title), style="bold")
    title.append(V(f"  (v{series.version}, {len(series.patches)} patches, from {series.source})"))
    stdout.print(title)
    for note in series.notes:
        stdout.print(Text(V(f"  note: {note}")))
    stdout.print(Text(V(f"base {result.base_sha[:12]} in {tree_path}: {result.base_reason}")))
    if stdout.is_terminal:
        _table(result)
    else:       # a pipe: whole lines, no box drawing
        for p in result.patches:
            detail = p.commit[:12] if p.commit else ""
            if p.state == FAILED:
                detail = failed_on(p.diagnosis, p.conflict_files)
            stdout.print(Text(V(f"{p.number:>3}  {p.state}  {p.subject}" + (f"  {detail}" if detail
                                                                               else ""))))
    failed = result.failed
    if failed:
        line = Text(f"patch {failed.number}/{len(result.patches)} did not apply", style="bold red")
        line.append(V(f" on {', '.join(failed.conflict_files) or 'unknown files'}:"))
        stdout.print(line)
        for line in failed.message.splitlines():
            stdout.print(Text(V(f"  {line}")))
        if failed.diagnosis:
            from mmreview.apply.diagnose import DESCRIBE
            stdout.print(Text(V(f"why: {DESCRIBE.get(failed.diagnosis, failed.diagnosis)}"), style="bold"))
            for line in failed.detail:
                stdout.print(Text(V(f"  {line}", keep=chr(9))))
            stdout.print(Text("applies on: " + (", ".join(failed.applies_on)
                                                or "none of the other trees (`mmreview tree list`)")))
    else:
        stdout.print(f"[green]all {len(result.patches)} patches applied[/]; tip {result.tip_sha[:12]}")


def _table(result: ApplyResult) -> None:
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("patch")
    table.add_column("result")
    table.add_column("detail")
    for p in result.patches:
        detail = p.commit[:12] if p.commit else ""
        if p.state == FAILED:
            detail = failed_on(p.diagnosis, p.conflict_files)
        table.add_row(str(p.number), Text(V(p.subject)), Text(p.state, style=_STYLE.get(p.state, "dim")),
                      Text(V(detail)))
    stdout.print(table)


@app.command("apply")
def apply_cmd(
    series_arg: str = SeriesArgument,
    tree: Optional[str] = TreeOption,
    lore: Optional[str] = LoreOption,
    newest: bool = NewestOption,
    base: Optional[str] = typer.Option(None, "--base", help="Apply on this revision (default: the series' "
                                                            "base-commit: if the tree has it, else HEAD)."),
    keep: bool = typer.Option(False, "--keep", help="Keep the work tree and print its path."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Apply a series with `git am --3way` in an isolated work tree at the right base.

    The tree's working tree, index, HEAD, branches and stash are never changed.
    Exit 0 all applied, 1 a patch failed, 2 bad input or usage."""
    def body() -> int:
        from mmreview.intake.read import load_series
        kernel = open_tree(tree)
        series = load_series(series_arg, kernel, lore=lore_options(lore, newest))
        with stderr.status("applying…") if stderr.is_terminal else nullcontext():
            with apply_series(kernel, series, base=base, keep=keep) as co:
                result = co.result
                kept = co.path if keep else None
        if as_json:
            out = {"series": series.to_json(), "apply": result.to_json(),
                   "worktree": str(kept) if kept else None}
            json.dump(out, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            render_apply(series, result, kernel.name)
            if kept:
                stdout.print(f"work tree kept at {kept}")
        return EXIT_OK if result.ok else EXIT_FINDINGS
    raise typer.Exit(run_command(body))

