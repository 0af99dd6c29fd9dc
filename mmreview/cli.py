"""Entry point: import every command module so each registers on the app."""

from __future__ import annotations

import importlib
import pkgutil

from . import commands
from .cliapp import app


def _load_commands() -> None:
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{mod.name}")


def main() -> None:
    _load_commands()
    app()


if __name__ == "__main__":
    main()
