"""Writing the files a user names (-o, --json-out) and the reviews kept in the cache.

Checked before a review starts, so a typo in `-o` does not cost a ten-minute matrix run; written
to a temporary file beside the target and renamed over it, so a full disk or a kill leaves the
old file (or none), never a truncated review that `mmreview report` would then reject.
A target that exists and is not a regular file (/dev/stdout, /dev/null, a FIFO) is written
in place: renaming over /dev/null would replace the device.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from mmreview.common.errors import BadInput, InfraError, MmreviewError
from mmreview.common.oserror import as_error

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def check_output(path: Path, option: str, make_dirs: bool = False) -> None:
    """BadInput (exit 2) if `path`, given with `option`, can clearly not be written
    (`make_dirs`: its missing directories will be created)."""
    subject = f"{option} {path}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise BadInput(subject, f"cannot use it: {exc.strerror}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise BadInput(subject, "is a directory; name a file")
    if st is not None and not stat.S_ISREG(st.st_mode):
        if not os.access(path, os.W_OK):
            raise BadInput(subject, "not writable")
        return
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        if not make_dirs:
            raise BadInput(subject, f"no such directory: {parent}")
        return    # made on write; an error then names what stood in the way
    if not parent.is_dir():
        raise BadInput(subject, f"{parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadInput(subject, f"cannot create files in {parent}")


def write_output(path: Path, text: str, option: str | None = None, make_dirs: bool = False) -> None:
    """Write `text` to `path` whole or not at all.  `option` names what the user gave
    (errors about it are exit 2); None means mmreview chose the path (errors are exit 3)."""
    subject = f"{option} {path}" if option else str(path)
    data = text.encode("utf-8")
    try:
        if path.exists() and not path.is_file() and not path.is_dir():
            with open(path, "wb") as fh:     # a device or a FIFO: in place
                fh.write(data)
            return
        if make_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
        _replace(path, data)
    except MmreviewError:
        raise
    except OSError as exc:
        raise _error(exc, subject, option) from None


def _replace(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())    # ENOSPC on a delayed allocation shows here, not after rename
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _error(exc: OSError, subject: str, option: str | None) -> MmreviewError:
    if exc.errno in _FULL:
        return InfraError(subject, f"cannot write: {exc.strerror} (disk full?); nothing was written")
    if option is None:
        return as_error(exc)
    if exc.errno == errno.EISDIR:
        return BadInput(subject, "is a directory; name a file")
    return BadInput(subject, f"cannot write: {exc.strerror}")
