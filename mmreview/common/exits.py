"""How every entry point ends: an error is one line on stderr and a documented exit code, never
a traceback.  The typer commands (cli/app.run_command), the pre-push hook and the bot's review
process (neither goes through typer, to start fast) share it.

The I/O faults met on the way (a full disk, an unusable cache directory, git missing or failing)
are errors too: `oserror.as_error` says which they are.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Callable, TypeVar

from mmreview.common.errors import EXIT_INFRA, MmreviewError
from mmreview.common.oserror import as_error, git_failed, timed_out
from mmreview.common.textsafe import one_line

T = TypeVar("T")
EXIT_INTERRUPTED = 130


def error_line(exc: MmreviewError) -> None:
    # Messages carry subjects and file names from the series: one line, nothing raw.
    print(one_line(f"mmreview: error: {exc}"), file=sys.stderr)


def guarded(fn: Callable[[], T], interrupted: str = "interrupted") -> tuple[T | None, int | None]:
    """(fn()'s result, None), or (None, the exit code) once the error's one line is on stderr.
    `interrupted` is what a KeyboardInterrupt (Ctrl-C, or a SIGTERM made one) is called."""
    try:
        result = fn()
    except MmreviewError as exc:
        error_line(exc)
        return None, exc.exit_code
    except KeyboardInterrupt:
        print(f"mmreview: {interrupted}", file=sys.stderr)
        return None, EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return None, 0
    except subprocess.CalledProcessError as exc:
        err = git_failed(exc)
        error_line(err)
        return None, err.exit_code
    except subprocess.TimeoutExpired as exc:
        err = timed_out(exc)
        error_line(err)
        return None, err.exit_code
    except OSError as exc:
        _settle_stdout()
        err = as_error(exc, unnamed="output")    # no file named: a print to stdout, mostly
        error_line(err)
        return None, err.exit_code
    # A full disk under `> report` shows when the report is flushed: here, not as an
    # "Exception ignored" at interpreter exit.
    if not _settle_stdout(lambda exc: error_line(as_error(exc, unnamed="stdout"))):
        return None, EXIT_INFRA
    return result, None


def _settle_stdout(report: Callable[[OSError], None] | None = None) -> bool:
    """Flush stdout; False if it cannot be written.  Then it is pointed at /dev/null: what it
    still buffers would otherwise fail again at exit, with a message of its own."""
    if sys.stdout is None:      # started with fd 1 closed: print() writes nowhere, quietly
        return True
    try:
        sys.stdout.flush()
        return True
    except BrokenPipeError:
        _silence_stdout()
        return True            # the reader left (`| head`): not an error
    except (OSError, ValueError) as exc:
        _silence_stdout()
        if report is not None and isinstance(exc, OSError):
            report(exc)
        return False


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null, so the flush at interpreter exit cannot fail a second time and
    print its own 'Exception ignored' message after our one line."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


