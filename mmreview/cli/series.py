"""`mmreview series SERIES`: what intake makes of a series, as a table or JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from mmreview.cli.app import SeriesArgument, LoreOption, NewestOption, TreeOption, app, lore_options, run_command, stdout
from mmreview.intake.read import load_series
from mmreview.intake.series import Series
from mmreview.common.textsafe import visible as V
from mmreview.kernel.trees import open_tree


@app.command("series")
def series_cmd(
    source: str = SeriesArgument,
    tree: Optional[Path] = TreeOption,
    lore: Optional[str] = LoreOption,
    newest: bool = NewestOption,
    as_json: bool = typer.Option(False, "--json", help="Print the series as JSON."),
) -> None:
    """Show a series as intake reads it: patches, cover letter, version, base-commit, notes."""
    def body() -> None:
        # The tree only matters for a range; a bad --tree is an error all the same.
        t = open_tree(tree) if tree is not None else None
        s = load_series(source, tree=t, lore=lore_options(lore, newest))
        if as_json:
            json.dump(s.to_json(), sys.stdout, indent=2, ensure_ascii=False)
            sys.stdout.write("\n")
        else:
            render(s)
    run_command(body)


def _trailer_summary(p) -> str:
    counts: dict[str, int] = {}
    for t in p.trailers:
        counts[t.name] = counts.get(t.name, 0) + 1
    return ", ".join(f"{n}" + (f" ×{c}" if c > 1 else "") for n, c in counts.items())


def render(s: Series) -> None:
    title = s.cover.full_subject if s.cover else s.title
    # Every string here comes from the mail: Text or markup=False, and V() for control characters.
    stdout.print(V(title), style="bold", markup=False)
    facts = [f"source: {V(s.source)} ({s.kind})", f"version: v{s.version}",
             f"patches: {len(s.patches)}",
             f"base-commit: {V(s.base_commit or '-')}"]
    stdout.print("  ".join(facts), markup=False)
    if s.cover:
        stdout.print(V(f"cover letter: {s.cover.author}, {s.cover.date}, <{s.cover.message_id}>"),
                     markup=False)
    else:
        stdout.print("cover letter: none", markup=False)
    if not stdout.is_terminal:      # a pipe: whole lines, nothing cut to a width
        for p in s.patches:
            stdout.print(V(f"{p.number}/{p.total}  {p.subject}  {p.author}  {len(p.files)} files"
                           + (f"  {_trailer_summary(p)}" if p.trailers else "")), markup=False)
        for n in s.notes:
            stdout.print(f"note: {V(n)}", markup=False)
        return
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("subject", overflow="fold")
    table.add_column("author")
    table.add_column("files", justify="right")
    table.add_column("trailers")
    for p in s.patches:
        # Text, not markup: subjects are full of [brackets].
        table.add_row(f"{p.number}/{p.total}", Text(V(p.subject)), Text(V(p.author)), str(len(p.files)),
                      Text(V(_trailer_summary(p))))
    stdout.print(table)
    for n in s.notes:
        stdout.print(f"note: {V(n)}", markup=False)
