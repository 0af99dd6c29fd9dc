"""A GitHub/GitLab pull-request comment.

The first line is a hidden marker, so a bot finds and edits its own comment
instead of adding a new one each run.  GitHub refuses comments over 65,536
characters: the comment is built from sections in order of importance and,
when too long, loses log excerpts first, then finding rows, and says what it
cut.  Info findings are counted under the table, not listed (`--show info` lists them);
why each cited rule exists is said once, at the end.
"""

from __future__ import annotations

import html

from mmreview.matrix.results import V_CHANGED, V_FIXED, V_NEW, V_NOT_RUN, V_PASS, V_PRE
from mmreview.review.model import CLEAN, DID_NOT_APPLY, FINDINGS, INCOMPLETE, REGRESSIONS, UNTESTED, Review
from mmreview.render import (VERDICT_LABEL, cell_detail, clean_log, failing_cells, grid, hidden_info,
                             location, one_paragraph, preexisting_lines, rules_to_explain,
                             shown_findings)

MARKER = "<!-- mmreview:review -->"
LIMIT = 65_536
_SAFETY = 512          # room for the truncation note

_VERDICT_ICON = {CLEAN: "✅", FINDINGS: "⚠️", REGRESSIONS: "❌", DID_NOT_APPLY: "⛔", INCOMPLETE: "🚧",
                 UNTESTED: "❔"}
_CELL_ICON = {V_PASS: "✅", V_NEW: "❌", V_CHANGED: "❌", V_PRE: "🟠", V_FIXED: "🟢", V_NOT_RUN: "⚪"}
_SEV_ICON = {"error": "🔴", "warning": "🟡", "info": "🔵"}


def cell_text(s: str) -> str:
    """Text safe inside a table cell: HTML-escaped (addresses in <>), pipes and newlines neutralised."""
    return html.escape(s, quote=False).replace("|", "\\|").replace("\n", " ")


def code_span(s: str) -> str:
    s = s.replace("\n", " ")
    ticks = "``" if "`" in s else "`"
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{ticks}{pad}{s}{pad}{ticks}".replace("|", "\\|")


def fence(lines: list[str], lang: str = "text") -> str:
    body = "\n".join(clean_log(l) for l in lines)
    ticks = "```"
    while ticks in body:
        ticks += "`"
    return f"{ticks}{lang}\n{body}\n{ticks}"


