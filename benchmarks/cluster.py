#!/usr/bin/env python3
"""Benchmark: the quick matrix on a local Dask cluster of two workers vs local mode, same cores.

1. `mmreview test SERIES --profile quick` on every available target, locally, with an empty
   result cache and compiler cache (a fresh XDG_CACHE_HOME; the tree is passed with --tree).
2. The same with `--cluster`: a `dask scheduler` and two `mmreview worker`s on this machine,
   one thread each (so the cluster has this machine's cores, as local mode's --jobs does), each
   with its own fresh XDG_CACHE_HOME (two "machines": their own exports and ccache), and the
   client with a fresh one too.  Starting the cluster is not timed (it is deployment); connecting,
   sending the exports, the tasks and the results are.

Prints both wall times, CPU seconds, and cluster/local (target <= 1.10: on the same cores the
cluster cannot be faster; the ratio is the transport's cost), and checks that both runs gave
the same cells and verdicts.

    python benchmarks/cluster.py [--kernel 6.12] [--series series/matrix-break-xarray.mbox]
                                 [--arch ...] [--order local,cluster]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmreview.matrix.targets import cpu_count  # noqa: E402
from mmreview.kernel.trees import cache_dir, open_tree  # noqa: E402

BIN = Path(sys.executable).parent
MMREVIEW = str(BIN / "mmreview")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def fresh_cache(root: Path) -> Path:
    """An empty cache, but with the riscv64 liburcu mmreview already built (a one-off set-up)."""
    (root / "mmreview").mkdir(parents=True)
    if (cache_dir() / "toolchains").is_dir():
        (root / "mmreview" / "toolchains").symlink_to(cache_dir() / "toolchains")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(tmp: Path, workers: int) -> tuple[str, list[subprocess.Popen]]:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(BIN / "python"), "-m", "distributed.cli.dask_scheduler",
                               "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=open(tmp / "scheduler.log", "wb"))]
    for i in range(workers):
        procs.append(subprocess.Popen(
            [MMREVIEW, "worker", address, "--nthreads", "1", "--name", f"w{i}"],
            env={**os.environ, "XDG_CACHE_HOME": str(fresh_cache(tmp / f"w{i}"))},
            stdout=subprocess.DEVNULL, stderr=open(tmp / f"w{i}.log", "wb")))
    from distributed import Client
    deadline = time.monotonic() + 120
    while True:
        try:
            with Client(address, timeout=5, set_as_default=False) as c:
                c.wait_for_workers(workers, timeout=120)
                return address, procs
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def tree_cpu(procs: list[subprocess.Popen]) -> float:
    """CPU seconds of the cluster's processes and everything they ran: each live process's own
    time and that of the children it has waited for (builds and tests end before this is read).
    Read before stopping them: a worker torn down by its nanny is not waited for in a way that
    reaches our RUSAGE_CHILDREN."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            stats[int(d.name)] = f
            children.setdefault(int(f[1]), []).append(int(d.name))
    total, todo = 0.0, [p.pid for p in procs]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += sum(int(x) for x in stats[pid][11:15]) / tick   # utime stime cutime cstime
        todo += children.get(pid, [])
    return total


def stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run(cmd: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, env={**os.environ, **env})
    return time.monotonic() - t0, proc


def cells(proc: subprocess.CompletedProcess) -> list[tuple]:
    return sorted((c["target"], c["binary"], c["base"], c["tip"], c["verdict"])
                  for c in json.loads(proc.stdout or b"[]"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", default="6.12")
    ap.add_argument("--series", default=str(REPO / "series/matrix-break-xarray.mbox"))
    ap.add_argument("--arch", default=None)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--order", default="local,cluster", help="which runs first (the machine's load "
                                                             "may change between them)")
    args = ap.parse_args()
    cores = cpu_count()
    tree = str(open_tree(args.kernel).path)
    common = ["test", args.series, "--tree", tree, "--profile", args.profile, "--quiet", "--json"]
    if args.arch:
        common += ["--arch", args.arch]
    print(f"kernel {args.kernel} ({tree}), {cores} cores, series {Path(args.series).name}")
    res: dict[str, tuple[float, float, subprocess.CompletedProcess]] = {}
    with tempfile.TemporaryDirectory(prefix="mmreview-bench-cluster-") as tmp_s:
        tmp = Path(tmp_s)
        for mode in args.order.split(","):
            if mode == "local":
                c0 = children_cpu()
                wall, proc = run([MMREVIEW, *common, "--jobs", str(cores)],
                                 {"XDG_CACHE_HOME": str(fresh_cache(tmp / "local"))})
                res[mode] = (wall, children_cpu() - c0, proc)
            else:
                (tmp / "cluster").mkdir()
                address, procs = start_cluster(tmp / "cluster", args.workers)
                try:
                    c0, t0 = children_cpu(), tree_cpu(procs)
                    wall, proc = run([MMREVIEW, *common, "--cluster", address],
                                     {"XDG_CACHE_HOME": str(fresh_cache(tmp / "client"))})
                    # The client's CPU, and the scheduler's and workers' during the review.
                    cpu = children_cpu() - c0 + tree_cpu(procs) - t0
                finally:
                    stop(procs)
                res[mode] = (wall, cpu, proc)
            wall, cpu, proc = res[mode]
            cs = cells(proc)
            (tmp.parent / f"mmreview-bench-cluster-{mode}.json").write_bytes(proc.stdout)
            print(f"{mode:8} {wall:7.1f} s wall, {cpu:7.1f} CPU s, exit {proc.returncode}, "
                  f"{len(cs)} cells, {sum(c[4] == 'new-failure' for c in cs)} new failures, "
                  f"{sum(c[4] == 'not-run' for c in cs)} not run", flush=True)
            if proc.returncode not in (0, 1):
                print(proc.stderr.decode(errors="replace")[-2000:])
    (wl, cl, pl), (wc, cc, pc) = res["local"], res["cluster"]
    same = cells(pl) == cells(pc)
    print(f"\nsame cells and verdicts: {'yes' if same else 'NO'}")
    print(f"cluster / local wall:  {wc / wl:5.2f}   (target <= 1.10)")
    print(f"cluster / local CPU s: {cc / cl:5.2f}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
