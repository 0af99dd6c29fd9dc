"""Apply a series in isolation: a shared-object work tree at the base, one commit per patch.

Why not `git worktree add`: it writes into the user's repository (the
worktrees/ registry, and for a sparse checkout `extensions.worktreeConfig` in
the shared config), and a killed run leaves a registered worktree behind for
the user to prune.  Instead the Checkout is its own small repository whose
object store borrows the tree's through `objects/info/alternates` (what
`git clone --shared` does): nothing of the user's repository is written, the
series' commits land in the Checkout's own objects, and removing the
directory removes everything.  It is sparse (only the directories the series
touches are checked out), so setting it up on the 90k-file kernel takes well
under a second; later stages read other files with `show` or `export`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from mmreview.common.errors import BadInput, InfraError
from mmreview.common.git import git_out, run_git, show_file
from mmreview.intake.series import Series
from mmreview.common.rundirs import new_run_dir, remove_stale
from mmreview.common.paths import worktrees_dir
from mmreview.kernel.trees import Tree

Progress = Callable[[str, int, int], None]

APPLIED = "applied"
APPLIED_3WAY = "applied-3way"
FAILED = "failed"
NOT_ATTEMPTED = "not-attempted"


@dataclass
class AppliedPatch:
    number: int
    subject: str
    state: str                       # APPLIED | APPLIED_3WAY | FAILED | NOT_ATTEMPTED
    commit: str | None = None
    conflict_files: list[str] = field(default_factory=list)
    message: str = ""                # git's own words when it failed
    diagnosis: str = ""              # the kind of failure (apply.diagnose), when it failed
    detail: list[str] = field(default_factory=list)     # the failing hunk and the base's lines
    applies_on: list[str] = field(default_factory=list)  # other trees the whole series applies on


@dataclass
class ApplyResult:
    base_sha: str
    base_rev: str                    # what named the base: the --base value, the sha, or "HEAD"
    base_reason: str                 # why this base, in a sentence
    patches: list[AppliedPatch]

    @property
    def ok(self) -> bool:
        return all(p.state in (APPLIED, APPLIED_3WAY) for p in self.patches)

    @property
    def failed(self) -> AppliedPatch | None:
        return next((p for p in self.patches if p.state == FAILED), None)

    @property
    def tip_sha(self) -> str:
        commits = [p.commit for p in self.patches if p.commit]
        return commits[-1] if commits else self.base_sha

    def to_json(self) -> dict:
        return {"base_sha": self.base_sha, "base_rev": self.base_rev, "base_reason": self.base_reason,
                "ok": self.ok, "tip_sha": self.tip_sha,
                "patches": [asdict(p) for p in self.patches]}


def choose_base(tree: Tree, series: Series, base: str | None,
                why: str | None = None) -> tuple[str, str, str]:
    """(sha, rev, reason): --base, else the start of a range, else the cover letter's base-commit:
    if the tree has it, else HEAD.  `why` says where a given base came from when it was not the
    user's --base (the pre-push hook's: where the remote is)."""
    if base:
        sha = tree.rev(base)
        if sha is None:
            raise BadInput(f"--base {base}", f"no such commit in {tree.name}")
        return sha, base, why or "given with --base"
    if series.kind == "range" and series.base_commit:
        sha = tree.rev(series.base_commit)
        if sha:
            start = series.source.partition("..")[0] or "HEAD"
            return sha, start, f"the start of the range {series.source}"
    if series.base_commit:
        sha = tree.rev(series.base_commit)
        if sha:
            return sha, series.base_commit, "the series' base-commit: line"
        return tree.head, "HEAD", (f"the series' base-commit {series.base_commit[:12]} is not in the "
                                   f"tree; using the tree's HEAD")
    return tree.head, "HEAD", "the series names no base-commit; using the tree's HEAD"


_KEPT = "mmreview-kept"        # --keep: never removed as stale


def remove_stale_worktrees() -> list[Path]:
    """Remove work trees whose owning run is gone (killed with SIGKILL, machine crash)."""
    return remove_stale(worktrees_dir(), keep=lambda wt: (wt / ".git" / _KEPT).exists())


@dataclass
class Checkout:
    tree: Tree
    path: Path
    result: ApplyResult

    @property
    def base_sha(self) -> str:
        return self.result.base_sha

    @property
    def commits(self) -> list[str]:
        return [p.commit for p in self.result.patches if p.commit]

    def rev_after(self, k: int) -> str:
        """The tree after patch k (0: the base)."""
        if k == 0:
            return self.base_sha
        commits = self.commits
        if k > len(commits):
            raise IndexError(f"patch {k} was not applied")
        return commits[k - 1]

    def show(self, rev: str, path: str) -> bytes | None:
        return show_file(self.path, rev, path)

    def export(self, rev: str, dest: str | Path, paths: list[str]) -> None:
        """A clean copy of `paths` at `rev` into `dest` (for builds that must not share a directory)."""
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        existing = [p for p in paths
                    if run_git(self.path, "cat-file", "-e", f"{rev}:{p}", check=False).returncode == 0]
        if not existing:
            return
        archive = subprocess.Popen(["git", "-C", str(self.path), "archive", "--format=tar", rev,
                                    "--", *existing], stdout=subprocess.PIPE)
        untar = subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout,
                               capture_output=True)
        assert archive.stdout is not None
        archive.stdout.close()
        if archive.wait() != 0 or untar.returncode != 0:
            raise InfraError(str(dest), f"could not export {rev[:12]}: "
                                        f"{untar.stderr.decode(errors='replace').strip()}")


def _sparse_dirs(files: list[str]) -> list[str]:
    dirs = {os.path.dirname(f) for f in files}
    dirs.discard("")
    return sorted(dirs)


def _init_worktree(wt: Path, tree: Tree, base_sha: str, files: list[str]) -> None:
    gitdir = wt / ".git"
    run_git(wt.parent, "init", "--quiet", str(wt))
    objects = Path(git_out(tree.path, "rev-parse", "--path-format=absolute", "--git-path", "objects"))
    (gitdir / "objects" / "info" / "alternates").write_text(f"{objects}\n")
    run_git(wt, "config", "core.sparseCheckout", "true")
    run_git(wt, "config", "core.sparseCheckoutCone", "true")
    run_git(wt, "config", "gc.auto", "0")
    dirs = _sparse_dirs(files)
    (gitdir / "info").mkdir(exist_ok=True)
    (gitdir / "info" / "sparse-checkout").write_text(_cone_patterns(dirs))
    proc = run_git(wt, "checkout", "--quiet", "--detach", base_sha, check=False)
    if proc.returncode != 0:
        raise InfraError(str(wt), "could not check out the base: "
                                  + proc.stderr.decode(errors="replace").strip().splitlines()[-1])


def _cone_patterns(dirs: list[str]) -> str:
    """The sparse-checkout file cone mode wants: top-level files, then each directory and its parents."""
    lines = ["/*", "!/*/"]
    parents: set[str] = set()
    for d in dirs:
        parts = d.split("/")
        for i in range(1, len(parts)):
            parents.add("/".join(parts[:i]))
    for p in sorted(parents):
        lines += [f"/{p}/", f"!/{p}/*/"]
    for d in dirs:
        lines.append(f"/{d}/")
    return "\n".join(dict.fromkeys(lines)) + "\n"


_APPLYING = re.compile(r"^Applying: (.*)$")
_CONFLICT = re.compile(r"^CONFLICT \([^)]*\): .*? in (\S+)$")
_PATCH_FAILED = re.compile(r"^error: patch failed: (\S+?):\d+$")
_NOT_APPLY = re.compile(r"^error: (\S+?): (?:patch does not apply|does not exist in index|already exists in index"
                        r"|already exists in working directory|does not match index)$")
_LACKING = re.compile(r"^error: sha1 information is lacking or useless \((\S+)\)\.$")
_FALLBACK = "Falling back to patching base and 3-way merge"
_NO_CHANGES = "No changes -- Patch already applied."


def _read_am(output: str, patches: list, commits: list[str]) -> list[AppliedPatch]:
    """Turn one `git am --3way` run's output into a state per patch."""
    segments: list[list[str]] = []
    for line in output.splitlines():
        if _APPLYING.match(line):
            segments.append([])
        elif segments:
            segments[-1].append(line)
    result = []
    used = 0                # commits are git's, one per patch that changed something
    stopped = False
    for i, patch in enumerate(patches):
        ap = AppliedPatch(number=patch.number, subject=patch.subject, state=NOT_ATTEMPTED)
        if stopped:
            pass
        elif i < len(segments) and any(_NO_CHANGES in l for l in segments[i]):
            # git am --3way goes on past a patch whose change the tree has; we stop there, so that
            # commit k stays patch k (apply_series drops the commits after it).
            ap.state = FAILED
            ap.message = _NO_CHANGES
            stopped = True
        elif used < len(commits):
            ap.commit = commits[used]
            used += 1
            ap.state = APPLIED_3WAY if i < len(segments) and any(_FALLBACK in l for l in segments[i]) \
                else APPLIED
        elif i < len(segments):
            lines = segments[i]
            ap.state = FAILED
            files: dict[str, None] = {}
            for l in lines:
                m = (_CONFLICT.match(l) or _PATCH_FAILED.match(l) or _NOT_APPLY.match(l)
                     or _LACKING.match(l))
                if m:
                    files.setdefault(m.group(1), None)
            ap.conflict_files = list(files)
            ap.message = "\n".join(l for l in lines if l.startswith(("error:", "CONFLICT", "fatal:",
                                                                    "Patch failed")))
        result.append(ap)
    return result


