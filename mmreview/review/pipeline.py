"""The whole review: intake -> apply -> rules + matrix -> Review.

`run_check(request, progress)` is what `mmreview check`, `mmreview test` (the same with the
rules off) and the pre-push hook call; it returns a Review and never prints.  `progress_display()` is the live
display around it: a rich progress bar on a terminal, one plain line per stage
otherwise (CI logs), nothing with quiet=True.
"""

from __future__ import annotations

import re
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterator

from mmreview.common.errors import InfraError
from mmreview.matrix import suites
from mmreview.matrix import targets as tg
from mmreview.matrix.targets import TargetInfo
from mmreview.review.model import DEFAULT_FAIL_ON, PatchApply, Review, SeriesSummary, TreeInfo

Progress = Callable[[str, int, int], None]

PROFILES = ("quick", "full", "rules")

# --base from-tree: the series is already committed in the tree (b4 prep --check, a patch
# mailed from a branch); apply it on the parent of the tree's own commit of patch 1.
FROM_TREE = "from-tree"
_SEARCH_DEPTH = 500


@dataclass
class CheckRequest:
    source: str                          # SERIES: mbox, dir, maildir, "-", A..B, or a Message-ID
    tree: str | None = None
    base: str | None = None
    base_why: str | None = None          # where `base` came from, when not the user's --base
    arch: str | None = None              # "x86_64,arm64"; None: every target
    suite: str | None = None
    binary: str | None = None
    profile: str = "quick"               # quick | full | rules (rules only, no matrix)
    fail_on: str = DEFAULT_FAIL_ON
    fail_on_untested: bool = False       # --fail-on ...,untested
    jobs: int | None = None
    ignore: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)
    no_sandbox: bool = False             # run the series' code unconfined (the user said so)
    build_timeout: float | None = None   # seconds for one suite's build (default sandbox.BUILD_TIMEOUT)
    cluster: str | None = None           # a Dask scheduler's address: the matrix runs there
    lore: object = None                  # intake.lore.LoreOptions: where a Message-ID is fetched from
    lone_patch: bool = False             # "-" is one patch of a series, to be checked alone
    data: bytes | None = None            # "-" already read (b4-check reads it first)
    upto: int | None = None              # only patches 1..upto of the series (b4-check: patch k)
    rules: bool = True                   # False: the matrix alone (`mmreview test`)
    per_patch: bool = False              # also build and run natively after every patch
    use_cache: bool = True               # False: rebuild and rerun what the result cache has
    # A target named with --arch that cannot run: exit 3 before any work (check), or not-run
    # cells that say why (test, whose command says so after the run).
    refuse_unavailable: bool = True


def run_check(req: CheckRequest, progress: Progress | None = None) -> Review:
    from mmreview.matrix.executors import executor_for
    # --profile rules runs no matrix: no cluster to ask.
    with executor_for(req.cluster if req.profile != "rules" else None, req.jobs) as executor:
        return _run_check(req, progress, executor)


def _run_check(req: CheckRequest, progress: Progress | None, executor) -> Review:
    from mmreview.apply.checkout import apply_series
    from mmreview.intake.read import load_series
    from mmreview.kernel.trees import open_tree

    report = progress or (lambda *_: None)
    tree = open_tree(req.tree)
    # Bad --arch, --suite or --binary names are bad input before any work (--arch even with no
    # matrix to run).
    named = tg.parse_arch_list(req.arch)
    if req.profile != "rules":
        suites.select(req.profile, req.suite, req.binary,
                      {s.name: suites.tree_binaries(tree.path, "HEAD", s) for s in suites.SUITES})
    report("reading the series", 0, 1)
    if req.source == "-" and (req.base == FROM_TREE or req.lone_patch):
        import io
        data = req.data if req.data is not None else sys.stdin.buffer.read()
        series = load_series("-", tree, stdin=io.BytesIO(_as_lone_patch(data)))
    else:
        series = load_series(req.source, tree, lore=req.lore)
    if req.upto is not None:
        series.patches = series.patches[:req.upto]
    targets = _targets(req, named, executor)
    box = None
    if req.profile != "rules":      # no way to confine the series' code: exit 3 before any work
        box = executor.confinement(tree.path, req.no_sandbox)
    base = req.base
    if base == FROM_TREE:
        base = committed_parent(tree.path, series)
    # A range of the tree (the pre-push case) is already committed: review those commits as
    # they are instead of applying them again.
    why = req.base_why if base == req.base else None
    committed = committed_checkout(tree, series, base, why) if series.kind == "range" else None
    with (nullcontext(committed) if committed else
          apply_series(tree, series, base=base, progress=report, why=why)) as co:
        res = co.result
        review = new_review(series, str(tree.path), res, [i for _, i in targets], req,
                            tree_name=tree.name)
        # Rules run on the applied part even when a later patch did not apply, and the rules
        # that need only the patch text (checkpatch) on every patch.
        if series.patches and req.rules:
            report("rules", 0, 1)
            _rules(review, series, co, req)
            report("rules", 1, 1)
        if not res.ok:
            failed = res.failed
            review.notes.append(f"matrix not run: patch {failed.number if failed else '?'} "
                                f"did not apply")
        elif req.profile == "rules":
            review.notes.append("matrix not run: --profile rules")
        else:
            _matrix(review, co, req, [t for t, _ in targets], report, box, executor)
    return review


