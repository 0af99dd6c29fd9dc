"""`mmreview b4-check --profile rules` per patch, as b4 review runs it; and a thread fetched from a
public-inbox by Message-ID, first time (b4) and again (the cache).

    python benchmarks/b4check.py [--rounds 3]

A local public-inbox-httpd (tests/publicinbox.py, Debian's public-inbox) holds clean-3,
rules-xa-zero-marker-pos and thread-v2.  Per patch: each patch of the first two, one message on
stdin, run as a subprocess the way b4 runs it (start-up included; patch k > 1 is reviewed on top
of 1..k-1 from its thread, fetched on first use); the median and the slowest wall time per patch,
first pass and again.  Fetch: `mmreview series <msgid>` with a cold cache and with a warm one.  Prints figures; the
goal (issue 19) is "fast enough for per-patch use": seconds, not minutes.
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
sys.path.insert(0, str(REPO / "tests"))

from publicinbox import PublicInbox, _split, own_lore_cache    # noqa: E402

MMREVIEW = str(Path(sys.executable).with_name("mmreview"))


def timed(cmd: list[str], data: bytes | None = None, env: dict | None = None) -> float:
    t0 = time.monotonic()
    subprocess.run(cmd, input=data, capture_output=True, check=False, env={**os.environ, **(env or {})})
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, PublicInbox(Path(d) / "pi") as inbox:
        patches = []
        for name in ("clean-3.mbox", "rules-xa-zero-marker-pos.mbox"):
            inbox.deliver(REPO / "series" / name)
            patches += _split(REPO / "series" / name)[1:]
        # As b4 review runs it: one patch on stdin; patch k > 1 fetches its thread once (cached).
        cmd = [MMREVIEW, "b4-check", "--profile", "rules", "--lore", inbox.url]
        env = own_lore_cache(Path(d) / "b4check-cache")     # not the machine's: own_lore_cache says why
        first = [timed(cmd, raw, env) for raw in patches]
        again = [timed(cmd, raw, env) for _ in range(args.rounds) for raw in patches]
        start = statistics.median(timed([MMREVIEW, "--help"]) for _ in range(args.rounds))
        print(f"b4-check --profile rules, per patch ({len(patches)} patches): first pass "
              f"median {statistics.median(first):.1f} s, slowest {max(first):.1f} s; then "
              f"(x{args.rounds}) median {statistics.median(again):.1f} s, slowest {max(again):.1f} s "
              f"(mmreview start-up alone: {start:.1f} s)")

        inbox.deliver(REPO / "series" / "thread-v2.mbox")
        cache = own_lore_cache(Path(d) / "cache")            # a cold lore cache of its own
        cmd = [MMREVIEW, "series", "--lore", inbox.url, "cover.1748851201.git.ada@example.org"]
        cold = timed(cmd, env=cache)
        warm = statistics.median(timed(cmd, env=cache) for _ in range(args.rounds))
        print(f"series <msgid> from a local public-inbox: first {cold:.1f} s (b4 fetch), "
              f"again {warm:.1f} s (cached)")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