def _failing_files(wt: Path, mbox: bytes) -> list[str]:
    """Ask `git apply --check` which files a patch fails on (git am --3way does not always say)."""
    proc = run_git(wt, "apply", "--check", "--verbose", "-", input=mbox, check=False, merge_output=True)
    files: dict[str, None] = {}
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        m = _PATCH_FAILED.match(line) or _NOT_APPLY.match(line)
        if m:
            files.setdefault(m.group(1), None)
    return list(files)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the work tree is removed either way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


NO_BASE_HINT = ("the series names no base-commit: its author can add one with `git format-patch "
                "--base=auto` (b4 send does it by itself); `b4 am --guess-base` guesses one from "
                "the patches' blob ids")


def _diagnose(wt: Path, ap: AppliedPatch, patch, out: str, series: Series, tree: Tree,
              others: bool) -> None:
    """Say why patch `ap` failed, and on which other trees the series applies."""
    from mmreview.apply.diagnose import diagnose
    # Leave git am's half-done state: the Checkout is ours, and HEAD is the tree before patch k.
    run_git(wt, "am", "--quit", check=False)
    run_git(wt, "reset", "--quiet", "--hard", "HEAD", check=False)
    ap.diagnosis, ap.detail = diagnose(wt, git_out(wt, "rev-parse", "HEAD"), patch.diff, out)
    if not series.base_commit:
        ap.detail.append(NO_BASE_HINT)
    if others:
        ap.applies_on = applies_on(series, tree)


