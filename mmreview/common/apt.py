"""How mmreview runs apt: it waits for the dpkg lock another apt holds, tries again when a mirror
is caught mid-sync, and when it still fails says in one line which package and why.

A new cloud machine runs unattended-upgrades at boot, which holds the dpkg lock for a minute or
two; Debian's mirrors are updated in place, so for a few minutes an index can disagree with its
Release file ("File has unexpected size", "Hash Sum mismatch").  Both pass if one waits.  A
package apt does not know does not, and is not tried again.  scripts/bootstrap does the same in
shell (it runs before mmreview is installed).
"""

from __future__ import annotations

import re
import time
from typing import Callable

from mmreview.common.errors import InfraError

LOCK_TIMEOUT = 600          # seconds apt waits for the dpkg lock before it gives up
ATTEMPTS = 3
RETRY_DELAY = 10.0          # seconds before the second attempt, doubled for the next
# apt's own options, for apt-get and apt-cache alike: wait for the lock, retry each download.
OPTIONS = ("-o", f"DPkg::Lock::Timeout={LOCK_TIMEOUT}", "-o", "Acquire::Retries=3")

# What waiting can cure: a mirror mid-sync, the network, a lock held past the timeout.
_TRANSIENT = re.compile(
    r"Hash Sum mismatch|unexpected size|Mirror sync in progress|Failed to fetch|Some index files "
    r"failed|Unable to fetch some archives|Temporary failure|Could not (?:connect|resolve)|"
    r"Connection (?:failed|timed out|reset|refused)|Could not get lock|Unable to acquire the dpkg|"
    r"is not valid yet|Clearsigned file isn't valid|Bad header|Undetermined Error|"
    r"\b50[234]\b|Gateway|Service Unavailable", re.I)


def argv(tool: str, *args: str) -> list[str]:
    """`tool` (apt-get, apt-cache) with mmreview's lock and retry options, then `args`."""
    return [tool, *OPTIONS, *args]


def transient(output: str) -> bool:
    """Whether apt's output says something that trying again later can cure."""
    return bool(_TRANSIENT.search(output))


def reason(output: str) -> str:
    """Why apt failed, in one line: what failed to fetch, else its last error."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip() and not ln.startswith("$ ")]
    for ln in lines:
        if ln.startswith(("W: Failed to fetch", "E: Failed to fetch")):   # what failed, not the summary
            return ln[3:203]
    for ln in reversed(lines):
        if ln.startswith(("E:", "Err:")):
            return ln.removeprefix("E:").strip()[:200]
    for ln in reversed(lines):
        if re.search(r"error|failed|unable|not found|cannot", ln, re.I):
            return ln[:200]
    return lines[-1][:200] if lines else "no output"


def failed_package(output: str, packages: list[str]) -> str:
    """Which of `packages` apt's errors name (a .deb it could not fetch, a name it does not
    know), else all of them."""
    errors = "\n".join(ln for ln in output.splitlines()
                       if ln.startswith(("E:", "W:", "Err:")) or "Failed to fetch" in ln)
    named = [p for p in packages
             if re.search(rf"(?<![\w.+-]){re.escape(p.split(':')[0].split('=')[0])}(?![\w.+-])", errors)]
    return " ".join(named or packages)


def run(attempt: Callable[[], tuple[int, str]], what: str, packages: list[str],
        say: Callable[[str], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep) -> str:
    """Call `attempt` (which runs apt once: exit status, output) until it succeeds, up to ATTEMPTS
    times while its failure is transient; return its output.  InfraError naming the package
    and apt's reason otherwise."""
    delay = RETRY_DELAY
    for n in range(1, ATTEMPTS + 1):
        rc, out = attempt()
        if rc == 0:
            return out
        if n == ATTEMPTS or not transient(out):
            tries = f" (after {n} attempts)" if n > 1 else ""
            raise InfraError(failed_package(out, packages), f"{what} failed{tries}: {reason(out)}")
        say(f"{what}: {reason(out)}; trying again in {delay:.0f} s")
        sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")
