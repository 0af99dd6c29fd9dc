"""`mmreview check SERIES`: the whole review — intake, apply, rules, matrix — and its report."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from mmreview.cli.app import (SeriesArgument, BuildTimeoutOption, FailOnOption, LoreOption, NewestOption, NoSandboxOption,
                              TreeOption, app, fail_usage, lore_options, run_command, stderr, stdout)
from mmreview.common.outputs import check_output, write_output
from mmreview.render import FORMATS
from mmreview.review.model import Review, parse_fail_on
from mmreview.common.paths import reviews_dir
from mmreview.cli.worker import ClusterOption

FormatOption = typer.Option("terminal", "--format", "-f",
                            help=f"Report format: {', '.join(FORMATS)}.")
OutputOption = typer.Option(None, "--output", "-o", help="Write the report here instead of stdout.")
ShowOption = typer.Option([], "--show", metavar="info",
                          help="List the info findings too (terminal, markdown); reports count them.")
FromOption = typer.Option(None, "--from", help="From: (and Reported-by:) of the email reply "
                                               "(default: [email] in ~/.config/mmreview/config.toml).")


def show_info(show: list[str]) -> bool:
    """--show info (repeatable, or comma-separated): whether the report lists info findings."""
    wanted = {w.strip() for s in show for w in s.split(",") if w.strip()}
    if wanted - {"info"}:
        fail_usage(f"--show {','.join(sorted(wanted - {'info'}))}: only `info` can be shown")
    return "info" in wanted


def emit(review: Review, fmt: str, output: Optional[Path], sender: Optional[str] = None,
         show: list[str] = ()) -> None:
    """Render the review in `fmt` to `output` or stdout (coloured only on a terminal)."""
    if fmt not in FORMATS:
        fail_usage(f"--format {fmt}: unknown format (one of {', '.join(FORMATS)})")
    info = show_info(list(show))
    if fmt == "terminal" and output is None:
        from mmreview.render.terminal import print_review, report_console
        print_review(review, report_console(), show_info=info)
        return
    from mmreview.render import render
    if fmt == "email":
        from mmreview.render.email import DEFAULT_FROM, config_path, is_default_identity
        if is_default_identity(sender):
            print(f"mmreview: warning: the reply is from the default {DEFAULT_FROM}: give --from "
                  f"or set [email] from in {config_path()}", file=sys.stderr)
    text = render(review, fmt, sender=sender, show_info=info)
    if output is None:
        stdout.file.write(text)
        stdout.file.flush()
    else:
        write_output(output, text, "-o")


@app.command("check")
def check_cmd(
    series_arg: str = SeriesArgument,
    tree: Optional[str] = TreeOption,
    lore: Optional[str] = LoreOption,
    newest: bool = NewestOption,
    base: Optional[str] = typer.Option(None, "--base", help="Apply on this revision (default: the "
                                                            "series' base-commit: if the tree has it, else HEAD); "
                                                            "'from-tree': on the parent of the tree's own commit of "
                                                            "patch 1 (b4 prep --check)."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Targets, comma-separated (default: all; "
                                                            "a named target that is not available is exit 3)."),
    suite: Optional[str] = typer.Option(None, "--suite", help="Only this suite (radix-tree, vma)."),
    binary: Optional[str] = typer.Option(None, "--binary", help="Only these binaries, comma-separated."),
    profile: str = typer.Option("quick", "--profile", help="quick | full | rules (rules only, no matrix)."),
    fail_on: str = FailOnOption,
    fmt: str = FormatOption,
    output: Optional[Path] = OutputOption,
    json_out: Optional[Path] = typer.Option(
        None, "--json-out", help="Write the Review as JSON here, for `mmreview report` "
                                 "(default: a new file under ~/.cache/mmreview/reviews/)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Matrix cells in parallel."),
    ignore: list[str] = typer.Option([], "--ignore", help="Skip this rule id (repeatable)."),
    sender: Optional[str] = FromOption,
    show: list[str] = ShowOption,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    no_sandbox: bool = NoSandboxOption,
    build_timeout: Optional[float] = BuildTimeoutOption,
    cluster: Optional[str] = ClusterOption,
) -> None:
    """Review a series: apply it, run the rules and the matrix at base and tip, report.

    Exit 0 clean (or untested: no matrix cell could judge the series); 1 findings at or above
    --fail-on, a new or changed failure, a patch that did not apply, or untested with
    --fail-on ...,untested; 2 bad input or usage; 3 infrastructure (a requested target's toolchain missing, or
    a cell mmreview could not build for its own reasons: the review is incomplete; or no way to
    confine the series' code, bubblewrap, and no --no-sandbox)."""
    def body() -> int:
        from mmreview.matrix.executors.dask_client import resolve_address
        from mmreview.review.pipeline import PROFILES, CheckRequest, progress_display, run_check
        if profile not in PROFILES:
            fail_usage(f"--profile {profile}: one of {', '.join(PROFILES)}")
        try:
            severity, fail_untested = parse_fail_on(fail_on)
        except ValueError as exc:
            fail_usage(f"--fail-on {fail_on}: {exc}")
        if fmt not in FORMATS:
            fail_usage(f"--format {fmt}: unknown format (one of {', '.join(FORMATS)})")
        show_info(show)
        if output is not None:
            check_output(output, "-o")
        if json_out is not None:
            check_output(json_out, "--json-out", make_dirs=True)
        req = CheckRequest(source=series_arg, tree=tree, base=base, arch=arch, suite=suite,
                           binary=binary, profile=profile, fail_on=severity,
                           fail_on_untested=fail_untested, jobs=jobs,
                           ignore=tuple(ignore), no_sandbox=no_sandbox, build_timeout=build_timeout,
                           cluster=resolve_address(cluster), lore=lore_options(lore, newest))
        with progress_display(stderr, quiet=quiet) as progress:
            review = run_check(req, progress)
        saved = json_out or _review_path()
        write_output(saved, review.dumps(), "--json-out" if json_out else None, make_dirs=True)
        if not quiet:
            print(f"mmreview: review saved to {saved} (`mmreview report {saved} --format F`)",
                  file=sys.stderr)
        emit(review, fmt, output, sender, show)
        return review.exit_code
    raise typer.Exit(run_command(body))


def _review_path() -> Path:
    """Where a review is kept when --json-out names no file: every check can be re-rendered."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return reviews_dir() / f"{stamp}-{os.getpid()}.json"
