"""`mmreview b4-check`: mmreview as a check command of `b4 review` (docs/b4.md).

b4 runs the command once per patch (`review-perpatch-check-cmd`) and once per series
(`review-series-check-cmd`, given the cover letter, or patch 1 when there is none), with that one
message on stdin, in the top of the user's kernel work tree, and reads a JSON list of results
from stdout (b4 0.16.0: b4/review/checks.py, _run_external_cmd(); render/b4check.py says the
format).  Per patch: the rules (checkpatch among them) on that patch alone, applied on its
base-commit: or the tree's HEAD.  Per series (--series, or a cover letter on stdin): the thread
is fetched by its Message-ID (intake/lore.py, cached) and reviewed whole, matrix included unless
--profile rules.
"""

from __future__ import annotations

import email.parser
import email.policy
from typing import Optional

import typer

from mmreview.cli.app import LoreOption, TreeOption, app, fail_usage, lore_options, run_command, stdout
from mmreview.common.errors import EXIT_BAD_INPUT, EXIT_OK, MmreviewError
from mmreview.common.textsafe import one_line


@app.command("b4-check")
def b4_check_cmd(
    tree: Optional[str] = TreeOption,
    series_mode: bool = typer.Option(False, "--series", help="Review the whole series the message "
                                                             "belongs to (review-series-check-cmd); "
                                                             "implied by a cover letter on stdin."),
    profile: str = typer.Option("rules", "--profile", help="rules (per patch: seconds) or quick "
                                                           "(the native build and run too)."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Matrix targets with --profile quick "
                                                            "(default: all available)."),
    fail_on: str = typer.Option("error", "--fail-on", help="Lowest finding severity that is a "
                                                           "'fail' (the rest are 'warn')."),
    lore: Optional[str] = LoreOption,
) -> None:
    """Read one patch (or a cover letter) as an email on stdin, print b4's check results as JSON.

    Exit 0 when the results were printed (b4 reads them whatever they say); 2 when stdin is not
    a message, 3 when the review could not run (then a 'warn' result says why)."""
    def body() -> int:
        from mmreview.intake.inputs import read_stdin
        from mmreview.render.b4check import error_result, render_b4
        from mmreview.review.model import FAIL_ON_CHOICES
        from mmreview.review.pipeline import CheckRequest, run_check
        if profile not in ("rules", "quick"):
            fail_usage(f"--profile {profile}: rules or quick")
        if fail_on not in FAIL_ON_CHOICES:
            fail_usage(f"--fail-on {fail_on}: one of {', '.join(FAIL_ON_CHOICES)}")
        try:
            data = read_stdin("-")
            subject, msgid, counter = _head(data)
            whole = series_mode or counter == 0
            if whole and not msgid:
                raise _bad("the message on stdin has no Message-ID to fetch its thread by")
            req = CheckRequest(source=f"id:{msgid}" if whole else "-", tree=tree, arch=arch,
                               profile=profile, fail_on=fail_on, lore=lore_options(lore, False),
                               lone_patch=not whole, data=None if whole else data)
            review = _with_earlier(req, msgid, counter) if not whole and counter > 1 else None
            if review is None:
                review = run_check(req)
        except MmreviewError as exc:
            # b4 shows stdout, not stderr: the reason goes in a result too.
            stdout.file.write(error_result(one_line(f"mmreview: {exc}"),
                                           infra=exc.exit_code != EXIT_BAD_INPUT))
            raise
        if review.series.kind == "lore" and not whole:
            stdout.file.write(render_b4(review, patch=counter))
        else:
            stdout.file.write(render_b4(review, later_patch=not whole and counter > 1))
        return EXIT_OK
    raise typer.Exit(run_command(body))


def _with_earlier(req, msgid: str, counter: int):
    """Patch k > 1 often needs the ones before it to apply: review patches 1..k of its thread
    (fetched, or from the cache) and let the renderer report patch k.  None when the thread
    cannot be had, or its version k is another message: then the patch is checked alone."""
    from dataclasses import replace
    from mmreview.review.pipeline import run_check
    if not msgid:
        return None
    try:
        review = run_check(replace(req, source=f"id:{msgid}", lone_patch=False, data=None, upto=counter))
    except MmreviewError:
        return None
    mine = [p for p in review.series.patches if p.number == counter]
    return review if mine and mine[0].message_id == msgid else None


def _head(data: bytes) -> tuple[str, str, int]:
    """Subject, Message-ID (no <>) and patch counter (-1: none) of the message on stdin."""
    import b4
    msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
    subject = " ".join(str(msg.get("Subject", "")).split())
    if not subject and not msg.get("Message-ID"):
        raise _bad("not an email (no Subject and no Message-ID)")
    msgid = str(msg.get("Message-ID", "")).strip().strip("<>").strip()
    ls = b4.LoreSubject(subject)
    return subject, msgid, -1 if ls.counters_inferred else ls.counter


def _bad(reason: str) -> MmreviewError:
    from mmreview.common.errors import BadInput
    return BadInput("stdin", reason)

