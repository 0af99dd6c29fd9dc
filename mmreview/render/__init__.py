"""Renderers: each turns a Review into one output format, and does nothing else.

`render(review, fmt)` returns the text; the terminal renderer can also print
straight to a rich Console (colour, width) — see `render.terminal`.
Shared helpers that several formats need (the matrix as a grid, labels,
quoting a patch's lines) live here so the formats agree with each other.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Callable

from mmreview.common.textsafe import host_paths_hidden
from mmreview.rules.findings import Finding, RuleInfo
from mmreview.matrix.results import V_CHANGED, V_FIXED, V_NEW, V_NOT_RUN, V_PASS, V_PRE, Cell
from mmreview.review.model import Review

FORMATS = ("terminal", "markdown", "email", "json", "junit", "sarif", "terse", "b4")

VERDICT_LABEL = {V_PASS: "pass", V_NEW: "NEW FAILURE", V_CHANGED: "CHANGED FAILURE",
                 V_PRE: "pre-existing", V_FIXED: "fixed", V_NOT_RUN: "not run"}


_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_CONTROL = {c: None for c in range(32) if c != 9}
_CONTROL[127] = None


def clean_log(line: str) -> str:
    """A log line fit for any report: no terminal escape sequences, no control characters."""
    return _ANSI.sub("", line).translate(_CONTROL)


def plural(n: int, word: str, suffix: str = "s") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}{suffix}"


PUBLISHED = ("email", "markdown")      # what a bot sends to a list or a pull request


def render(review: Review, fmt: str, **opts) -> str:
    """The review as text in format `fmt` (one of FORMATS); a published one names no path of
    this machine (its home, mmreview's cache, the tree)."""
    text = _renderer(fmt)(review, **opts)
    if fmt in PUBLISHED:
        from mmreview.kernel.trees import cache_dir
        text = host_paths_hidden(text, {"<tree>": review.tree.path, "<cache>": str(cache_dir()),
                                        "<home>": os.path.expanduser("~")})
    return text


def _renderer(fmt: str) -> Callable[..., str]:
    # Imported lazily: `mmreview report --format json` need not import rich's Syntax, etc.
    if fmt == "terminal":
        from mmreview.render.terminal import render_text
        return render_text
    if fmt == "markdown":
        from mmreview.render.markdown import render_markdown
        return render_markdown
    if fmt == "email":
        from mmreview.render.email import render_email
        return render_email
    if fmt == "json":
        from mmreview.render.json import render_json
        return render_json
    if fmt == "junit":
        from mmreview.render.junit import render_junit
        return render_junit
    if fmt == "sarif":
        from mmreview.render.sarif import render_sarif
        return render_sarif
    if fmt == "terse":
        return render_terse
    if fmt == "b4":
        from mmreview.render.b4check import render_b4
        return render_b4
    raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


# ---------------------------------------------------------------- matrix grid

@dataclass
class Grid:
    """The matrix as rows (targets) × columns (suite/binary), for tables."""
    targets: list[str]
    columns: list[tuple[str, str]]          # (suite, binary)
    cells: dict[tuple[str, str, str], Cell]  # (target, suite, binary) -> Cell

    def get(self, target: str, column: tuple[str, str]) -> Cell | None:
        return self.cells.get((target, *column))


def grid(review: Review) -> Grid:
    targets: dict[str, None] = {}
    columns: dict[tuple[str, str], None] = {}
    cells = {}
    for c in review.cells:
        targets.setdefault(c.target, None)
        columns.setdefault((c.suite, c.binary), None)
        cells[(c.target, c.suite, c.binary)] = c
    return Grid(list(targets), list(columns), cells)


def failing_cells(review: Review) -> list[Cell]:
    """Cells worth a log and a reproduce command, in full: what the series made fail
    (new failures, then failures it changed).  Pre-existing ones are `preexisting_lines`."""
    order = {V_NEW: 0, V_CHANGED: 1}
    bad = [c for c in review.cells if c.verdict in order]
    return sorted(bad, key=lambda c: order[c.verdict])


_LOCATION = re.compile(r"^\S+?:\d+(?::\d+)?: ")


def preexisting_lines(review: Review) -> list[str]:
    """A line per pre-existing failure, the targets that share it on one line: the tree's own
    failure, the same at base and tip, so no log (the Review JSON keeps the base's evidence).
    One failure is one line even where targets' linkers name another place for it (riscv64's
    an inlined header line): then the line gives the error without a place."""
    groups: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    for c in review.cells:
        if c.verdict == V_PRE:
            r = c.base or c.tip
            bare = _state_reason(replace(r, reason=_LOCATION.sub("", r.reason)))
            groups.setdefault((c.suite, c.binary, bare), []).append((c.target, _state_reason(r)))
    lines = []
    for (suite, binary, bare), members in groups.items():
        said = {what for _, what in members}
        what = said.pop() if len(said) == 1 else bare
        lines.append(f"{suite}/{binary} on {', '.join(t for t, _ in members)}: {what} (same as base)")
    return lines


def _state_reason(r) -> str:
    text = r.state
    if r.passed is not None and r.total is not None:
        text += f" ({r.passed}/{r.total} passed)"
    return text + (f": {r.reason}" if r.reason else "")


def cell_detail(cell: Cell) -> str:
    """One line: what happened at tip, and at base when it matters."""
    text = _state_reason(cell.tip)
    if cell.base is not None and cell.verdict == V_CHANGED:
        new = changed_parts(cell)
        if new:
            text = f"{cell.tip.state}, newly: {'; '.join(new)}"
        text += f"; at base: {_state_reason(cell.base)}"
    elif cell.base is not None and cell.verdict in (V_NEW, V_FIXED, V_PRE):
        text += f"; at base: {cell.base.state}"
    return text


def changed_parts(cell: Cell) -> list[str]:
    """What a changed failure has at tip that the base's failure had not (for a build: its
    new error lines), from the two signatures; empty when they differ as a whole."""
    if cell.base is None or cell.base.state != cell.tip.state:
        return []
    def parts(sig: str) -> list[str]:
        return sig.partition(": ")[2].split(" | ") if sig else []
    base = set(parts(cell.base.signature))
    return [p for p in parts(cell.tip.signature) if p not in base]


def cell_reason(cell: Cell) -> str:
    return cell.tip.reason or (cell.base.reason if cell.base else "")


def ran_line(review: Review) -> str:
    """What the matrix ran, as one sentence: targets × suites, and how the cells came out."""
    g = grid(review)
    if not g.cells:
        return ""
    counts: dict[str, int] = {}
    for c in review.cells:
        counts[c.verdict] = counts.get(c.verdict, 0) + 1
    cols = ", ".join(b if s == b else f"{s}/{b}" for s, b in g.columns)
    return (f"{', '.join(g.targets)} × {cols}: "
            + ", ".join(f"{n} {VERDICT_LABEL[v]}" for v, n in counts.items()))


# ---------------------------------------------------------------- findings
# Who reads what: every report lists warnings and errors; `info` findings (advice a reviewer
# would not send, such as BUG_ON() in a test) are counted, and listed only on request.

def shown_findings(review: Review, show_info: bool = False) -> list[Finding]:
    """The findings a report lists, in patch order: all but `info` unless asked for."""
    return sorted((f for f in review.findings if show_info or f.severity != "info"),
                  key=lambda f: (f.patch, f.file, f.line))


def hidden_info(review: Review, show_info: bool = False) -> str:
    """The info findings a report does not list, as a count by rule ("" if none):
    "3 info findings (checkpatch:AVOID_BUG ×2, checkpatch:UNKNOWN_COMMIT_ID)"."""
    if show_info:
        return ""
    by_rule: dict[str, int] = {}
    for f in review.findings:
        if f.severity == "info":
            by_rule[f.rule] = by_rule.get(f.rule, 0) + 1
    if not by_rule:
        return ""
    rules = ", ".join(r + (f" ×{n}" if n > 1 else "") for r, n in by_rule.items())
    return f"{plural(sum(by_rule.values()), 'info finding')} ({rules})"


def rules_to_explain(review: Review, findings: list[Finding]) -> list[RuleInfo]:
    """The rules behind `findings`, each once, in the order first cited: a report says why a
    rule exists once, however many findings it has."""
    seen: dict[str, RuleInfo] = {}
    for f in findings:
        info = review.rule(f.rule)
        if info is not None and info.rationale and info.id not in seen:
            seen[info.id] = info
    return list(seen.values())


def one_paragraph(text: str) -> str:
    """A rationale as one paragraph: the rule files wrap theirs at their own width."""
    return " ".join(text.split())


def location(f: Finding) -> str:
    if not f.file:
        return "commit message"
    where = f"{f.file}:{f.line}" if f.line > 0 else f.file
    return f"{where} in {f.function}()" if f.function else where


def quote_patch(diff: str, file: str, line: int, excerpt: list[str] | tuple = (),
                before: int = 3) -> list[str]:
    """The lines of `diff` (a patch) a reviewer would quote for a finding at post-image `line` of
    `file`: the hunk header, up to `before` lines before it, the line itself, and the hunk's
    lines that the finding's excerpt names (other lines it holds), with "[...]" for gaps.
    Empty if the patch has no such line (the finding then stands on its excerpt)."""
    from unidiff import PatchSet
    from unidiff.errors import UnidiffParseError
    try:
        ps = PatchSet(diff.splitlines(keepends=True))
    except (UnidiffParseError, ValueError):
        return []
    wanted = {e.strip() for e in excerpt if e.strip()}
    for pf in ps:
        if pf.path != file and pf.target_file.removeprefix("b/") != file:
            continue
        out: list[str] = []
        found = False
        for hunk in pf:
            lines = list(hunk)
            keep: set[int] = set()
            if not found:
                idx = next((i for i, l in enumerate(lines)
                            if l.target_line_no == line and not l.is_removed), None)
                if idx is None:
                    continue
                found = True
                keep = set(range(max(0, idx - before), idx + 1))
            else:
                idx = -1
            # Other lines the finding names (its excerpt), in this hunk or a later one.
            keep |= {i for i, l in enumerate(lines)
                     if i > idx and not l.is_removed and l.value.strip() in wanted}
            if keep:
                out += _quote_hunk(hunk, lines, keep)
        if found:
            return out
    return []


def post_image_snippet(diff: str, file: str, line: int, before: int = 2,
                       after: int = 2) -> tuple[int, list[str]]:
    """(first line number, lines) of `file` after the patch around `line`, as far as the patch
    shows it (context and added lines, contiguous); (0, []) if the patch has no such line."""
    from unidiff import PatchSet
    from unidiff.errors import UnidiffParseError
    try:
        ps = PatchSet(diff.splitlines(keepends=True))
    except (UnidiffParseError, ValueError):
        return 0, []
    for pf in ps:
        if pf.path != file and pf.target_file.removeprefix("b/") != file:
            continue
        for hunk in pf:
            post = {l.target_line_no: l.value.rstrip("\r\n") for l in hunk
                    if l.target_line_no is not None}
            if line not in post:
                continue
            first = line
            while first - 1 in post and line - (first - 1) <= before:
                first -= 1
            last = line
            while last + 1 in post and (last + 1) - line <= after:
                last += 1
            return first, [post[n] for n in range(first, last + 1)]
    return 0, []


def _quote_hunk(hunk, lines: list, keep: set[int]) -> list[str]:
    header = f"@@ -{hunk.source_start},{hunk.source_length} +{hunk.target_start}," \
             f"{hunk.target_length} @@"
    if hunk.section_header:
        header += f" {hunk.section_header}"
    out, prev = [header], None
    for i in sorted(keep):
        if prev is not None and i - prev == 2:      # a one-line gap: show it, not "[...]"
            out.append(f"{lines[prev + 1].line_type}{lines[prev + 1].value.rstrip()}")
        elif prev is not None and i - prev > 2:
            out.append("[...]")
        out.append(f"{lines[i].line_type}{lines[i].value.rstrip()}")
        prev = i
    return out


def render_terse(review: Review, **_opts) -> str:
    """One line per problem, nothing when clean: for `b4 prep --check` (prep-perpatch-check-cmd),
    which reads each output line as a warning, or as a failure when it holds "ERROR:"."""
    out = []
    for p in review.apply:
        if not p.ok and p.state == "failed":
            why = ", ".join(p.conflict_files) or (p.message.splitlines() or ["git am failed"])[0]
            out.append(f"ERROR: patch {p.number} did not apply: {why}")
    # "ERROR:" exactly for what fails the review (the exit code says the same); the rest warns,
    # an error-level finding below --fail-on saying so rather than reading as a failure.
    failing = {id(f) for f in review.failing_findings()}
    for f in review.findings:
        fails = id(f) in failing
        level = "ERROR" if fails else ("INFO" if f.severity == "info" else "WARNING")
        below = "" if fails or f.severity != "error" else f" (error, below --fail-on {review.fail_on})"
        out.append(f"{level}: {f.rule}: {f.file}:{f.line}: {f.message}{below}")
    for c in review.new_failures():
        out.append(f"ERROR: new failure: {c.target} {c.suite}/{c.binary}: {cell_detail(c)}")
    if review.verdict == "incomplete" or (review.verdict == "untested" and review.fail_on_untested):
        out.append(f"ERROR: {review.summary()}")
    return "".join(l + "\n" for l in out)
