"""Each thing said once, only what matters (issue 22), on reviews saved from real runs.

tests/data/review-*.json are the Review JSON of real `mmreview check` runs on the default tree
(x86_64, quick profile; the tree's path written as ~/.cache/...):

  clean       series/report-fix-with-test.mbox: a fix citing a commit with `Fixes:` and a maple
              test asserting with MT_BUG_ON(): 4 info findings, vma pre-existing
  warning     series/rules-error-path-needs-test-pos.mbox: one warning
  error       series/rules-lock-order-pos.mbox: one rule error
  regression  series/matrix-break-xarray.mbox (--binary xarray): a new failure with its log

`python3 benchmarks/report_lines.py` prints the line count of each format for them.
"""

from __future__ import annotations

import email
import email.policy
import html
import shlex
from pathlib import Path

import pytest

from mmreview.render import clean_log, render
from mmreview.review.model import Review

DATA = Path(__file__).parent / "data"
SAMPLES = ("clean", "warning", "error", "regression")


def review(name: str) -> Review:
    return Review.loads((DATA / f"review-{name}.json").read_text(), name)


def body(text: str) -> str:
    # bytes: a body sent 8bit (as it is once b4 is imported: it registers utf-8 so) decodes as UTF-8
    return email.message_from_bytes(text.encode(), policy=email.policy.default).get_content()


def flat(text: str) -> str:
    """The text as words: line breaks, indents and HTML escapes do not count."""
    return " ".join(html.unescape(text).split())


def words(cmd: str) -> list[str]:
    """A shell command as the shell reads it (operators as words of their own)."""
    lex = shlex.shlex(cmd, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    return list(lex)


def reports(r: Review, show_info: bool = False) -> dict[str, str]:
    return {"email": body(render(r, "email")),
            "markdown": render(r, "markdown", show_info=show_info),
            "terminal": render(r, "terminal", show_info=show_info)}


def test_the_samples_are_what_they_say():
    verdicts = {n: review(n).verdict for n in SAMPLES}
    assert verdicts == {"clean": "clean", "warning": "clean", "error": "findings",
                        "regression": "regressions"}
    assert [f.severity for f in review("warning").findings] == ["warning"]
    assert [f.severity for f in review("error").findings] == ["error"]
    clean = review("clean")
    assert {f.severity for f in clean.findings} == {"info"} and len(clean.findings) == 4
    assert any(c.verdict == "pre-existing" for c in clean.cells)


@pytest.mark.parametrize("show_info", [False, True])
@pytest.mark.parametrize("name", SAMPLES)
def test_no_paragraph_said_twice(name, show_info):
    r = review(name)
    for fmt, text in reports(r, show_info).items():
        paragraphs = [flat(p) for p in text.split("\n\n")]
        long = [p for p in paragraphs if len(p) >= 60]
        assert len(long) == len(set(long)), (fmt, [p for p in long if long.count(p) > 1][:1])
        for rule in r.rules:
            said = flat(rule.rationale)[:120]
            assert flat(text).count(said) <= 1, (fmt, rule.id)
        # a rule cited is explained, once (the mail never lists info findings)
        listed = show_info and fmt != "email"
        for rule in {r.rule(f.rule).id for f in r.findings if f.severity != "info" or listed}:
            assert flat(text).count(flat(r.rule(rule).rationale)[:120]) == 1, (fmt, rule)


@pytest.mark.parametrize("name", SAMPLES)
def test_a_finding_is_one_line_and_its_excerpt(name):
    r = review(name)
    text = render(r, "terminal", width=400)
    for f in r.findings:
        if f.severity == "info":
            continue
        (line,) = [l for l in text.splitlines() if f.rule in l and f.message in l]
        assert f"patch {f.patch}" in line


def test_info_is_counted_not_quoted_in_mail_and_markdown():
    r = review("clean")
    for fmt, text in reports(r).items():
        assert "4 info findings (checkpatch:UNKNOWN_COMMIT_ID, checkpatch:AVOID_BUG ×3)" in flat(text), fmt
        if fmt == "terminal":
            assert "--show info" in text
            continue
        for f in r.findings:
            assert flat(f.message)[:60] not in flat(text), (fmt, f.rule)
            for e in f.excerpt:
                assert e.strip() not in text, (fmt, e)
    shown = render(r, "terminal", show_info=True, width=400)
    assert shown.count("checkpatch:AVOID_BUG  patch 2") == 3
    assert "MT_BUG_ON(mt, mas.node != MA_ERROR(-ENOMEM));" in shown


def test_the_clean_mail_is_a_short_note():
    r = review("clean")
    lines = body(render(r, "email")).splitlines()
    assert len(lines) <= 25, "\n".join(lines)
    text = "\n".join(lines)
    assert "Verdict: clean" in text
    ran = [l for l in lines if l.startswith("Ran: ")]
    assert ran and "x86_64 ×" in ran[0]
    assert flat("Pre-existing (fails at the base too): vma/vma on x86_64") in flat(text)


def test_the_regression_mail_keeps_its_whole_log_and_reproduce_command():
    r = review("regression")
    (cell,) = r.new_failures()
    assert len(cell.tip.excerpt) > 10 and max(map(len, cell.tip.excerpt)) > 80   # long enough to cut
    text = body(render(r, "email"))
    for line in cell.tip.excerpt:
        assert flat(clean_log(line)) in flat(text), line
    lines = text.splitlines()
    start = lines.index("  To reproduce:") + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].endswith("\\")) + 1
    command = "\n".join(lines[start:end]).replace("\\\n", "")    # the shell's line continuations
    assert words(command) == words(cell.tip.command)
    assert all(len(l) <= 80 for l in lines)


def test_report_show_info_on_the_command_line():
    from conftest import mmreview
    saved = str(DATA / "review-clean.json")
    plain = mmreview("report", saved, env={"COLUMNS": "200"})
    shown = mmreview("report", saved, "--show", "info", env={"COLUMNS": "200"})
    assert plain.returncode == shown.returncode == 0, (plain.stderr, shown.stderr)
    assert b"checkpatch:AVOID_BUG  patch 2" not in plain.stdout and b"--show info" in plain.stdout
    assert shown.stdout.count(b"checkpatch:AVOID_BUG  patch 2") == 3
    bad = mmreview("report", saved, "--show", "warning")
    assert bad.returncode == 2 and bad.stderr.decode().startswith("mmreview: error: --show warning")
    assert len(bad.stderr.splitlines()) == 1
