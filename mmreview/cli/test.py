"""`mmreview test SERIES`: apply the series, build and run the userland suites per arch, base vs tip."""

from __future__ import annotations

import json
import sys
import time
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mmreview.cli.app import (BuildTimeoutOption, LoreOption, NewestOption, NoSandboxOption, TreeOption, app,
                              lore_options, run_command, stderr, stdout)
from mmreview.common.errors import EXIT_FINDINGS, EXIT_INFRA, EXIT_OK
from mmreview.render import clean_log
from mmreview.matrix.results import V_CHANGED, V_FIXED, V_NEW, V_NOT_RUN, V_PRE
from mmreview.matrix import run as matrix_mod
from mmreview.matrix import targets as targets_mod
from mmreview.matrix.sandbox import BUILD_TIMEOUT
from mmreview.cli.worker import ClusterOption


def load_series(source: str, tree, lore=None):
    from mmreview.intake.read import load_series as load
    return load(source, tree, lore=lore)


class ProgressView:
    """Rich bar on a terminal (cells done / total, what runs now); plain lines otherwise."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.tty = stderr.is_terminal and not quiet
        self.total = 0
        self.done = 0
        self.running: dict[str, float] = {}
        self.prog: Progress | None = None
        self.task = None

    def __enter__(self) -> "ProgressView":
        if self.tty:
            self.prog = Progress(TextColumn("[bold]matrix[/]"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.description}"),
                                 console=stderr, transient=True)
            self.prog.start()
            self.task = self.prog.add_task("", total=None)
        return self

    def __exit__(self, *exc) -> None:
        if self.prog:
            self.prog.stop()

    def __call__(self, e: matrix_mod.Event) -> None:
        if e.kind == "plan":
            self.total = e.total
        elif e.kind == "start":
            self.running[e.label] = time.monotonic()
        elif e.kind in ("done", "built"):
            self.running.pop(e.label, None)
            if e.result is not None:
                self.done += 1
                if not self.tty and not self.quiet:
                    r = e.result
                    how = "cached" if r.cached else f"{r.duration:.1f}s"
                    print(f"mmreview: [{self.done}/{self.total}] {e.label}: {r.state} ({how})",
                          file=sys.stderr, flush=True)
        if self.prog is not None and self.task is not None:
            now = ", ".join(sorted(self.running)[:3]) + (" …" if len(self.running) > 3 else "")
            self.prog.update(self.task, total=self.total or None, completed=self.done,
                             description=f"running: {now}" if now else "")


_STYLE = {V_NEW: "bold red", V_CHANGED: "bold red", V_PRE: "yellow", V_FIXED: "green", V_NOT_RUN: "dim", "pass": "green"}


def render_text(m: matrix_mod.MatrixResult, apply_result) -> None:
    out = stdout
    tbl = Table(title=f"userland suites, profile {m.profile}: base {m.base_sha[:12]} vs tip {m.tip_sha[:12]}")
    for col in ("target", "suite", "binary", "base", "tip", "verdict"):
        tbl.add_column(col)
    for c in m.cells:
        v = c.verdict
        tbl.add_row(c.target, c.suite, c.binary, c.base.state if c.base else "-", c.tip.state,
                    f"[{_STYLE.get(v, '')}]{v}[/]")
    out.print(tbl)
    out.print(f"  series code: {m.sandbox.describe()}", markup=False)
    for t in m.targets:
        if t.available:
            out.print(f"  {t.name}: {t.summary}; sanitizers: {', '.join(t.sanitizers) or 'none'}")
        else:
            out.print(f"  {t.name}: [dim]not run[/]: {t.reason}"
                      + (f"; provide it with: {t.apt_command}" if t.apt_command else ""), markup=False)
    for c in m.cells:
        if c.verdict == V_PRE:          # the tree's own failure: one line, no log
            out.print(f"pre-existing: {c.target} {c.suite}/{c.binary}: {c.tip.state}: {c.tip.reason} "
                      "(same as base)", markup=False, style="yellow")
        elif c.verdict in (V_NEW, V_CHANGED, V_FIXED):
            r = c.tip if c.verdict != V_FIXED else c.base
            if c.verdict == V_CHANGED and c.base:
                out.print(f"\nat base: {c.base.state}: {c.base.reason}", markup=False)
            out.print(f"\n{c.verdict}: {c.target} {c.suite}/{c.binary}: "
                      f"{'base' if c.verdict == V_FIXED else 'tip'} {r.state}: {r.reason}",
                      markup=False, style="bold")
            for line in r.excerpt[:8]:     # the series' own output: no escapes reach the terminal
                out.print(f"    {clean_log(line)}", markup=False)
            if r.command:
                out.print(f"  reproduce: {r.command}", markup=False)
    for f in m.per_patch:
        out.print(f"\nper-patch: {f.describe()}: {f.reason}", markup=False, style="bold red")
        for line in f.excerpt[:6]:
            out.print(f"    {clean_log(line)}", markup=False)
    new = len(m.new_failures)
    out.print(f"\n{new} new failure(s), {sum(c.verdict == V_PRE for c in m.cells)} pre-existing, "
              f"{sum(c.verdict == V_FIXED for c in m.cells)} fixed, "
              f"{sum(c.verdict == V_NOT_RUN for c in m.cells)} not run; {m.duration:.0f}s with {m.jobs} jobs")


def _did_not_apply(apply_result) -> str:
    p = apply_result.failed
    return f"patch {p.number} ({p.subject}) did not apply" + (
        f": {', '.join(p.conflict_files)}" if p.conflict_files else "")


@app.command("test")
def test(
    series: str = typer.Argument(..., help="The series: mbox, directory, maildir, '-', a git range, or a Message-ID / lore link."),
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
        from mmreview.matrix.executors.dask_client import executor_for, resolve_address
        with executor_for(resolve_address(cluster)) as executor:    # None: run here
            return run(executor)

    def run(executor) -> int:
        from mmreview.apply.checkout import apply_series
        from mmreview.kernel.trees import open_tree

        t = open_tree(tree)
        targets = targets_mod.parse_arch_list(arch)
        if executor and arch:
            executor.require(targets)        # a named target no worker offers: exit 3 now
        if jobs is not None and jobs < 1:
            from mmreview.common.errors import BadInput
            raise BadInput(f"--jobs {jobs}", "must be at least 1")
        from mmreview.matrix import suites as suites_mod
        suites_mod.select(profile, suite, binary,        # bad names fail before any work
                          {x.name: suites_mod.tree_binaries(t.path, "HEAD", x) for x in suites_mod.SUITES})
        s = load_series(series, t, lore_options(lore, newest))
        box = matrix_mod.confinement(t.path, no_sandbox, executor)   # exit 3 before any work if none
        with apply_series(t, s, base=base) as co:
            if not co.result.ok:
                msg = _did_not_apply(co.result)
                if as_json:
                    print("[]")
                print(f"mmreview: {msg}", file=sys.stderr)
                return EXIT_FINDINGS
            with ProgressView(quiet) as view:
                m = matrix_mod.run_matrix(co, targets, profile=profile, suites=suite, binaries=binary,
                                          jobs=jobs, per_patch=per_patch, progress=view,
                                          use_cache=not no_cache, box=box,
                                          build_timeout=build_timeout or BUILD_TIMEOUT, executor=executor)
        for note in m.notes:
            print(f"mmreview: note: {note}", file=sys.stderr)
        if as_json:
            print(json.dumps([c.to_json() for c in m.cells], indent=2))
            for f in m.per_patch:
                print(f"mmreview: per-patch: {f.describe()}: {f.reason}", file=sys.stderr)
        else:
            render_text(m, co.result)
        if m.new_failures or m.per_patch:
            return EXIT_FINDINGS
        infra = [c for c in m.cells if c.infra]
        for c in infra[:3]:
            print(f"mmreview: error: {c.target} {c.suite}/{c.binary}: {c.infra.reason}", file=sys.stderr)
        if infra:
            return EXIT_INFRA
        missing = [i for i in m.targets if not i.available]
        if arch and missing:
            for i in missing:
                print(f"mmreview: error: --arch {i.name}: {i.reason}"
                      + (f" (install with: {i.apt_command})" if i.apt_command else ""), file=sys.stderr)
            return EXIT_INFRA
        return EXIT_OK
    code = run_command(body)
    raise typer.Exit(code)
