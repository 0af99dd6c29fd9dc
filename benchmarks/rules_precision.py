"""Precision of the rules on real, reviewed mm code: the changes between two releases, as a series.

    python3 benchmarks/rules_precision.py --pair 7.2-7.3          # across a merge window
    python3 benchmarks/rules_precision.py --pair 6.12 \\
        --old ~/linux-6.12.115.git                                  # two stable releases
    python3 benchmarks/rules_precision.py --old REPO[:REV] --new REPO[:REV] [--paths P ...] [--json F]

Every file under PATHS that differs between the two trees becomes one patch (the old file replaced
by the new one, in path order), in a scratch repository that borrows both trees' objects; the series
is `git format-patch` output and goes through intake, apply and every rule as any series would.
What merged and was released has been reviewed: an error-severity finding on it is a false positive
to fix, or a true positive to write down with its reason (rules/README.md, "Precision").

`--pair 7.2-7.3` uses the provisioned trees (`mmreview tree init --kernel 7.2|7.3`).  `--pair 6.12`
compares the default tree (6.12.117) with an older 6.12 given by --old, e.g. Debian's 6.12.115
imported with `XDG_CACHE_HOME=/tmp/x mmreview tree init --tarball linux-source-6.12.tar.xz`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmreview.apply.checkout import apply_series  # noqa: E402
from mmreview.intake.read import load_series  # noqa: E402
from mmreview.rules.engine import run_rules  # noqa: E402
from mmreview.kernel.trees import open_tree, tree_path  # noqa: E402

PATHS = ["mm/", "lib/maple_tree.c", "lib/xarray.c", "include/linux/mm*.h"]
IDENT = {"GIT_AUTHOR_NAME": "mmreview precision", "GIT_AUTHOR_EMAIL": "precision@example.org",
         "GIT_COMMITTER_NAME": "mmreview precision", "GIT_COMMITTER_EMAIL": "precision@example.org",
         "GIT_AUTHOR_DATE": "@1767225600 +0000", "GIT_COMMITTER_DATE": "@1767225600 +0000"}


def git(repo: Path, *args: str, input: bytes | None = None, env: dict | None = None) -> str:
    p = subprocess.run(["git", "-C", str(repo), *args], input=input, capture_output=True,
                       env={**os.environ, "LC_ALL": "C", **IDENT, **(env or {})})
    if p.returncode:
        raise SystemExit(f"git {' '.join(args[:3])}: {p.stderr.decode().strip()}")
    return p.stdout.decode("utf-8", "replace")


def objects_dir(repo: Path) -> str:
    return git(repo, "rev-parse", "--path-format=absolute", "--git-path", "objects").strip()


def side(spec: str) -> tuple[Path, str]:
    repo, _, rev = spec.partition(":")
    path = Path(repo).expanduser()
    return path, git(path, "rev-parse", rev or "HEAD").strip()


def build_series(scratch: Path, old: tuple[Path, str], new: tuple[Path, str], paths: list[str],
                 label: str) -> tuple[Path, list[str], dict]:
    """A bare repo borrowing both trees' objects, one commit per changed file on top of the old
    release; returns (mbox, files, stats)."""
    git(scratch.parent, "init", "--quiet", "--bare", str(scratch))
    alt = Path(objects_dir(scratch)) / "info" / "alternates"
    alt.write_text(f"{objects_dir(old[0])}\n{objects_dir(new[0])}\n")
    base, tip = old[1], new[1]
    git(scratch, "update-ref", "refs/heads/master", base)
    rows = git(scratch, "diff", "--no-renames", "--name-status", base, tip, "--", *paths).splitlines()
    changes = [(r.split("\t")[0], r.split("\t")[1]) for r in rows if r.strip()]
    index = scratch / "precision.index"
    env = {"GIT_INDEX_FILE": str(index)}
    git(scratch, "read-tree", base, env=env)
    head = base
    for status, path in changes:
        if status == "D":     # mode 0 removes the entry (--force-remove wants a work tree)
            info = f"0 {'0' * 40}\t{path}\n"
        else:
            mode, _, sha = git(scratch, "ls-tree", tip, "--", path).split("\t")[0].split()
            info = f"{mode} {sha}\t{path}\n"
        git(scratch, "update-index", "--index-info", input=info.encode(), env=env)
        tree = git(scratch, "write-tree", env=env).strip()
        head = git(scratch, "commit-tree", tree, "-p", head,
                   "-m", f"{path}: {label}\n\nThe released file, as merged.\n\n"
                         "Signed-off-by: mmreview precision <precision@example.org>").strip()
    git(scratch, "update-ref", "refs/heads/series", head)
    mbox = scratch.parent / "series.mbox"
    mbox.write_bytes(subprocess.run(["git", "-C", str(scratch), "format-patch", "--stdout", "--no-renames",
                                     f"--base={base}", f"{base}..{head}"], capture_output=True,
                                    check=True, env={**os.environ, **IDENT}).stdout)
    stat = git(scratch, "diff", "--no-renames", "--numstat", base, tip, "--", *paths)
    added = sum(int(a) for a, _, _ in (l.split("\t") for l in stat.splitlines()) if a.isdigit())
    removed = sum(int(r) for _, r, _ in (l.split("\t") for l in stat.splitlines()) if r.isdigit())
    return mbox, [p for _, p in changes], {"added": added, "removed": removed}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pair", choices=["7.2-7.3", "6.12"])
    ap.add_argument("--old", help="REPO[:REV] of the older release")
    ap.add_argument("--new", help="REPO[:REV] of the newer release")
    ap.add_argument("--paths", nargs="*", default=PATHS)
    ap.add_argument("--json", help="write every finding here")
    args = ap.parse_args()
    if args.pair == "7.2-7.3":
        old_spec, new_spec = args.old or str(tree_path("7.2")), args.new or str(tree_path("7.3"))
    elif args.pair == "6.12":
        if not args.old:
            ap.error("--pair 6.12 needs --old: the older 6.12 release's repository")
        old_spec, new_spec = args.old, args.new or str(tree_path("6.12"))
    else:
        if not (args.old and args.new):
            ap.error("give --pair, or --old and --new")
        old_spec, new_spec = args.old, args.new
    old, new = side(old_spec), side(new_spec)
    name = lambda s: git(s[0], "log", "-1", "--format=%s", s[1]).strip()
    label = f"{name(old)} -> {name(new)}"
    with tempfile.TemporaryDirectory(prefix="mmreview-precision-") as tmp:
        t0 = time.monotonic()
        mbox, files, stats = build_series(Path(tmp) / "repo.git", old, new, args.paths, label)
        tree = open_tree(str(Path(tmp) / "repo.git"))
        series = load_series(str(mbox), tree)
        with apply_series(tree, series) as co:
            failed = [p for p in co.result.patches if p.state != "applied"]
            t1 = time.monotonic()
            res = run_rules(series, co)
            t_rules = time.monotonic() - t1
    print(f"{label}: {len(files)} files ({', '.join(args.paths)}), +{stats['added']} -{stats['removed']} "
          f"lines, {len(series.patches)} patches ({len(failed)} not applied); "
          f"series built and applied in {t1 - t0:.0f} s, rules in {t_rules:.1f} s")
    by = Counter((f.rule.split(":")[0] if f.rule.startswith("checkpatch") else f.rule, f.severity)
                 for f in res.findings)
    for (rule, sev), n in sorted(by.items()):
        print(f"  {rule:24} {sev:8} {n}")
    print(f"  not applied: {len(res.not_applied)}  notes: {len(res.notes)}")
    print("  seconds per rule: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(res.seconds.items())))
    for n in res.not_applied:
        print(f"    not applied [{n.rule}] {n.file}: {n.reason}")
    errors = [f for f in res.findings if f.severity == "error"]
    print(f"error-severity findings: {len(errors)}")
    for f in errors:
        print(f"  [{f.rule}] {f.file}:{f.line} {f.function or ''}(): {f.message}")
        for e in f.excerpt[:4]:
            print(f"      | {e}")
    if args.json:
        Path(args.json).write_text(json.dumps({"label": label, "files": files, **stats,
                                               **res.to_json()}, indent=1))


if __name__ == "__main__":
    main()
