"""The review bot under a burst: N new series land in a local inbox (a maildir) at once.

    python benchmarks/bot.py [--count 50] [--profiles rules,quick]

For each profile (quick runs on x86_64): `mmreview bot` as a process, a real SMTP server on
127.0.0.1 (aiosmtpd) receiving the replies; prints series per hour, the time from arrival to
reply (median, p95), and the bot's own overhead (polling, state, mail: its own CPU time) as a
share of all the CPU it and its reviews used (the issue's goal: under 2%), and as a share of the
CPU the whole machine was busy meanwhile (the fuller total for the quick profile; on a quiet machine).
"""

from __future__ import annotations

import argparse
import mailbox
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from bot_helpers import LIST, SmtpRecorder, kernel_remote, synthetic_series  # noqa: E402
from conftest import MMREVIEW  # noqa: E402

from mmreview.kernel.trees import default_tree_path  # noqa: E402


def _cpu(pid: int) -> tuple[float, float]:
    """(own, children's) CPU seconds of a live process."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(f[11]) + int(f[12])) / tick, (int(f[13]) + int(f[14])) / tick


def _busy() -> float:
    """CPU seconds the whole machine spent busy (not idle, not waiting for I/O) since boot: the
    quick profile's tests run in bubblewrap's pid namespace, whose CPU does not all come back
    to the bot's rusage, so the machine's own count is the fuller total on a quiet machine."""
    f = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(x) for x in f]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def run(profile: str, count: int, kernel: Path, d: Path, series: list[list[bytes]]) -> None:
    smtp = SmtpRecorder().start()
    remote, mine = kernel_remote(kernel, d)
    md = mailbox.Maildir(str(d / "inbox"), create=True)
    arch = 'arch = "x86_64"\n' if profile != "rules" else ""
    cfg = d / "bot.toml"
    cfg.write_text(f"""[bot]
state = "state/bot.sqlite"
from = "mmreview bot <mmreview-bot@example.org>"
profile = "{profile}"
{arch}in_flight = 2
poll = 5
[tree]
path = "{mine}"
remote = "{remote}"
fetch = 3600
[smtp]
host = "127.0.0.1"
port = {smtp.port}
[[inbox]]
name = "local"
maildir = "{d / 'inbox'}"
[[policy.lists]]
match = ["{LIST}"]
reply = "author+list"
rate = 1000
""")
    t0, busy0 = time.time(), _busy()
    for s in series[:count]:
        for raw in s:
            md.add(raw)
    bot = subprocess.Popen([MMREVIEW, "bot", "--config", str(cfg)], cwd=d,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    arrived = {}
    try:
        while len(arrived) < count:
            if bot.poll() is not None:
                raise SystemExit(f"the bot exited: {bot.stderr.read().decode()[-2000:]}")
            for m in list(smtp.mails):
                arrived.setdefault(m.msg["Message-ID"], time.time())
            time.sleep(0.2)
        own, children = _cpu(bot.pid)
        busy = _busy() - busy0
    finally:
        bot.terminate()
        bot.wait(timeout=120)
        smtp.stop()
    wall = max(arrived.values()) - t0
    lat = sorted(t - t0 for t in arrived.values())
    p95 = lat[min(len(lat) - 1, int(round(0.95 * len(lat))) - 1)]
    print(f"profile {profile}{' (x86_64)' if arch else ''}: {count} series in {wall:.0f} s = "
          f"{count / wall * 3600:.0f} series/hour; arrival to reply median {statistics.median(lat):.0f} s, "
          f"p95 {p95:.0f} s; bot overhead {own:.1f} s CPU of {own + children:.1f} s "
          f"({100 * own / (own + children):.1f}%); of the machine's {busy:.1f} s busy CPU in that "
          f"time: {100 * own / busy:.1f}%")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--profiles", default="rules,quick")
    a = ap.parse_args()
    kernel = default_tree_path()
    with tempfile.TemporaryDirectory() as top:
        series = synthetic_series(kernel, Path(top), a.count)
        for profile in a.profiles.split(","):
            d = Path(top) / profile
            d.mkdir()
            run(profile, a.count, kernel, d, series)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