def other_trees(tree: Tree) -> list[Tree]:
    """The trees a failed series is tried on too: the checkout you are in and every provisioned
    kernel, newest first, but not `tree` itself."""
    from mmreview.kernel.trees import checkout_here, is_provisioned, open_tree, trees_dir
    from mmreview.kernel.table import version_key
    out: list[Tree] = []
    seen = {tree.path.resolve()}
    here = checkout_here()
    if here is not None and here.path.resolve() not in seen:
        out.append(here)
        seen.add(here.path.resolve())
    provisioned = [p for p in trees_dir().glob("linux-*.git") if is_provisioned(p)] \
        if trees_dir().is_dir() else []
    for p in sorted(provisioned, key=lambda p: version_key(p.name[6:-4]), reverse=True):
        if p.resolve() in seen:
            continue
        try:
            out.append(open_tree(str(p)))
        except BadInput:
            continue
        seen.add(p.resolve())
    return out


def applies_on(series: Series, tree: Tree) -> list[str]:
    """The other trees (see other_trees) the whole series applies on, as "7.3" or a path."""
    out = []
    for other in other_trees(tree):
        try:
            with apply_series(other, series, diagnose=False) as co:
                if co.result.ok:
                    out.append(other.kernel or str(other.path))
        except BadInput:
            continue
    return out


@contextmanager
def apply_series(tree: Tree, series: Series, base: str | None = None, keep: bool = False,
                 progress: Progress | None = None, why: str | None = None,
                 diagnose: bool = True) -> Iterator[Checkout]:
    """Apply `series` onto `tree` at its base in a fresh Checkout; remove it afterwards unless
    `keep`.  A patch that fails is diagnosed, and (with `diagnose`) the series tried on the
    other trees."""
    base_sha, base_rev, reason = choose_base(tree, series, base, why)
    remove_stale_worktrees()
    wt = new_run_dir(worktrees_dir())
    with _terminate_as_interrupt():
        try:
            if progress:
                progress("checking out the base", 0, len(series.patches))
            _init_worktree(wt, tree, base_sha, series.files())
            if progress:
                progress("applying", 0, len(series.patches))
            proc = run_git(wt, "am", "--3way", input=series.mbox_bytes(), check=False,
                           merge_output=True)
            out = proc.stdout.decode("utf-8", "replace")
            commits = git_out(wt, "rev-list", "--reverse", f"{base_sha}..HEAD").split()
            patches = _read_am(out, series.patches, commits)
            kept = [p.commit for p in patches if p.commit]
            if len(kept) < len(commits):        # stopped at a patch the tree already has
                run_git(wt, "am", "--quit", check=False)
                run_git(wt, "reset", "--quiet", "--hard", kept[-1] if kept else base_sha)
                commits = kept
            for ap, patch in zip(patches, series.patches):
                if ap.state == FAILED and not ap.conflict_files:
                    ap.conflict_files = _failing_files(wt, patch.mbox)
            if proc.returncode != 0 and not any(p.state == FAILED for p in patches):
                # git am refused before applying anything (e.g. mail it cannot split).
                first = next((p for p in patches if p.state == NOT_ATTEMPTED), None)
                if first is None:
                    raise InfraError(str(wt), f"git am failed: {out.strip()[-300:]}")
                first.state = FAILED
                first.message = out.strip()
            failed = next(((ap, p) for ap, p in zip(patches, series.patches) if ap.state == FAILED),
                          None)
            if failed is not None:
                if progress:
                    progress("diagnosing the failed patch", len(commits), len(series.patches))
                _diagnose(wt, failed[0], failed[1], out, series, tree, diagnose)
            if progress:
                progress("applied", len(commits), len(series.patches))
            if keep:
                (wt / ".git" / _KEPT).write_text("kept with --keep\n")
            yield Checkout(tree=tree, path=wt,
                           result=ApplyResult(base_sha=base_sha, base_rev=base_rev,
                                              base_reason=reason, patches=patches))
        finally:
            if not keep:
                shutil.rmtree(wt, ignore_errors=True)