def render_markdown(review: Review, limit: int = LIMIT, show_info: bool = False,
                    link: str | None = None, **_opts) -> str:
    shown = shown_findings(review, show_info)
    head = _head(review)
    if link:     # the bot's results page for this review (site_url)
        head += f"\n\n[The full results]({link})"
    logs = _log_sections(review, shown)
    finding_rows = _finding_rows(shown)
    info = hidden_info(review, show_info)
    tail = _tail(review, shown)

    def build(n_rows: int, n_logs: int, note: str = "") -> str:
        parts = [head]
        if finding_rows:
            parts.append(_findings_table(finding_rows[:n_rows]))
        if info:
            parts.append(f"{_SEV_ICON['info']} {cell_text(info)}: not listed "
                         "(`mmreview report REVIEW.json --show info` lists them).")
        parts.extend(logs[:n_logs])
        parts.append(tail)
        if note:
            parts.append(note)
        return "\n\n".join(p for p in parts if p) + "\n"

    text = build(len(finding_rows), len(logs))
    if len(text) <= limit:
        return text
    # Too long: drop logs from the end, then finding rows, until it fits with the note.
    n_logs, n_rows = len(logs), len(finding_rows)
    while True:
        note = _cut_note(len(logs) - n_logs, len(finding_rows) - n_rows)
        text = build(n_rows, n_logs, note)
        if len(text) <= limit - _SAFETY or (n_logs == 0 and n_rows == 0):
            break
        if n_logs:
            n_logs -= 1
        else:
            n_rows = max(0, n_rows - max(1, n_rows // 10))
    if len(text) > limit:           # even the head is too long: hard cut at a line boundary
        cut = text[: limit - _SAFETY].rsplit("\n", 1)[0]
        text = cut + "\n\n" + _cut_note(len(logs), len(finding_rows), hard=True) + "\n"
    return text


def _cut_note(logs: int, rows: int, hard: bool = False) -> str:
    what = []
    if logs:
        what.append(f"{logs} log excerpt{'s' if logs != 1 else ''}")
    if rows:
        what.append(f"{rows} finding{'s' if rows != 1 else ''}")
    if hard:
        what = ["the rest of the report"]
    return (f"> [!NOTE]\n> Truncated to stay under GitHub's {LIMIT:,}-character limit: "
            f"{' and '.join(what) or 'nothing'} left out. The full review is in the JSON "
            f"(`mmreview report review.json`).")


def _head(review: Review) -> str:
    s, t = review.series, review.tree
    icon = _VERDICT_ICON[review.verdict]
    lines = [MARKER,
             f"### {icon} mmreview: {cell_text(review.summary())}",
             "",
             f"**{cell_text(s.title)}** (v{s.version}, {len(s.patches)} patch"
             f"{'es' if len(s.patches) != 1 else ''}) by {cell_text(s.author)}  ",
             f"Base {code_span(t.base_sha[:12])} ({cell_text(t.base_reason)}), "
             f"tip {code_span(t.tip_sha[:12])} · profile `{review.profile}` · "
             f"fails on `{review.fails_on}` · mmreview {review.tool_version}  ",
             cell_text(review.confinement()[:1].upper() + review.confinement()[1:]) + ".",
             "",
             "| # | Patch | Applied | Findings |",
             "|---:|---|---|---|"]
    for p in review.apply:
        fs = review.findings_for(p.number)
        counts: dict[str, int] = {}
        for f in fs:
            counts[f.severity] = counts.get(f.severity, 0) + 1
        ftext = ", ".join(f"{_SEV_ICON.get(k, '')} {n} {k}" for k, n in counts.items()) or "—"
        state = p.state if p.ok else f"**{p.state}**"
        if p.conflict_files:
            state += " (" + ", ".join(code_span(c) for c in p.conflict_files) + ")"
        lines.append(f"| {p.number} | {cell_text(p.subject)} | {state} | {ftext} |")
    failed = review.failed_patch
    if failed and failed.message:
        lines += ["", f"<details><summary>git am: patch {failed.number} did not apply</summary>",
                  "", fence(failed.message.splitlines()), "", "</details>"]
    lines += ["", _matrix(review)]
    return "\n".join(lines)


def _matrix(review: Review) -> str:
    g = grid(review)
    if not g.cells:
        why = next((n for n in review.notes if n.startswith("matrix not run")), "matrix not run")
        return f"**Matrix:** {cell_text(why.removeprefix('matrix '))}"
    header = "| target | " + " | ".join(f"{s}/{b}" for s, b in g.columns) + " |"
    rule = "|---|" + "---|" * len(g.columns)
    rows = [header, rule]
    for t in g.targets:
        cells = []
        for col in g.columns:
            c = g.get(t, col)
            if c is None:
                cells.append("")
            else:
                cells.append(f"{_CELL_ICON[c.verdict]} {VERDICT_LABEL[c.verdict]}")
        rows.append(f"| {t} | " + " | ".join(cells) + " |")
    legend = "✅ pass · ❌ new failure · 🟠 pre-existing (fails at base too) · 🟢 fixed · ⚪ not run"
    unavailable = [f"{tg.name} ({cell_text(tg.reason)})" for tg in review.targets if not tg.available]
    extra = f"\n\nNot available: {'; '.join(unavailable)}" if unavailable else ""
    return "**Matrix** (at base → after the series)\n\n" + "\n".join(rows) + f"\n\n{legend}{extra}"


def _finding_rows(shown: list) -> list[str]:
    rows = []
    for f in shown:
        fixed = f" (removed again by patch {f.fixed_by})" if f.fixed_by else ""
        rows.append(f"| {_SEV_ICON.get(f.severity, '')} {f.severity} | `{f.rule}` | {f.patch} | "
                    f"{code_span(location(f))} | {cell_text(f.message)}{fixed} |")
    return rows


def _findings_table(rows: list[str]) -> str:
    return ("**Findings**\n\n| severity | rule | patch | where | message |\n|---|---|---:|---|---|\n"
            + "\n".join(rows))


def _log_sections(review: Review, shown: list) -> list[str]:
    out = []
    for c in failing_cells(review):
        res = c.tip
        title = f"{c.target} {c.suite}/{c.binary}: {VERDICT_LABEL[c.verdict]} — {cell_detail(c)}"
        body = [f"<details><summary>{cell_text(title)}</summary>", ""]
        if res.excerpt:
            body += [fence(res.excerpt), ""]
        if res.command:
            body += ["Reproduce:", "", fence([res.command], "sh"), ""]
        body.append("</details>")
        out.append("\n".join(body))
    pre = preexisting_lines(review)
    if pre:
        out.append("Pre-existing (the tree's own failures, the same at base):\n\n"
                   + "\n".join(f"- 🟠 {cell_text(line)}" for line in pre))
    for f in shown:
        if not f.excerpt:
            continue
        out.append("\n".join([f"<details><summary>{cell_text(f'{f.rule} at {location(f)} (patch {f.patch})')}"
                              f"</summary>", "", fence(f.excerpt, "c"), "", "</details>"]))
    return out


def _tail(review: Review, shown: list) -> str:
    lines = []
    if review.not_applied:
        lines.append("**Rules not applied:** " + "; ".join(
            cell_text(f"{n.rule}" + (f" on {n.file}" if n.file else "") + f": {n.reason}")
            for n in review.not_applied))
    for n in review.series.notes + review.notes:
        if not n.startswith("matrix not run"):
            lines.append(f"- {cell_text(n)}")
    why = rules_to_explain(review, shown)
    if why:
        lines += ["", "<details><summary>Why these rules</summary>", ""]
        lines += [f"- **{cell_text(r.id)}**: {cell_text(one_paragraph(r.rationale))}"
                  + (f" *({cell_text(r.source)})*" if r.source else "") for r in why]
        lines += ["", "</details>"]
    return "\n".join(lines).strip("\n")
