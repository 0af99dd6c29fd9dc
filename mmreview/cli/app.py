"""The typer application object and the one wrapper every command runs under.

Commands live in `mmreview/cli/*.py`, each registering itself on `app`;
they only parse options, call the engine, and render.  `run_command` turns an
`MmreviewError` into one line on stderr and its exit code, never a traceback (common/exits.py);
so are the I/O faults a command meets on the way (a full disk, an unusable cache
directory, git missing or failing): `oserror.as_error` says which they are.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Callable, TypeVar

import typer
from rich.console import Console

from mmreview.common.errors import EXIT_BAD_INPUT, EXIT_INFRA
from mmreview.common.exits import guarded
from mmreview.common.textsafe import one_line
from mmreview.kernel import table as kernels

app = typer.Typer(
    name="mmreview",
    help="Review Linux mm / maple-tree patch series: take them in, apply them in isolation, "
         "build and run the userland suites across architectures, check review rules, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# `mmreview --help` in the order a user needs the commands: the review, the stages it is made
# of (each on its own), then setting a machine up and clustering machines, then the review bot.
COMMAND_PANELS = {
    "Review": ("check", "b4-check"),
    "Stages": ("series", "apply", "rules", "test", "report"),
    "Set-up and cluster": ("targets", "setup", "tree", "hook", "worker"),
    "Service": ("bot",),
}


def arrange(group) -> None:
    """Order the click group's commands by COMMAND_PANELS, each under its panel (a command not
    named there comes last), and make every help text prose: the docstrings are wrapped at the
    source's width, and rich would keep those line breaks mid-sentence."""
    order = [name for names in COMMAND_PANELS.values() for name in names]
    panel = {name: title for title, names in COMMAND_PANELS.items() for name in names}
    group.commands = dict(sorted(group.commands.items(),
                                 key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    for name, cmd in group.commands.items():
        if name in panel:
            cmd.rich_help_panel = panel[name]
    _reflow(group)


def _reflow(cmd) -> None:
    if cmd.help:
        cmd.help = "\n\n".join(" ".join(par.split()) for par in inspect.cleandoc(cmd.help).split("\n\n"))
    for sub in getattr(cmd, "commands", {}).values():
        _reflow(sub)


# Reports go to stdout; progress and errors to stderr, so `--json > f` stays clean.


class OutConsole(Console):
    """rich's Console, but a reader that goes away (`| head`) is a BrokenPipeError for
    run_command to handle like every other, not rich's own SystemExit(1)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


# No emoji: a subject saying ":bug:" means the five characters, not a picture.
stdout = OutConsole(highlight=False, soft_wrap=True, emoji=False)
stderr = OutConsole(stderr=True, highlight=False, emoji=False)

T = TypeVar("T")

SERIES_HELP = "mbox, directory of .patch/.eml, maildir, '-' for stdin, A..B, or a Message-ID / lore link."
SeriesArgument = typer.Argument(..., metavar="SERIES", help=SERIES_HELP)

TreeOption = typer.Option(None, "--tree", help="Kernel git tree: a path, or a provisioned kernel: "
                                              f"{kernels.known_text()} (`mmreview tree list`); default: "
                                              "the kernel checkout you are in, else the provisioned "
                                              "default (`mmreview tree path`).")

# One exit-code contract (README): check, rules, report, the hook and every format judge findings
# with the same --fail-on, default error.
FailOnOption = typer.Option("error", "--fail-on", help="Lowest finding severity that fails the "
                                                       "review (exit 1): error, warning, info, or none; "
                                                       "add ',untested' to fail a review the matrix "
                                                       "could not judge.")

NoSandboxOption = typer.Option(False, "--no-sandbox", help="Build and run the series' code unconfined "
                                                          "(as you, with network): only for code you trust.")
LoreOption = typer.Option(None, "--lore", metavar="URL",
                          help="The public-inbox a Message-ID is fetched from (default: [lore] url in "
                               "~/.config/mmreview/config.toml, else b4.midmask, else "
                               "https://lore.kernel.org/all/).")
NewestOption = typer.Option(False, "--newest", help="With a Message-ID: also look on the inbox for a "
                                                     "newer revision of the series (as `b4 am -c`).")


def lore_options(url: str | None, newest: bool):
    from mmreview.intake.lore import LoreOptions
    return LoreOptions(url=url, newest=newest)


BuildTimeoutOption = typer.Option(None, "--build-timeout", min=1,
                                  help="Seconds one suite's build may take (default 900).")


def run_command(fn: Callable[[], T]) -> T:
    """Run a command body; user errors and I/O faults become one line and an exit code
    (common/exits.py, which the entry points outside typer share)."""
    result, code = guarded(fn)
    if code is not None:
        raise typer.Exit(code)
    return result


def internal_error(exc: BaseException) -> int:
    """A bug: one line naming it, the traceback kept in a file for the report (MMREVIEW_DEBUG=1
    shows it instead)."""
    if os.environ.get("MMREVIEW_DEBUG"):
        raise exc
    import tempfile
    import traceback
    where = ""
    try:
        fd, path = tempfile.mkstemp(prefix="mmreview-crash-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            traceback.print_exception(exc, file=fh)
        where = f" (traceback in {path}; please report it)"
    except OSError:
        pass
    print(one_line(f"mmreview: internal error: {type(exc).__name__}: {exc}{where}"), file=sys.stderr)
    return EXIT_INFRA


def fail_usage(message: str) -> None:
    print(one_line(f"mmreview: error: {message}"), file=sys.stderr)
    raise typer.Exit(EXIT_BAD_INPUT)
