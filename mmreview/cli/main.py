"""Entry point: import every command module so each registers on the app, and make sure that
whatever goes wrong ends as one line on stderr and a documented exit code.

Typer would print usage errors as a five-line box and let anything unforeseen out as a
traceback; a CI bot reading stderr, or a user, wants `mmreview: error: ...` and an exit code.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

from mmreview import cli as commands
from mmreview.cli.app import app, arrange, internal_error, one_line
from mmreview.common.errors import EXIT_BAD_INPUT


def _load_commands() -> None:
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{mod.name}")


def _usage_error(exc) -> int:
    from typer._click.exceptions import NoArgsIsHelpError
    if isinstance(exc, NoArgsIsHelpError):
        # `mmreview` or `mmreview tree` alone: the help is the answer, and typer has printed it
        # (asking the context for it again would print it a second time).
        return EXIT_BAD_INPUT
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path.partition(" ")[2] if ctx is not None else ""
    help_cmd = ctx.command_path if ctx is not None else "mmreview"
    msg = exc.format_message().rstrip(".")
    msg = msg[:1].lower() + msg[1:]
    print(one_line(f"mmreview: error: {where + ': ' if where else ''}{msg} "
                   f"(see `{help_cmd} --help`)"), file=sys.stderr)
    return exc.exit_code


def main() -> None:
    from typer import Abort
    from typer._click.exceptions import ClickException   # typer vendors click (0.29)
    _load_commands()
    # Started with fd 1 or 2 closed (`>&-`), Python sets sys.stdout to None and every write
    # would be an AttributeError: the output goes nowhere instead, as a shell user meant.
    # (A closed stdin is left as it is: reading it is an error intake names.)
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))
    try:
        import typer.main
        command = typer.main.get_command(app)
        arrange(command)
        # Not standalone: typer hands usage errors and exits back to us instead of printing them.
        code = command(standalone_mode=False)
    except ClickException as exc:
        code = _usage_error(exc)
    except (Abort, KeyboardInterrupt):
        print("mmreview: interrupted", file=sys.stderr)
        code = 130
    except Exception as exc:   # noqa: BLE001 -- the last resort: a bug, said in one line
        code = internal_error(exc)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