_COUNTER = re.compile(rb"^(Subject:[ \t]*\[[^\]\n]*?)\s*\d+/\d+\]", re.M | re.I)


def _as_lone_patch(mail: bytes) -> bytes:
    """b4 prep --check hands over one patch of a series ("[PATCH 2/5]") on stdin: drop the m/n
    counter from its Subject so intake takes it as a whole, lone patch instead of a series with
    four patches missing."""
    head, sep, body = mail.partition(b"\n\n")
    return _COUNTER.sub(rb"\1]", head, count=1) + sep + body


def committed_checkout(tree, series, base: str | None, why: str | None = None):
    """A Checkout over the tree's own commits of a range series (read-only: every later stage
    reads through `git -C path`, `show` and `export`); None if they do not line up with the
    series' patches one to one (then the series is applied as usual)."""
    from mmreview.apply.checkout import APPLIED, AppliedPatch, ApplyResult, Checkout, choose_base
    from mmreview.common.git import git_out
    base_sha, base_rev, reason = choose_base(tree, series, base, why)
    tip = series.source.partition("..")[2].lstrip(".") or "HEAD"
    # `-- .` leaves out empty commits, as intake's format-patch does (b4 prep's cover letter).
    commits = git_out(tree.path, "rev-list", "--reverse", "--no-merges", "--topo-order",
                      f"{base_sha}..{tip}", "--", ".").split()
    if len(commits) != len(series.patches):
        return None
    if git_out(tree.path, "rev-list", "--count", "--merges", f"{base_sha}..{tip}") != "0":
        return None          # a merge in between: patch k's tree is not commit k's
    patches = [AppliedPatch(number=p.number, subject=p.subject, state=APPLIED, commit=c)
               for p, c in zip(series.patches, commits)]
    return Checkout(tree=tree, path=tree.path,
                    result=ApplyResult(base_sha=base_sha, base_rev=base_rev,
                                       base_reason=reason + "; its own commits, not re-applied",
                                       patches=patches))


def committed_parent(repo, series) -> str:
    """The parent of the commit in `repo`'s recent history (HEAD back to 500 commits) whose
    patch-id equals patch 1's; BadInput if there is none."""
    from mmreview.common.errors import BadInput
    from mmreview.common.git import git_out, run_git

    def patch_ids(diff: bytes) -> list[str]:
        proc = run_git(repo, "patch-id", "--stable", input=diff, check=False)
        return [line.split() for line in proc.stdout.decode().splitlines() if line.strip()]

    if not series.patches:
        raise BadInput(series.source, "no patch to look for")
    want = patch_ids(b"diff-marker\n" + series.patches[0].diff.encode())
    if not want:
        raise BadInput(series.source, "patch 1 has no diff git can compute a patch-id of")
    log = run_git(repo, "log", f"--max-count={_SEARCH_DEPTH}", "--min-parents=1", "--max-parents=1",
                  "-p", "--format=commit %H", "HEAD", check=False)
    for pid, commit in patch_ids(log.stdout):
        if pid == want[0][0]:
            return git_out(repo, "rev-parse", f"{commit}^")
    raise BadInput("--base from-tree", f"no commit in the last {_SEARCH_DEPTH} of HEAD is "
                                       f"patch 1 ({series.patches[0].subject})")


