"""Intake + apply of a 20-patch series on the 6.12 tree, side by side with plain git.

    python benchmarks/apply.py [--rounds 3]

Baseline (what a person would type): `git worktree add --detach` of the base
(a full checkout of ~87k files) then `git am --3way` of the same mbox.
mmreview: `mmreview apply SERIES` end to end (intake, a sparse shared-object
work tree, git am, clean-up) as a subprocess, so start-up costs count too.
Prints both median wall times, the ratio (target <= 1.2) and mmreview's
apply step alone (target < 10 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmreview.apply.checkout import apply_series          # noqa: E402
from mmreview.intake.read import load_series             # noqa: E402
from mmreview.kernel.trees import init_default_tree, open_tree   # noqa: E402

# The CLI this Python's environment installed (the venv's entry point), not whatever is on PATH.
MMREVIEW = str(Path(sys.executable).with_name("mmreview"))

ENV = {**os.environ, "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.org",
       "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.org", "LC_ALL": "C"}
FILES = ["mm/vma.c", "mm/mmap.c", "lib/maple_tree.c", "mm/rmap.c", "tools/testing/radix-tree/maple.c"]


def sh(*cmd: str, cwd: Path | None = None) -> bytes:
    return subprocess.run(cmd, cwd=cwd, env=ENV, check=True, capture_output=True).stdout


def make_series(tree: Path, work: Path, n: int = 20) -> Path:
    """n real commits spread over mm/, lib/ and tools/testing/, exported with format-patch."""
    src = work / "src"
    sh("git", "clone", "-q", "--shared", "--no-checkout", str(tree), str(src))
    sh("git", "-C", str(src), "sparse-checkout", "set", "mm", "lib", "tools/testing/radix-tree")
    sh("git", "-C", str(src), "checkout", "-q", "master")
    base = sh("git", "-C", str(src), "rev-parse", "HEAD").decode().strip()
    for i in range(n):
        f = src / FILES[i % len(FILES)]
        lines = f.read_text().splitlines(keepends=True)
        at = 40 + 37 * i
        lines.insert(at, f"/* benchmark change {i}: a comment a reviewer would ask about */\n")
        f.write_text("".join(lines))
        sh("git", "-C", str(src), "commit", "-q", "-a", "-m", f"{FILES[i % len(FILES)]}: change {i}")
    mbox = work / "series.mbox"
    mbox.write_bytes(sh("git", "-C", str(src), "format-patch", "--stdout", "--cover-letter",
                        f"--base={base}", f"{base}..HEAD"))
    # What `b4 am` would hand a person: the same patches without the cover letter.
    (work / "patches.mbox").write_bytes(sh("git", "-C", str(src), "format-patch", "--stdout",
                                           f"{base}..HEAD"))
    return mbox


def baseline(tree: Path, mbox: Path, work: Path) -> float:
    wt = work / "wt"
    start = time.monotonic()
    sh("git", "-C", str(tree), "worktree", "add", "-q", "--detach", str(wt), "master")
    sh("git", "-C", str(wt), "am", "-q", "--3way", str(mbox.parent / "patches.mbox"))
    took = time.monotonic() - start
    sh("git", "-C", str(tree), "worktree", "remove", "--force", str(wt))
    return took


def ours(tree: Path, mbox: Path) -> float:
    start = time.monotonic()
    proc = subprocess.run([MMREVIEW, "apply", str(mbox), "--tree", str(tree)], env=ENV,
                          capture_output=True)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"mmreview apply failed: {proc.stderr.decode()}")
    return took


def apply_step(tree: Path, mbox: Path) -> float:
    kernel = open_tree(tree)
    series = load_series(str(mbox), kernel)
    start = time.monotonic()
    with apply_series(kernel, series) as co:
        assert co.result.ok
    return time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    default, _ = init_default_tree()
    with tempfile.TemporaryDirectory(prefix="mmreview-bench-") as tmp:
        work = Path(tmp)
        mbox = make_series(default, work)
        # The baseline's `git worktree add` writes into the repository: give it a clone of its own.
        tree = work / "linux.git"
        sh("git", "clone", "-q", "--bare", "--shared", str(default), str(tree))
        base_t, our_t, step_t = [], [], []
        for _ in range(args.rounds):    # interleaved, so load on the machine hits both alike
            base_t.append(baseline(tree, mbox, work))
            our_t.append(ours(tree, mbox))
            step_t.append(apply_step(tree, mbox))
        b, o, s = (statistics.median(x) for x in (base_t, our_t, step_t))
        print(f"series: 20 patches + cover letter, {mbox.stat().st_size} bytes; rounds: {args.rounds}")
        print(f"plain git (worktree add + git am --3way): {b:6.2f} s  (median of {len(base_t)})")
        print(f"mmreview apply (intake + apply + clean-up): {o:6.2f} s")
        print(f"ratio mmreview / plain git: {o / b:.2f}  (target <= 1.2)")
        print(f"mmreview apply step alone (work tree + git am): {s:6.2f} s  (target < 10 s)")
        shutil.rmtree(work / "wt", ignore_errors=True)


if __name__ == "__main__":
    main()
