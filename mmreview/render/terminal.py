"""The terminal report (rich): verdict first, the patches, the matrix as a coloured grid, the
findings (a line each, with their lines highlighted as C; `info` ones counted, listed with
`--show info`), then each failure's log and reproduce command, then why each cited rule exists, once.

On a terminal it is coloured; written to a pipe or a file (CI logs) it is plain text: no
escape codes.  Everything that comes from the series (subjects, authors, file and function
names, notes, code) goes in as rich `Text`, never as markup, and through `V` (textsafe.visible):
a subject "[/]" is not markup and an ESC in it does not reach the terminal.  The live progress display while a review runs is the pipeline's, not this.
"""

from __future__ import annotations

import io

from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from mmreview.matrix.results import V_CHANGED, V_FIXED, V_NEW, V_NOT_RUN, V_PASS, V_PRE
from mmreview.review.model import CLEAN, DID_NOT_APPLY, FINDINGS, INCOMPLETE, REGRESSIONS, UNTESTED, Review
from mmreview.apply.diagnose import DESCRIBE, failed_on
from mmreview.common.textsafe import visible as V
from mmreview.render import (VERDICT_LABEL, cell_detail, clean_log, failing_cells, grid, hidden_info,
                             location, one_paragraph, plural, post_image_snippet, preexisting_lines,
                             rules_to_explain, shown_findings)

VERDICT_STYLE = {CLEAN: "bold green", FINDINGS: "bold yellow", REGRESSIONS: "bold red",
                 DID_NOT_APPLY: "bold red", INCOMPLETE: "bold magenta", UNTESTED: "bold yellow"}
CELL_STYLE = {V_PASS: "green", V_NEW: "bold white on red", V_CHANGED: "bold white on red",
              V_PRE: "yellow", V_FIXED: "cyan", V_NOT_RUN: "dim"}
SEV_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
APPLY_STYLE = {"applied": "green", "applied-3way": "yellow", "failed": "bold red",
               "not-attempted": "dim"}


class WholeLine(Text):
    """A line printed whole, never broken by rich (the terminal wraps it): one a reader greps for."""


def print_review(review: Review, console: Console, show_info: bool = False) -> None:
    fancy = console.is_terminal
    for part in _parts(review, fancy, show_info):
        # In a pipe a line is as long as it is: wrapping at a width nobody has would cut it.
        console.print(part, soft_wrap=not fancy or isinstance(part, WholeLine))


def report_console(file=None) -> Console:
    """stdout as the report wants it: the terminal's width and colours on a tty; plain text,
    100 columns (or $COLUMNS) in a pipe or a CI log."""
    import os
    import sys
    out = file or sys.stdout
    tty = out.isatty()
    width = None if tty else int(os.environ.get("COLUMNS") or 100)
    from mmreview.cli.app import OutConsole
    return OutConsole(file=out, width=width, highlight=False, emoji=False,
                      color_system="auto" if tty else None)


def render_text(review: Review, color: bool = False, width: int = 100, show_info: bool = False,
                **_opts) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, color_system="standard"
                      if color else None, highlight=False, emoji=False)
    print_review(review, console, show_info)
    return buf.getvalue()


def _parts(review: Review, fancy: bool, show_info: bool = False):
    s, t = review.series, review.tree
    v = review.verdict
    head = Text()
    head.append(f"{v.upper()}", style=VERDICT_STYLE[v])
    head.append(f"  {V(review.summary())}")
    tree = f"tree {V(t.name)}\n" if t.name else ""
    sub = Text(f"{V(s.title)} (v{s.version}, {plural(len(s.patches), 'patch', 'es')}) by {V(s.author)}\n"
               f"{tree}base {t.base_sha[:12]} ({V(t.base_reason)}), tip {t.tip_sha[:12]}; "
               f"profile {review.profile}; fails on {review.fails_on}\n{review.confinement()}",
               style="dim" if fancy else "")
    if fancy:
        yield Panel(Group(head, sub), title="mmreview", title_align="left",
                    border_style=VERDICT_STYLE[v].split()[-1], expand=True)
    else:       # a pipe or a log: plain lines, nothing cut, no box drawing
        yield Text("mmreview: ") + head
        yield sub
    yield from _patches(review, fancy)
    yield from _matrix(review, fancy)
    shown = shown_findings(review, show_info)
    yield from _findings(review, shown, hidden_info(review, show_info), fancy)
    yield from _failures(review)
    for f in review.per_patch:         # `mmreview test --per-patch`
        yield WholeLine(f"per-patch: {V(f.describe())}: {V(f.reason)}", style="bold red")
        for line in f.excerpt[:6]:
            yield Text(f"    {clean_log(line)}", style="dim")

    for n in review.not_applied:
        yield Text(f"not applied: {n.rule}" + (f" on {V(n.file)}" if n.file else "")
                   + f": {V(n.reason)}", style="yellow")
    for n in s.notes + review.notes:
        if not n.startswith("matrix not run"):
            yield Text(f"note: {V(n)}", style="dim")
    why = rules_to_explain(review, shown)
    if why:
        yield Text("Why these rules", style="bold")
        for r in why:
            line = Text()
            line.append(f"  {r.id}: ", style="bold")
            line.append(V(one_paragraph(r.rationale)) + (f" ({V(r.source)})" if r.source else ""),
                        style="dim" if fancy else "")
            yield line


