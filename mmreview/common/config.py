"""The user's config file, ~/.config/mmreview/config.toml (or $XDG_CONFIG_HOME/mmreview/)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from mmreview.common.errors import BadInput


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "mmreview" / "config.toml"


def load_config() -> dict:
    """The whole file as a dict ({} when there is none); BadInput naming it if it is unreadable."""
    path = config_path()
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(str(path), f"unreadable config: {exc}") from None
