"""I/O faults as the user should read them: which path, what went wrong, and whose problem it is.

An OSError that reaches a command names a file but not why it matters.  The disk filling up,
an unusable cache directory, a missing git are the machine's problems (exit 3); a path the user
named that cannot be written is checked where it is named (`outputs.py`, exit 2).
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

from mmreview.common.errors import InfraError, MmreviewError
from mmreview.common.paths import cache_dir

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def cache_root() -> Path | None:
    try:
        return cache_dir()
    except MmreviewError:
        return None


def _related(path: str, root: Path) -> bool:
    """`path` is `root`, in it, or one of the directories it would be made in."""
    a, b = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    return a == b or a in b.parents or b in a.parents


def _what_cache() -> str:
    if os.path.isabs(os.environ.get("XDG_CACHE_HOME", "")):
        return f"$XDG_CACHE_HOME ({os.environ['XDG_CACHE_HOME']})"
    return f"$HOME/.cache ($HOME is {os.environ.get('HOME', 'unset')})"


def as_error(exc: OSError, unnamed: str = "I/O") -> MmreviewError:
    """The one-line error an OSError met while running a command stands for; `unnamed` is
    what to call the file when the error names none (stdout, when writing it failed)."""
    name = exc.filename if isinstance(exc.filename, str) else None
    why = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in _FULL:
        return InfraError(name or unnamed, f"{why} (disk full?)")
    if isinstance(exc, FileNotFoundError) and name and os.sep not in name and not os.path.exists(name):
        # subprocess names the program it could not start.
        return InfraError(name, "not found on PATH (is it installed?)")
    root = cache_root()
    if name and root is not None and _related(name, root):
        return InfraError(name, f"{why}: the cache directory is not usable; it lives under "
                                f"{_what_cache()}: set XDG_CACHE_HOME to a writable directory")
    return InfraError(name or unnamed, why)


def _command(cmd) -> str:
    """`git -c k=v -C repo sub ...` as "git sub"; `/usr/bin/perl .../checkpatch.pl` as
    "perl checkpatch.pl": the tool and what it was asked to do."""
    cmd = [str(c) for c in (cmd if isinstance(cmd, (list, tuple)) else [cmd])]
    shown = [os.path.basename(c) for i, c in enumerate(cmd) if not c.startswith("-") and
             (i == 0 or cmd[i - 1] not in ("-C", "-c"))][:2]
    return " ".join(shown) or "a command"


def timed_out(exc: subprocess.TimeoutExpired) -> MmreviewError:
    return InfraError(_command(exc.cmd), f"did not finish in {exc.timeout:.0f} s and was stopped")


def git_failed(exc: subprocess.CalledProcessError) -> MmreviewError:
    """A git (or other tool) run that failed where it was expected to succeed."""
    err = exc.stderr or exc.output or b""
    if isinstance(err, bytes):
        err = err.decode("utf-8", "replace")
    last = next((ln.strip() for ln in reversed(err.splitlines()) if ln.strip()),
                f"exit status {exc.returncode}")
    return InfraError(_command(exc.cmd), f"failed: {last}")

