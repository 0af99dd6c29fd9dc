"""`mmreview --help` reads in the order a user needs it (issue 22): the review, its stages, then
set-up and cluster; each help text is prose, with no line break mid-sentence."""

from __future__ import annotations

import re

from conftest import mmreview

ORDER = ["check", "b4-check", "series", "apply", "rules", "test", "report", "targets", "setup", "tree", "hook",
         "worker", "bot"]
WIDE = {"COLUMNS": "2000"}     # wide enough that rich wraps nothing: any line break is the text's


def _rows(text: str) -> list[tuple[str, str]]:
    """(command, help) per row of the help's command panels (not Options, Arguments); a row
    without a name goes on with the row above."""
    rows, panel = [], ""
    for line in text.splitlines():
        title = re.match(r"^╭─ (.+?) ─", line)
        if title:
            panel = title.group(1)
            continue
        m = re.match(r"^│ (\S*)\s+(.*?)\s*│$", line)
        if m and panel not in ("Options", "Arguments"):
            rows.append((m.group(1), m.group(2)))
    return rows


def test_check_first_then_the_stages_then_set_up():
    p = mmreview("--help", env=WIDE)
    assert p.returncode == 0, p.stderr
    text = p.stdout.decode()
    rows = _rows(text)
    assert [name for name, _ in rows] == ORDER, rows
    panels = re.findall(r"╭─ (.+?) ─", text)
    assert panels == ["Options", "Review", "Stages", "Set-up and cluster", "Service"]


def test_no_help_text_breaks_mid_sentence():
    for cmd in [[]] + [[c] for c in ORDER] + [["tree", "init"], ["hook", "run"], ["bot", "status"]]:
        p = mmreview(*cmd, "--help", env=WIDE)
        assert p.returncode == 0, (cmd, p.stderr)
        text = p.stdout.decode()
        assert all(name for name, _ in _rows(text)), (cmd, "a command's help goes on over two lines")
        # the description: paragraphs between "Usage:" and the first panel, each one line
        intro = text.split("Usage:", 1)[1].split("╭", 1)[0]
        paragraphs = [p for p in re.split(r"\n\s*\n", intro.split("\n", 1)[1]) if p.strip()]
        for par in paragraphs:
            assert "\n" not in par.strip(), (cmd, par)
    worker = mmreview("worker", "--help", env=WIDE).stdout.decode()
    assert re.search(r"a Dask worker that offers the targets `mmreview targets` says this machine runs",
                     worker)


def test_a_bare_command_prints_its_help_once():
    for cmd in ([], ["tree"]):
        p = mmreview(*cmd, env=WIDE)
        assert p.returncode == 2 and p.stdout.decode().count("Usage:") == 1, cmd
