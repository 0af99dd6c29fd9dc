"""The typer application object and the one wrapper every command runs under.

Commands live in `mmreview/commands/*.py`, each registering itself on `app`;
they only parse options, call the engine, and render.  `run_command` turns an
`MmreviewError` into one line on stderr and its exit code, never a traceback.
"""

from __future__ import annotations

import sys
from typing import Callable, TypeVar

import typer
from rich.console import Console

from .errors import EXIT_BAD_INPUT, MmreviewError

app = typer.Typer(
    name="mmreview",
    help="Review Linux mm / maple-tree patch series: take them in, apply them in isolation, "
         "build and run the userland suites across architectures, check review rules, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Reports go to stdout; progress and errors to stderr, so `--json > f` stays clean.
stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False)

T = TypeVar("T")

TreeOption = typer.Option(None, "--tree", help="Kernel git tree: a path, or a provisioned kernel such as "
                                              "7.3 or 6.1 (`mmreview tree list`); default: the 6.12 "
                                              "tree, see `mmreview tree path`.")

NoSandboxOption = typer.Option(False, "--no-sandbox", help="Build and run the series' code unconfined "
                                                          "(as you, with network): only for code you trust.")
BuildTimeoutOption = typer.Option(None, "--build-timeout", min=1,
                                  help="Seconds one suite's build may take (default 900).")


def run_command(fn: Callable[[], T]) -> T:
    """Run a command body; user errors become one line and an exit code."""
    try:
        return fn()
    except MmreviewError as exc:
        print(f"mmreview: error: {exc}", file=sys.stderr)
        raise typer.Exit(exc.exit_code)
    except KeyboardInterrupt:
        print("mmreview: interrupted", file=sys.stderr)
        raise typer.Exit(130)
    except BrokenPipeError:
        raise typer.Exit(0)


def fail_usage(message: str) -> None:
    print(f"mmreview: error: {message}", file=sys.stderr)
    raise typer.Exit(EXIT_BAD_INPUT)