def _patches(review: Review, fancy: bool):
    if not fancy:
        yield Text("Patches")
        for p in review.apply:
            fs = review.findings_for(p.number)
            counts = ", ".join(f"{n} {sev}" for sev in ("error", "warning", "info")
                               if (n := sum(1 for f in fs if f.severity == sev)))
            where = f" ({failed_on(p.diagnosis, p.conflict_files)})" if p.conflict_files else ""
            yield Text(V(f"  {p.number:>3}  {p.state}{where}  {p.subject}"
                         + (f"  [{counts}]" if counts else "")))
    else:
        yield _patch_table(review)
    failed = review.failed_patch
    if failed and failed.message:
        yield Text(f"git am on patch {failed.number}:\n" + clean_log_block(failed.message), style="red")
    if failed and failed.diagnosis:
        yield Text(V(f"why: {DESCRIBE.get(failed.diagnosis, failed.diagnosis)}"), style="bold")
        for line in failed.detail:
            yield Text(f"  {V(line, keep=chr(9))}")
        yield Text("applies on: " + (", ".join(failed.applies_on) or "none of the other trees "
                                     "(`mmreview tree list`)"))


def _patch_table(review: Review) -> Table:
    patches = Table(title="Patches", title_justify="left", expand=False)
    patches.add_column("#", justify="right")
    patches.add_column("subject", overflow="fold")
    patches.add_column("apply")
    patches.add_column("findings")
    for p in review.apply:
        fs = review.findings_for(p.number)
        ftext = Text()
        for sev in ("error", "warning", "info"):
            n = sum(1 for f in fs if f.severity == sev)
            if n:
                ftext.append(f"{n} {sev} ", style=SEV_STYLE[sev])
        state = Text(p.state, style=APPLY_STYLE.get(p.state, ""))
        if p.conflict_files:
            state.append(f" ({V(', '.join(p.conflict_files))})")
        patches.add_row(str(p.number), Text(V(p.subject)), state, ftext if fs else Text("-", style="dim"))
    return patches


def clean_log_block(text: str) -> str:
    return "\n".join(clean_log(l) for l in text.splitlines())


def _matrix(review: Review, fancy: bool = True):
    g = grid(review)
    if not g.cells:
        why = next((n for n in review.notes if n.startswith("matrix not run")),
                   "matrix not run")
        yield Text(f"Matrix: {why.removeprefix('matrix ')}", style="dim")
        return
    if not fancy:
        yield Text("Matrix (base -> tip)")
        for target in g.targets:
            cells = [(col, g.get(target, col)) for col in g.columns]
            yield Text(f"  {target}: " + ", ".join(f"{col[1]} {VERDICT_LABEL[c.verdict]}"
                                                   for col, c in cells if c is not None))
        for t in review.targets:
            if not t.available:
                yield Text(f"target {t.name} not available: {t.reason}")
        return
    table = Table(title="Matrix (base -> tip)", title_justify="left")
    table.add_column("target")
    for suite, binary in g.columns:
        table.add_column(f"{suite}\n{binary}" if suite != binary else binary, justify="center")
    for target in g.targets:
        row = [Text(target)]
        for col in g.columns:
            c = g.get(target, col)
            if c is None:
                row.append(Text(""))
                continue
            row.append(Text(VERDICT_LABEL[c.verdict], style=CELL_STYLE[c.verdict]))
        table.add_row(*row)
    yield table
    unavailable = [t for t in review.targets if not t.available]
    for t in unavailable:
        yield Text(f"target {t.name} not available: {t.reason}", style="dim")


def _findings(review: Review, shown: list, hidden: str, fancy: bool = True):
    if not review.findings:
        return
    yield Text("Findings", style="bold")
    for f in shown:
        line = Text()
        line.append(f"{f.severity:<7}", style=SEV_STYLE.get(f.severity, ""))
        line.append(f" {f.rule}", style="bold")
        line.append(f"  patch {f.patch}  {V(location(f))}: {V(f.message)}"
                    + (f" (removed again by patch {f.fixed_by})" if f.fixed_by else ""))
        if f.checked_on == "diff":
            line.append("  (on the diff alone: the patch did not apply)")
        yield line
        patch = review.patch(f.patch)
        first, code = post_image_snippet(patch.diff, f.file, f.line) if patch else (0, [])
        if code and not fancy:
            width = len(str(first + len(code)))
            for i, c in enumerate(code):
                no = first + i
                yield Text(f"  {'>' if no == f.line else ' '} {no:>{width}}  {V(c, keep=chr(9))}")
        elif code:
            yield Syntax("\n".join(V(c, keep="\t") for c in code), "c", line_numbers=True, start_line=first,
                         highlight_lines={f.line}, theme="monokai", word_wrap=True,
                         background_color="default", indent_guides=False)
        shown = {c.strip() for c in code}
        rest = [e for e in f.excerpt if e.strip() and e.strip() not in shown]
        if rest and not fancy:
            for r in rest:
                yield Text(f"    {V(r, keep=chr(9))}")
        elif rest:
            yield Syntax("\n".join(V(r, keep="\t") for r in rest), "c", theme="monokai", word_wrap=True,
                         background_color="default")
    if hidden:
        yield Text(f"{V(hidden)} not listed: --show info lists them", style=SEV_STYLE["info"])


def _failures(review: Review):
    for c in failing_cells(review):
        title = Text()
        title.append(VERDICT_LABEL[c.verdict], style=CELL_STYLE[c.verdict])
        title.append(f"  {c.target} {c.suite}/{c.binary}: {V(cell_detail(c))}")
        yield title
        for l in c.tip.excerpt:
            yield Text(f"    {clean_log(l)}", style="dim")
        if c.tip.command:
            yield Text(f"  reproduce: {V(c.tip.command)}")
    for line in preexisting_lines(review):
        yield Text(f"pre-existing  {V(line)}", style="yellow")
