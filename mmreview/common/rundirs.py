"""Per-run scratch directories under the cache (apply work trees, matrix builds).

Each is named `<pid>-<random>` after the process that owns it, so the name
alone tells a later run whether the owner is gone (killed with SIGKILL, a
machine crash) and the directory is stale, with nothing to write first.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Callable


def new_run_dir(root: Path) -> Path:
    """A fresh, not yet created, directory name under `root` owned by this process."""
    root.mkdir(parents=True, exist_ok=True)
    return root / f"{os.getpid()}-{secrets.token_hex(4)}"


def _owner_alive(d: Path) -> bool:
    try:
        pid = int(d.name.split("-", 1)[0])
    except ValueError:
        return True          # not named by us: leave it alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(root: Path, keep: Callable[[Path], bool] = lambda d: False) -> list[Path]:
    """Remove the run directories under `root` whose owner is gone, except those `keep` wants."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for d in root.iterdir():
        if _owner_alive(d) or keep(d):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed
