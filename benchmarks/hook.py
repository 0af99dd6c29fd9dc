"""Benchmark: the pre-push hook's rules-only review of a 10-patch push (target: < 3 s).

Makes a scratch clone of the provisioned tree (objects shared, sparse), a local bare
remote, installs `mmreview hook install --profile rules`, commits 10 small clean changes
across mm/, lib/ and kernel/, and times `git push` of the new branch (the hook reviews
all 10).  Prints the wall time of the push, of the review alone, and where the review's
time goes (intake, apply, each rule).

    python3 benchmarks/hook.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmreview.kernel import trees as tree_mod  # noqa: E402

# The CLI this Python's environment installed (the venv's entry point), not whatever is on PATH.
MMREVIEW = str(Path(sys.executable).with_name("mmreview"))

ID = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.org",
      "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.org", "LC_ALL": "C"}
FILES = ["mm/vma.c", "mm/mmap.c", "mm/rmap.c", "lib/maple_tree.c", "mm/mremap.c", "mm/memory.c",
         "mm/mprotect.c", "mm/mlock.c", "kernel/fork.c", "mm/nommu.c"]


def git(repo, *args, check=True):
    p = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                       env={**os.environ, **ID})
    if check and p.returncode:
        raise SystemExit(f"git {' '.join(args)}: {p.stderr}")
    return p.stdout.strip()


def setup(work: Path, kernel: Path, ignore: list[str]) -> Path:
    git(work, "clone", "--quiet", "--bare", "--shared", str(kernel), str(work / "remote.git"))
    repo = work / "linux"
    git(work, "clone", "--quiet", "--shared", "--no-checkout", str(kernel), str(repo))
    git(repo, "sparse-checkout", "set", "mm", "lib", "kernel")
    git(repo, "checkout", "--quiet", "master")
    git(repo, "remote", "add", "pushto", str(work / "remote.git"))
    git(repo, "fetch", "--quiet", "pushto")
    subprocess.run([MMREVIEW, "hook", "install", "--tree", str(repo), "--profile", "rules",
                    *[a for i in ignore for a in ("--ignore", i)]], check=True, capture_output=True)
    return repo


def make_commits(repo: Path, branch: str) -> str:
    git(repo, "checkout", "--quiet", "-B", branch, "master")
    for i, path in enumerate(FILES, 1):
        f = repo / path
        text = f.read_text()
        # A clean change: a comment line after the first include block.
        at = text.index("\n\n", text.index("#include")) + 1
        f.write_text(text[:at] + f"/* {Path(path).stem}: see Documentation/mm/ ({i}) */\n"
                     + text[at:])
        git(repo, "commit", "--quiet", "-a", "-m", f"{Path(path).stem}: add a pointer to the docs",
            "-m", "Say where the documentation of this file lives.",
            "-m", "Signed-off-by: Bench <bench@example.org>")
    return git(repo, "rev-parse", "HEAD")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ignore", action="append", default=[],
                    help="rule ids the hook skips (e.g. checkpatch, when b4 prep --check runs it)")
    args = ap.parse_args()
    kernel, _ = tree_mod.init_default_tree()
    pushes, reviews = [], []
    with tempfile.TemporaryDirectory(prefix="mmreview-hookbench-") as tmp:
        work = Path(tmp)
        repo = setup(work, kernel, args.ignore)
        for run in range(args.runs):
            branch = f"bench{run}"
            tip = make_commits(repo, branch)
            t0 = time.monotonic()
            p = subprocess.run(["git", "-C", str(repo), "push", "--quiet", "pushto", branch],
                               capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
            pushes.append(time.monotonic() - t0)
            if p.returncode != 0 or "CLEAN" not in p.stderr:
                raise SystemExit(f"push {run} was not a clean 10-patch review:\n{p.stderr}")
            assert "(v1, 10 patches)" in p.stderr, p.stderr
            # The review alone, in process, with its stages timed.
            from mmreview.review.pipeline import CheckRequest, run_check
            stages: list[tuple[str, float]] = []
            last = [time.monotonic()]

            current = ["start"]

            def progress(stage, done, total):
                now = time.monotonic()
                if stage != current[0]:
                    stages.append((current[0], now - last[0]))
                    current[0], last[0] = stage, now
            t0 = time.monotonic()
            r = run_check(CheckRequest(source=f"master..{tip}", tree=str(repo), base="master",
                                       profile="rules", ignore=tuple(args.ignore)), progress)
            reviews.append(time.monotonic() - t0)
            stages.append((current[0], time.monotonic() - last[0]))
            assert r.verdict == "clean" and len(r.apply) == 10, r.summary()
            # Where the rules' time goes, one rule at a time, on the same commits.
            from mmreview.intake.read import load_series
            from mmreview.review.pipeline import committed_checkout
            from mmreview.rules.engine import run_rules
            from mmreview.kernel.trees import open_tree
            t = open_tree(repo)
            series = load_series(f"master..{tip}", t)
            per_rule = run_rules(series, committed_checkout(t, series, "master")).seconds
    skipped = f", --ignore {','.join(args.ignore)}" if args.ignore else ""
    print(f"hook, rules only{skipped}, 10-patch push ({args.runs} runs, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}):")
    print(f"  git push (hook included): median {statistics.median(pushes):.2f} s "
          f"(runs: {', '.join(f'{t:.2f}' for t in pushes)})")
    print(f"  review alone (in process): median {statistics.median(reviews):.2f} s")
    print("  last review by stage: " + ", ".join(f"{s} {t:.2f}s" for s, t in stages if t > 0.05))
    print("  rules, seconds each: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                              sorted(per_rule.items(), key=lambda kv: -kv[1])))
    target = 3.0
    verdict = "meets" if statistics.median(pushes) < target else "misses"
    print(f"  target < {target:.0f} s: {verdict}")


if __name__ == "__main__":
    main()
