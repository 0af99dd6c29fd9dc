"""The PR comment: marker, verdict, tables, <details>, the 65,536-character limit — rendered to HTML."""

from __future__ import annotations

import copy
import re

import pytest
from markdown_it import MarkdownIt

import conftest_review as samples
from mmreview.rules.findings import Finding
from mmreview.render import render
from mmreview.render.markdown import LIMIT, MARKER
from mmreview.review.model import Review

MD = MarkdownIt("commonmark", {"html": True}).enable("table")
ALL = {**{f"constructed-{k}": v for k, v in samples.ALL.items()},
       **{f"real-{k}": v for k, v in samples.REAL.items()}}


@pytest.mark.parametrize("name", sorted(ALL))
def test_marker_verdict_and_tables_render(name):
    review = ALL[name]()
    text = render(review, "markdown")
    lines = text.splitlines()
    assert lines[0] == MARKER
    assert lines[1].startswith("### ") and review.summary().split(":")[0] in lines[1]
    html = MD.render(text)
    assert MARKER in html                       # kept as an HTML comment, invisible
    assert "<table>" in html                    # the patches table at least
    # Author addresses are escaped, not swallowed as HTML tags.
    assert "&lt;ada@example.org&gt;" in html
    assert len(text) < LIMIT


def test_matrix_table_and_logs_in_details():
    review = samples.constructed_regression()
    text = render(review, "markdown")
    html = MD.render(text)
    # rows are targets, columns suite/binary
    assert "| target | radix-tree/xarray | radix-tree/maple | vma/vma |" in text
    assert re.search(r"\| x86_64 \| ❌ NEW FAILURE \| ✅ pass \| 🟠 pre-existing \|", text)
    assert html.count("<details>") == 1           # the new failure's log; not the pre-existing one's
    assert "<li>🟠 vma/vma on x86_64: build-failed: undefined reference to vma_close (same as base)</li>" in html
    assert "<summary>x86_64 radix-tree/xarray: NEW FAILURE" in html
    assert "make -C tools/testing/radix-tree" in html
    tables = re.findall(r"<table>.*?</table>", html, re.S)
    assert len(tables) == 2                       # patches, matrix


def test_findings_table_escapes_pipes():
    text = render(samples.constructed_findings(), "markdown")
    html = MD.render(text)
    tables = re.findall(r"<table>.*?</table>", html, re.S)
    findings = tables[-1]
    assert "checkpatch:LONG_LINE" in findings and "lock-order" in findings
    # the message's "|" stayed inside its cell: 5 cells in every row
    for row in re.findall(r"<tr>(.*?)</tr>", findings, re.S)[1:]:
        assert row.count("<td") == 5, row


def test_truncated_below_the_limit_with_a_note():
    review = Review.from_json(copy.deepcopy(samples.constructed_regression().to_json()))
    base = review.cells[0]
    base.tip.excerpt = [f"log line {i} " + "x" * 100 for i in range(300)]
    review.findings = [Finding(rule="checkpatch:LONG_LINE", severity="warning", patch=1,
                               patch_subject="s", file="mm/vma.c", line=i, function=None,
                               message="line too long " + "y" * 80,
                               excerpt=["z" * 120] * 3) for i in range(1, 600)]
    full = render(review, "markdown", limit=10**9)
    assert len(full) > LIMIT
    text = render(review, "markdown")
    assert len(text) < LIMIT
    assert "Truncated to stay under GitHub's 65,536-character limit" in text
    assert re.search(r"\d+ log excerpts? (and \d+ findings? )?left out", text)
    assert text.splitlines()[0] == MARKER
    # Matrix and verdict survive the cut; the HTML is still well formed.
    assert "NEW FAILURE" in text
    html = MD.render(text)
    assert html.count("<details>") == html.count("</details>")