def new_review(series, tree_path: str, res, targets: list[TargetInfo],
               req: CheckRequest, tree_name: str = "") -> Review:
    """A Review of an applied series, before rules and matrix add to it."""
    return Review(
        series=SeriesSummary.from_series(series),
        tree=TreeInfo(path=tree_path, base_sha=res.base_sha, base_rev=res.base_rev,
                      base_reason=res.base_reason, tip_sha=res.tip_sha, name=tree_name),
        apply=[PatchApply(number=p.number, subject=p.subject, state=p.state, commit=p.commit,
                          conflict_files=list(p.conflict_files), message=p.message,
                          diagnosis=p.diagnosis, detail=list(p.detail),
                          applies_on=list(p.applies_on))
               for p in res.patches],
        targets=list(targets), profile=req.profile, fail_on=req.fail_on,
        fail_on_untested=req.fail_on_untested, notes=list(req.notes))


def _targets(req: CheckRequest, named: list, executor) -> list[tuple[object, TargetInfo]]:
    """The matrix's targets with their availability (here, or on the cluster's workers); a
    target named with --arch whose toolchain is missing is an infrastructure error (exit 3), not
    a silent skip."""
    if req.profile == "rules":
        return []
    if req.arch:
        executor.require(named)             # one no worker of the cluster offers
    out = []
    for t in named:
        info = TargetInfo.of(executor.availability(t))
        if req.arch and not info.available and req.refuse_unavailable:
            raise InfraError(f"--arch {t.name}", info.reason or "not available")
        out.append((t, info))
    return out


def _rules(review: Review, series, co, req: CheckRequest) -> None:
    from mmreview.rules.engine import run_rules
    result = run_rules(series, co, ignore=tuple(req.ignore))
    review.findings = list(result.findings)
    review.rules = list(result.rules)
    review.not_applied = list(result.not_applied)
    # What the rules could not check as asked (an rmap.c lock line no API maps to, a series that
    # edits the lock order or the rules' config): said, never a silent gap.
    review.notes.extend(str(n) for n in result.notes)


def _matrix(review: Review, co, req: CheckRequest, targets: list, report: Progress, box,
            executor) -> None:
    from mmreview.matrix import run as matrix
    from mmreview.review.model import SandboxInfo
    from mmreview.matrix.sandbox import BUILD_TIMEOUT
    counts = {"done": 0, "total": 0}

    def on_event(ev) -> None:
        if ev.kind == "plan":
            counts["total"] = ev.total
        elif ev.kind == "done":
            counts["done"] += 1
        report(f"matrix: {ev.label}" if ev.label else "matrix", counts["done"], counts["total"])

    result = matrix.run_matrix(co, targets=targets, profile=req.profile, suites=req.suite,
                               binaries=req.binary, jobs=req.jobs, per_patch=req.per_patch,
                               progress=on_event, use_cache=req.use_cache, box=box,
                               build_timeout=req.build_timeout or BUILD_TIMEOUT, executor=executor)
    review.notes.extend(result.notes)
    review.sandbox = SandboxInfo(confined=box.confined, description=box.describe(), tool=box.tool,
                                 as_nobody=box.as_nobody)
    review.cells = list(result.cells)
    review.targets = list(result.targets)
    review.per_patch = list(result.per_patch)
    for pf in result.per_patch:
        review.notes.append(pf.describe())


# ---------------------------------------------------------------- live display

@contextmanager
def progress_display(console=None, quiet: bool = False) -> Iterator[Progress]:
    """A progress callback: rich bar on a tty, plain 'mmreview: stage' lines otherwise."""
    if quiet:
        yield lambda *_: None
        return
    from rich.console import Console
    console = console or Console(stderr=True, highlight=False)
    if console.is_terminal:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                                   SpinnerColumn, TextColumn, TimeElapsedColumn)
        with RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                          MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                          transient=True) as prog:
            task = prog.add_task("starting", total=None)

            def update(stage: str, done: int, total: int) -> None:
                prog.update(task, description=stage, completed=done, total=total or None)
            yield update
        return
    last = [""]
    start = time.monotonic()

    def plain(stage: str, done: int, total: int) -> None:
        # One line per stage change (and per finished unit of a long stage), no spinners.
        key = f"{stage} {done}/{total}" if total and total > 1 else stage
        if key != last[0]:
            last[0] = key
            print(f"mmreview: [{time.monotonic() - start:5.1f}s] {key}", file=sys.stderr, flush=True)
    yield plain
