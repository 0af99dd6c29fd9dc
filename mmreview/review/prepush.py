"""The git pre-push hook: review the commits being pushed before they leave the machine.

`install` writes `pre-push` into the tree's hooks directory (`git rev-parse
--git-path hooks`, so core.hooksPath is honoured).  A pre-push hook that is
already there is not overwritten: it is moved aside to `pre-push.mmreview-chained`
and our hook runs it first, with the same arguments and stdin, and stops if it
fails.  `uninstall` removes only a hook that carries our marker and moves the
chained one back.

The hook itself calls `python -m mmreview hook run`, which reads git's pre-push
lines (`<local ref> <local sha> <remote ref> <remote sha>`), turns each into a
range — `remote..local`, or for a new branch the commits not on any
remote-tracking ref — and reviews it with the pipeline (`--profile rules`: the
rules only; `quick`: plus a native quick build/run).
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from mmreview.common.errors import BadInput
from mmreview.common.git import git_out, run_git

MARKER = "# mmreview-pre-push-hook v1"
CHAINED = "pre-push.mmreview-chained"
ZERO = "0" * 40
HOOK_PROFILES = ("rules", "quick")


def repo_root(path: str | Path | None) -> Path:
    p = Path(path or os.getcwd()).expanduser()
    if not p.is_dir():
        raise BadInput(str(p), "no such directory")
    proc = run_git(p, "rev-parse", "--show-toplevel", check=False)
    if proc.returncode != 0:
        raise BadInput(str(p), "not a git work tree (a pre-push hook needs one)")
    return Path(proc.stdout.decode().strip())


def hooks_dir(root: Path) -> Path:
    d = Path(git_out(root, "rev-parse", "--git-path", "hooks"))
    return d if d.is_absolute() else (root / d)


def hook_script(profile: str, ignore: tuple[str, ...] = ()) -> str:
    py = shlex.quote(sys.executable)
    extra = "".join(f" --ignore {shlex.quote(i)}" for i in ignore)
    return f"""#!/bin/sh
{MARKER}
# Installed by `mmreview hook install --profile {profile}`; `mmreview hook uninstall` removes it.
# Reviews the commits being pushed; a review that is not clean blocks the push.
# Skip once with `git push --no-verify` or MMREVIEW_SKIP=1.
input=$(cat)
hookdir=$(dirname "$0")
if [ -x "$hookdir/{CHAINED}" ]; then
    printf '%s\\n' "$input" | "$hookdir/{CHAINED}" "$@" || exit $?
fi
[ -n "$MMREVIEW_SKIP" ] && exit 0
printf '%s\\n' "$input" | exec {py} -m mmreview.review.prepush run --profile {profile}{extra} -- "$@"
"""


def is_ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(errors="replace")
    except OSError:
        return False


@dataclass
class InstallResult:
    hook: Path
    chained: Path | None          # the user's previous hook, now run first
    replaced_ours: bool           # a previous mmreview hook was updated in place


def install(tree: str | Path | None, profile: str = "rules",
            ignore: tuple[str, ...] = ()) -> InstallResult:
    if profile not in HOOK_PROFILES:
        raise BadInput(f"--profile {profile}", f"one of {', '.join(HOOK_PROFILES)}")
    root = repo_root(tree)
    hooks = hooks_dir(root)
    hooks.mkdir(parents=True, exist_ok=True)
    hook = hooks / "pre-push"
    chained = hooks / CHAINED
    replaced = False
    if hook.exists() or hook.is_symlink():
        if is_ours(hook):
            replaced = True
        else:
            if chained.exists():
                raise BadInput(str(chained), "already exists; move it away before installing")
            hook.rename(chained)
    hook.write_text(hook_script(profile, tuple(ignore)))
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return InstallResult(hook=hook, chained=chained if chained.exists() else None,
                         replaced_ours=replaced)


def uninstall(tree: str | Path | None) -> tuple[Path, Path | None]:
    """Remove our hook and put the chained one back; (hook path, restored path or None)."""
    root = repo_root(tree)
    hooks = hooks_dir(root)
    hook = hooks / "pre-push"
    chained = hooks / CHAINED
    if not hook.exists():
        raise BadInput(str(hook), "no pre-push hook is installed")
    if not is_ours(hook):
        raise BadInput(str(hook), "is not mmreview's hook; left alone")
    hook.unlink()
    if chained.exists() or chained.is_symlink():
        chained.rename(hook)
        return hook, hook
    return hook, None


# ---------------------------------------------------------------- what is pushed

@dataclass
class PushRange:
    local_ref: str
    remote_ref: str
    base: str                    # the commit the pushed ones sit on
    tip: str

    @property
    def range(self) -> str:
        return f"{self.base}..{self.tip}"


def push_ranges(root: Path, stdin_text: str) -> list[PushRange]:
    """git's pre-push lines -> the ranges to review (deletions and no-op pushes skipped)."""
    out = []
    for line in stdin_text.splitlines():
        parts = line.split()
        if len(parts) != 4:
            continue
        local_ref, local_sha, remote_ref, remote_sha = parts
        if set(local_sha) == {"0"}:
            continue                                     # deleting a remote branch
        if set(remote_sha) != {"0"} and _has_commit(root, remote_sha):
            # A fast-forward reviews remote..local; a forced push what is new since the fork point.
            base = git_out(root, "merge-base", remote_sha, local_sha) or remote_sha
            if git_out(root, "rev-list", "--count", f"{base}..{local_sha}") == "0":
                continue                                 # nothing new
        else:
            # A new branch (or a remote tip we do not have): what no remote-tracking ref has.
            new = git_out(root, "rev-list", "--reverse", "--no-merges", local_sha,
                          "--not", "--remotes").split()
            if not new:
                continue
            parent = run_git(root, "rev-parse", "--verify", "--quiet", f"{new[0]}^", check=False)
            if parent.returncode != 0:
                continue                                 # a root commit: nothing to review against
            base = parent.stdout.decode().strip()
        out.append(PushRange(local_ref, remote_ref, base, local_sha))
    return out


