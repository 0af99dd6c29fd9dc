#!/usr/bin/env python3
"""Measure what the sandboxed builds and runs read: the evidence for sandbox.py's least view.

Runs `mmreview test SERIES --tree T --arch A --binary multiorder,vma` in this process, with every
sandboxed command (bwrap and all it starts) under `strace -f --seccomp-bpf -e trace=%file`, on
a fresh result and compiler cache (so every compile really runs), then sums the absolute paths
the traced processes named, by where they are:

    /usr/<dir>     (one line per top-level directory of /usr; /lib/<dir> likewise)
    /etc/<file>, /dev/<node>, /proc/<what>, /tmp, /home/mmreview, and the cell's own directories
    anything else  (full path)

with how many calls found it (ok) and how many did not (ENOENT, EACCES, EROFS...), and for each
target and tree whether the cells ran (a view that lacks something a build needs breaks it).

    .venv/bin/python benchmarks/sandbox_view.py [--kernel 6.1,6.12,7.3] [--arch x86_64,...]
                                                [--view least|full] [--keep DIR]

--view full measures the view the sandbox had before the least view (`--ro-bind / /`),
--view least (default) the one it has now: a path missing from the least view shows as failing
there and ok in the full one.  The series is one per tree that applies to it (SERIES).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SERIES = {"6.1": "kernel-6.1-tools-fallthrough.mbox", "6.12": "vma-fix.mbox",
          "7.3": "kernel-7.3-maple-doc.mbox"}
_PATH = re.compile(r'"(/[^"]*)"')
_RESULT = re.compile(r"\) += (-?\d+|0x[0-9a-f]+|\?)(?: (E[A-Z]+))?")


def where(path: str, cells: str) -> str:
    """The view entry a path falls under."""
    p = os.path.normpath(path)
    if p.startswith(cells):
        return "<the cell's directories>"
    parts = p.split("/")[1:]
    if parts[0] == "usr" and len(parts) > 1:
        return "/usr/" + parts[1]
    if parts[0] == "proc" and len(parts) > 1:
        return "/proc/" + ("<pid>" if parts[1].isdigit() or parts[1] in ("self", "thread-self")
                           else parts[1])
    if parts[0] in ("etc", "dev", "lib", "lib32", "lib64", "sys") and len(parts) > 1:
        return f"/{parts[0]}/{parts[1]}"
    if parts[0] == "tmp":
        return "/tmp"
    if parts[0] == "home":
        return "/" + "/".join(parts[:2])
    return p


def child(traces: Path, label: str, argv: list[str]) -> int:
    """One `mmreview test` with every sandboxed command under strace (this process, patched)."""
    from mmreview.matrix import sandbox
    plain = sandbox.Jail.command
    counter = itertools.count()

    def traced(self, cmd, cwd, env):
        out = traces / f"{label}-{next(counter)}.trace"
        return ["strace", "-f", "--seccomp-bpf", "-qq", "-e", "trace=%file", "-o", str(out),
                *plain(self, cmd, cwd, env)]
    sandbox.Jail.command = traced
    from mmreview.cli.main import main as cli
    sys.argv = ["mmreview", *argv]
    return cli()


def summarise(traces: Path, view: str, cells: str) -> None:
    """Every absolute path the traces name, by view entry: calls that found it and calls that failed."""
    found: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    seen_by: dict[str, set] = collections.defaultdict(set)
    for f in traces.glob(f"{view}-*.trace"):
        # bwrap's own set-up (/newroot, /oldroot) is not what the build reads
        arch = f.name.split("-")[2]
        for line in f.read_text(errors="replace").splitlines():
            res = _RESULT.findall(line)
            if not res or "resumed>" in line:
                continue
            err = res[-1][1]
            for p in _PATH.findall(line)[:1]:
                if p.startswith(("/newroot", "/oldroot")):
                    continue
                w = where(p, cells)
                found[w][err or "ok"] += 1
                seen_by[w].add(arch)
    print(f"\n{'path':44} {'ok':>8} {'failed':>8}  targets")
    for w in sorted(found):
        c = found[w]
        failed = sum(n for k, n in c.items() if k != "ok")
        targets = ",".join(sorted(seen_by[w])) if len(seen_by[w]) < 6 else "all"
        print(f"{w:44} {c['ok']:8} {failed:8}  {targets}"
              + ("  " + " ".join(f"{k}:{n}" for k, n in c.items() if k != "ok") if failed else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", default="6.1,6.12,7.3")
    ap.add_argument("--arch", default="x86_64,i386,arm64,s390x,ppc64le,riscv64")
    ap.add_argument("--binary", default="multiorder,vma")
    ap.add_argument("--view", choices=("least", "full"), default="least")
    ap.add_argument("--keep", help="keep the raw traces in this directory")
    ap.add_argument("--summarise", metavar="DIR", help="only summarise the traces kept in DIR (--keep)")
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(Path(args.child[0]), args.child[1], args.child[2:])

    if args.summarise:
        summarise(Path(args.summarise) / "traces", args.view, "/tmp/mmreview-view-")
        return 0
    real = Path(os.path.expanduser("~/.cache/mmreview"))
    with tempfile.TemporaryDirectory(prefix="mmreview-view-") as tmp:
        traces = Path(args.keep or tmp) / "traces"
        traces.mkdir(parents=True, exist_ok=True)
        cache = Path(tmp) / "cache" / "mmreview"
        cache.mkdir(parents=True)
        (cache / "toolchains").symlink_to(real / "toolchains")   # riscv64's liburcu, built once
        env = {**os.environ, "XDG_CACHE_HOME": str(cache.parent), "MMREVIEW_SANDBOX_VIEW": args.view}
        print(f"view: {args.view}")
        for kernel in args.kernel.split(","):
            tree = real / "trees" / f"linux-{kernel}.git"
            for arch in args.arch.split(","):
                label = f"{args.view}-{kernel}-{arch}"
                proc = subprocess.run([sys.executable, __file__, "--child", str(traces), label,
                                       "test", str(REPO / "series" / SERIES[kernel]), "--tree", str(tree),
                                       "--arch", arch, "--binary", args.binary, "--json", "-q"],
                                      capture_output=True, env=env)
                try:
                    cells = json.loads(proc.stdout)
                except ValueError:
                    cells = []
                states = ", ".join(f"{c['binary']} {c['base']}/{c['tip']}" for c in cells)
                err = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] if proc.returncode > 1 else []
                print(f"{kernel:5} {arch:8} exit {proc.returncode}  {states or 'no cells'} {' '.join(err)}",
                      flush=True)
        summarise(traces, args.view, tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
