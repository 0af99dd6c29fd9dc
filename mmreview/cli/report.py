"""`mmreview report REVIEW.json --format F`: render a saved review again, running nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mmreview.cli.app import app, run_command
from mmreview.common.errors import BadInput
from mmreview.intake.inputs import read_path, read_stdin
from mmreview.common.outputs import check_output
from mmreview.review.model import Review, parse_fail_on
from mmreview.cli.check import FormatOption, FromOption, OutputOption, ShowOption, emit, show_info


@app.command("report")
def report_cmd(
    review_file: str = typer.Argument(..., metavar="REVIEW.json",
                                      help="A review written by `mmreview check --json-out` "
                                           "(or --format json); '-' for stdin."),
    fmt: str = FormatOption,
    output: Optional[Path] = OutputOption,
    fail_on: Optional[str] = typer.Option(None, "--fail-on", help="Judge the findings again with "
                                                                  "this threshold (',untested' as "
                                                                  "in check)."),
    sender: Optional[str] = FromOption,
    show: list[str] = ShowOption,
) -> None:
    """Render a saved review in any format; exits with the review's exit code."""
    def body() -> int:
        show_info(show)
        if output is not None:
            check_output(output, "-o")
        if review_file == "-":
            text = read_stdin("-").decode("utf-8", "replace")
        else:
            path = Path(review_file)
            if not path.exists():
                raise BadInput(review_file, "no such file")
            try:
                text = read_path(review_file, path).decode("utf-8")
            except UnicodeDecodeError:
                raise BadInput(review_file, "not a JSON review (not UTF-8 text)") from None
        review = Review.loads(text, review_file)
        if fail_on is not None:
            try:
                review.fail_on, review.fail_on_untested = parse_fail_on(fail_on)
            except ValueError as exc:
                raise BadInput(f"--fail-on {fail_on}", str(exc)) from None
        emit(review, fmt, output, sender, show)
        return review.exit_code
    raise typer.Exit(run_command(body))
