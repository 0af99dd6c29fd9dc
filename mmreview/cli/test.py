"""`mmreview test SERIES`: the review with the rules off: apply the series, build and run the
userland suites per arch, base vs tip (review/pipeline.py's run_check, as `check` runs it)."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from mmreview.cli.app import (SeriesArgument, BuildTimeoutOption, LoreOption, NewestOption, NoSandboxOption, TreeOption, app,
                              lore_options, run_command, stderr)
from mmreview.cli.worker import ClusterOption
from mmreview.common.errors import EXIT_INFRA, EXIT_OK


@app.command("test")
def test(
    series: str = SeriesArgument,
    tree: Optional[str] = TreeOption,
    lore: Optional[str] = LoreOption,
    newest: bool = NewestOption,
    base: Optional[str] = typer.Option(None, "--base", help="Apply onto this commit (default: the "
                                       "series' base-commit:, else the tree's HEAD)."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Targets, comma-separated (default: all; "
                                       "see `mmreview targets`)."),
    suite: Optional[str] = typer.Option(None, "--suite", help="radix-tree, vma (comma-separated)."),
    binary: Optional[str] = typer.Option(None, "--binary", help="Only these binaries (comma-separated: "
                                         "xarray, multiorder, idr-test, maple, main, vma)."),
    profile: str = typer.Option("quick", "--profile", help="quick (xarray, multiorder, vma) or full."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Parallel builds/runs (default: cores)."),
    per_patch: bool = typer.Option(False, "--per-patch", help="Also build and run natively after every "
                                   "patch: name the first patch that breaks the build or a test."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Rebuild and rerun even what the result "
                                  "cache has."),
    as_json: bool = typer.Option(False, "--json", help="Print the cells as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    no_sandbox: bool = NoSandboxOption,
    build_timeout: Optional[float] = BuildTimeoutOption,
    cluster: Optional[str] = ClusterOption,
) -> None:
    """Build and run tools/testing/radix-tree and tools/testing/vma per architecture, base vs tip.

    Exit status: 0 no new failure; 1 a new failure, a patch that breaks bisection, or a patch that
    did not apply; 2 bad input; 3 a target named with --arch lacks its toolchain, mmreview could
    not build a suite the tree has (its recipe, not the tree: said on stderr), or there is no way
    to confine the series' code (bubblewrap) and no --no-sandbox."""
    def body() -> int:
        from mmreview.common.errors import BadInput
        from mmreview.matrix.executors.dask_client import resolve_address
        from mmreview.matrix.suites import check_profile
        from mmreview.review.pipeline import CheckRequest, progress_display, run_check

        address = resolve_address(cluster)
        if jobs is not None and jobs < 1:
            raise BadInput(f"--jobs {jobs}", "must be at least 1")
        check_profile(profile)
        req = CheckRequest(source=series, tree=tree, base=base, arch=arch, suite=suite, binary=binary,
                           profile=profile, jobs=jobs, no_sandbox=no_sandbox, build_timeout=build_timeout,
                           cluster=address, lore=lore_options(lore, newest), rules=False, per_patch=per_patch, use_cache=not no_cache,
                           refuse_unavailable=False)
        with progress_display(stderr, quiet=quiet) as progress:
            review = run_check(req, progress)
        if not review.applied_ok:
            print(f"mmreview: {review.summary()}", file=sys.stderr)
        if as_json:             # the notes the report would show
            print(json.dumps([c.to_json() for c in review.cells], indent=2))
            for note in review.notes:
                print(f"mmreview: note: {note}", file=sys.stderr)
        else:
            from mmreview.render.terminal import print_review, report_console
            print_review(review, report_console())
        code = review.exit_code
        for c in review.infra_cells()[:3]:
            print(f"mmreview: error: {c.target} {c.suite}/{c.binary}: {c.infra.reason}", file=sys.stderr)
        missing = [t for t in review.targets if not t.available]
        if code == EXIT_OK and arch and missing:
            for t in missing:
                print(f"mmreview: error: --arch {t.name}: {t.reason}", file=sys.stderr)
            return EXIT_INFRA
        return code
    raise typer.Exit(run_command(body))
