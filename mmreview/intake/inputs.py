"""Reading what the user names as input, with a size limit and without hanging.

A series is a few hundred KiB; a lore thread export a few MiB.  Without a limit, SERIES
/dev/zero reads until memory runs out; a named FIFO nobody writes to blocks forever.  So: a
regular file, stdin, or a pipe the shell hands over (`<(b4 am -o - ...)`, /dev/fd/N) is read up
to MAX_INPUT bytes (the error names the limit and how to raise it); devices, sockets and named
FIFOs are refused with a line that says what they are.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO

from mmreview.common.errors import BadInput

LIMIT_ENV = "MMREVIEW_MAX_INPUT_MB"
_DEFAULT_MB = 64


def max_input() -> int:
    try:
        mb = int(os.environ.get(LIMIT_ENV) or _DEFAULT_MB)
    except ValueError:
        raise BadInput(f"{LIMIT_ENV}={os.environ.get(LIMIT_ENV)}", "not a whole number of MiB") from None
    if mb < 1:
        raise BadInput(f"{LIMIT_ENV}={mb}", "must be at least 1")
    return mb << 20


def too_big(source: str) -> BadInput:
    return BadInput(source, f"larger than the input limit of {max_input() >> 20} MiB "
                            f"(set {LIMIT_ENV} to raise it)")


def read_limited(source: str, fh: BinaryIO) -> bytes:
    limit = max_input()
    try:
        data = fh.read(limit + 1)
    except OSError as exc:
        raise BadInput(source, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise too_big(source)
    return data


def read_stdin(source: str = "-") -> bytes:
    """All of stdin, bounded; BadInput if there is no stdin (started with fd 0 closed)."""
    buf = getattr(sys.stdin, "buffer", None)
    if buf is None:
        raise BadInput(source, "stdin is closed: pipe the series in, or name a file")
    return read_limited(source, buf)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISFIFO, "a named FIFO")):
        if test(mode):
            return name
    return "not a regular file"


def _is_pipe(path: Path) -> bool:
    # /dev/fd/63 from `<(...)` resolves to "pipe:[inode]": a stream with a writer alive.
    return "pipe:[" in os.path.realpath(path)


def read_path(source: str, path: Path) -> bytes:
    """The bytes of a file the user named, bounded; BadInput naming `source` if it is not one."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise BadInput(source, f"cannot read: {exc.strerror or exc}") from None
    if stat.S_ISREG(st.st_mode):
        if st.st_size > max_input():
            raise too_big(source)
    elif not (stat.S_ISFIFO(st.st_mode) and _is_pipe(path)):
        why = _kind(st.st_mode)
        hint = ": pipe it to `-` (stdin) instead" if stat.S_ISFIFO(st.st_mode) else ""
        raise BadInput(source, f"{why}, not a file{hint}")
    try:
        with open(path, "rb") as fh:
            return read_limited(source, fh)
    except OSError as exc:
        raise BadInput(source, f"cannot read: {exc.strerror or exc}") from None