def _has_commit(root: Path, sha: str) -> bool:
    return run_git(root, "cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode == 0


def full_sha(root: Path, rev: str) -> str:
    """The commit `rev` names, or the all-zero id git uses for "none"."""
    if not rev:
        return ZERO
    proc = run_git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else ZERO


# ---------------------------------------------------------------- the hook's run

def run_hook(profile: str = "rules", ignore: tuple[str, ...] = (), stdin_text: str | None = None) -> int:
    """Review what is being pushed; print the terminal report to stderr; the worst exit code.

    Under the pre-commit framework (stage pre-push) the range comes from its environment
    (PRE_COMMIT_FROM_REF/PRE_COMMIT_TO_REF) instead of git's stdin."""
    from mmreview.common.errors import EXIT_OK
    from mmreview.review.pipeline import CheckRequest, progress_display, run_check
    from mmreview.render.terminal import print_review, report_console
    root = repo_root(None)
    frm, to = os.environ.get("PRE_COMMIT_FROM_REF"), os.environ.get("PRE_COMMIT_TO_REF")
    if to:
        lines = f"HEAD {full_sha(root, to)} refs/heads/HEAD {full_sha(root, frm or '')}\n"
    else:
        lines = stdin_text if stdin_text is not None else sys.stdin.read()
    worst = EXIT_OK
    out = report_console(sys.stderr)
    for r in push_ranges(root, lines):
        native = host_target() if profile == "quick" else None
        req = CheckRequest(source=r.range, tree=str(root), base=r.base, arch=native,
                           profile=profile, ignore=tuple(ignore),
                           notes=[f"pre-push of {r.local_ref} -> {r.remote_ref}"])
        with progress_display() as progress:
            review = run_check(req, progress)
        print_review(review, out)
        worst = max(worst, review.exit_code)
    if worst:
        print("mmreview: push blocked: the review is not clean "
              "(push anyway with `git push --no-verify`)", file=sys.stderr)
    return worst


def host_target() -> str:
    """The target this machine is (quick hook: one native build and run, not every target
    that happens to run natively, like i386 on x86_64)."""
    import platform
    from mmreview.matrix.targets import all_targets, parse_arch_list
    try:
        return parse_arch_list(platform.machine())[0].name
    except BadInput:
        return next(t.name for t in all_targets() if t.native)


def main(argv: list[str] | None = None) -> int:
    """`python -m mmreview.review.prepush run ...`: what the installed hook calls.  Not through the typer
    app, so a push does not pay for importing every command."""
    import argparse
    from mmreview.common.errors import MmreviewError
    ap = argparse.ArgumentParser(prog="mmreview.review.prepush")
    ap.add_argument("action", choices=["run"])
    ap.add_argument("--profile", default="rules", choices=HOOK_PROFILES)
    ap.add_argument("--ignore", action="append", default=[])
    args, _git_args = ap.parse_known_args(argv)     # git's own: the remote's name and URL
    try:
        return run_hook(args.profile, tuple(args.ignore))
    except MmreviewError as exc:
        print(f"mmreview: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mmreview: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
