"""The terminal report, looked at as a person would: in a real terminal (tmux), and in a pipe."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid

import conftest_review as samples
from conftest import MMREVIEW
from mmreview.render import render


def tmux_capture(cmd: str, tmp_path, width: int = 110, height: int = 70) -> tuple[str, str]:
    """Run `cmd` in a detached tmux session; return the pane as plain text and with escapes."""
    assert shutil.which("tmux"), "tmux is part of the test set-up (apt-get install tmux)"
    name = f"mmr-{uuid.uuid4().hex[:8]}"
    done = tmp_path / "done"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", str(width), "-y", str(height),
                    f"{cmd}; echo $? > {done}; sleep 30"], check=True)
    try:
        deadline = time.monotonic() + 60
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert done.exists(), "the command did not finish in the terminal"
        plain = subprocess.run(["tmux", "capture-pane", "-p", "-t", name, "-S", "-200"],
                               capture_output=True, text=True, check=True).stdout
        colour = subprocess.run(["tmux", "capture-pane", "-p", "-e", "-t", name, "-S", "-200"],
                                capture_output=True, text=True, check=True).stdout
        return plain, colour
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def test_in_a_terminal_verdict_first_grid_and_colours(tmp_path):
    review = samples.constructed_regression()
    path = tmp_path / "review.json"
    path.write_text(review.dumps())
    plain, colour = tmux_capture(f"{MMREVIEW} report {path}", tmp_path)
    (tmp_path / "pane.txt").write_text(plain)
    lines = [l for l in plain.splitlines() if l.strip()]
    assert "mmreview" in lines[0]                       # the panel's top border
    assert "REGRESSIONS" in lines[1] and "1 new failure (x86_64/xarray)" in lines[1]
    text = "\n".join(lines)
    assert text.index("REGRESSIONS") < text.index("Patches") < text.index("Matrix") \
        < text.index("reproduce:")
    grid = [l for l in lines if l.startswith("│ x86_64") or l.startswith("│ arm64")]
    assert len(grid) == 2 and "NEW FAILURE" in grid[0] and "pre-existing" in grid[0]
    assert "\x1b[" in colour                            # a terminal gets colour
    assert "\x1b[" not in plain


def test_findings_highlighted_as_c(tmp_path):
    review = samples.real("rules-lock-order-pos.mbox")
    path = tmp_path / "review.json"
    path.write_text(review.dumps())
    plain, colour = tmux_capture(f"{MMREVIEW} report {path}", tmp_path)
    f = review.findings[0]
    assert f"lock-order  patch 1  mm/vma.c:{f.line} in vma_prepare()" in plain
    assert "anon_vma_lock_write(vp->anon_vma);" in plain
    # the code is shown with its line numbers in mm/vma.c after the patch, the flagged one marked
    assert re.search(rf"❱ {f.line} ", plain)
    # rich's C lexer colours the code: the excerpt line holds several colour changes
    at = next(i for i, l in enumerate(plain.splitlines()) if "anon_vma_lock_write(vp->anon_vma);" in l)
    code = colour.splitlines()[at]
    assert code.count("\x1b[") >= 3


def test_not_a_tty_is_plain_text():
    for make in samples.ALL.values():
        text = render(make(), "terminal", color=False)
        assert "\x1b" not in text
        # verdict first, whole lines, no box drawing (issue 23: the README says plain text)
        assert text.splitlines()[0].startswith(f"mmreview: {make().verdict.upper()}  ")
        assert not set(text) & set("│┃━─┏┓┗┛╇╭╮╰╯┡┩❱")
