"""The git pre-push hook: review the commits being pushed before they leave the machine.

`install` writes `pre-push` into the tree's hooks directory (`git rev-parse
--git-path hooks`, so core.hooksPath is honoured).  A pre-push hook that is
already there is not overwritten: it is moved aside to `pre-push.mmreview-chained`
and our hook runs it first, with the same arguments and stdin, and stops if it
fails.  `uninstall` removes only a hook that carries our marker and moves the
chained one back.

The hook itself calls `python -m mmreview hook run`, which reads git's pre-push
lines (`<local ref> <local sha> <remote ref> <remote sha>`) and counts what is
pushed as git does: one range per tip, however many refs point at it, of the
commits the remote has under no ref (its branches and tags as `git ls-remote`
lists them, every remote-tracking ref) and no earlier range of the push has;
a range of empty commits only is skipped, said on stderr.  Each is reviewed
with the pipeline (`--profile rules`: the rules only; `quick`: plus a native
quick build/run) and judged with `--fail-on` as `mmreview rules` judges it.
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


def hook_script(profile: str, ignore: tuple[str, ...] = (), fail_on: str = "error") -> str:
    py = shlex.quote(sys.executable)
    extra = "".join(f" --ignore {shlex.quote(i)}" for i in ignore)
    if fail_on != "error":
        extra += f" --fail-on {shlex.quote(fail_on)}"
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
            ignore: tuple[str, ...] = (), fail_on: str = "error") -> InstallResult:
    if profile not in HOOK_PROFILES:
        raise BadInput(f"--profile {profile}", f"one of {', '.join(HOOK_PROFILES)}")
    _fail_on(fail_on)
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
    hook.write_text(hook_script(profile, tuple(ignore), fail_on))
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
    local_ref: str               # every ref pushed at this tip, comma-separated
    remote_ref: str
    base: str                    # the commit the pushed ones sit on
    tip: str
    commits: int = 0             # how many of them have changes (empty ones are left out)
    why: str = ""                # where the base comes from, for the report

    @property
    def range(self) -> str:
        return f"{self.base}..{self.tip}"


@dataclass
class Skipped:
    ref: str
    why: str


def remote_commits(root: Path, remote: str | None) -> list[str]:
    """The commits every ref of `remote` points at (branches and tags alike, as `git ls-remote`
    lists them) that this repository has; [] when the remote cannot be asked."""
    if not remote:
        return []
    import subprocess
    from mmreview.common.git import git_env
    env = git_env({"GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")})
    try:
        proc = subprocess.run(["git", "-C", str(root), "ls-remote", remote], capture_output=True,
                              env=env, timeout=60)
    except (subprocess.TimeoutExpired, OSError):
        return []
    if proc.returncode != 0:
        return []
    shas = sorted({line.split()[0] for line in proc.stdout.decode("utf-8", "replace").splitlines()
                   if line.strip()})
    # One batch for all of them: a kernel remote lists thousands of tags.
    check = run_git(root, "cat-file", "--batch-check=%(objectname) %(objecttype)",
                    input="".join(f"{s}\n" for s in shas).encode(), check=False)
    return [parts[0] for line in check.stdout.decode().splitlines()
            if len(parts := line.split()) == 2 and parts[1] in ("commit", "tag")]


def push_ranges(root: Path, stdin_text: str, remote: str | None = None,
                skipped: list[Skipped] | None = None) -> list[PushRange]:
    """git's pre-push lines -> the ranges to review, as git would count them: deletions, pushes of
    nothing new and of empty commits only are skipped (said in `skipped`); refs pushed at one tip
    are one range; commits the remote already has under any ref (`remote`'s, through ls-remote,
    and every remote-tracking ref) and those an earlier line of the push reviews are left out."""
    skipped = skipped if skipped is not None else []
    has = remote_commits(root, remote)
    tips: dict[str, list[tuple[str, str, str]]] = {}      # local sha -> [(local, remote ref, sha)]
    for line in stdin_text.splitlines():
        parts = line.split()
        if len(parts) != 4:
            continue
        local_ref, local_sha, remote_ref, remote_sha = parts
        if set(local_sha) == {"0"}:
            continue                                     # deleting a remote branch
        tips.setdefault(local_sha, []).append((local_ref, remote_ref, remote_sha))
    out: list[PushRange] = []
    reviewed: list[str] = []
    for tip, refs in tips.items():
        names = ", ".join(dict.fromkeys(r[0] for r in refs))
        known = [r[2] for r in refs if set(r[2]) != {"0"} and _has_commit(root, r[2])]
        exclude = ["--not", *known, *has, *reviewed, "--remotes"]
        new = git_out(root, "rev-list", "--reverse", "--topo-order", tip, *exclude).split()
        if not new:
            skipped.append(Skipped(names, "nothing the remote does not have already"))
            continue
        changed = git_out(root, "rev-list", "--count", "--no-merges", tip, *exclude, "--", ".")
        if changed == "0":
            skipped.append(Skipped(names, f"only empty commits ({len(new)}): nothing to review"))
            reviewed.append(tip)
            continue
        parent = run_git(root, "rev-parse", "--verify", "--quiet", f"{new[0]}^", check=False)
        if parent.returncode != 0:
            skipped.append(Skipped(names, "a root commit: nothing to review it against"))
            continue
        base = parent.stdout.decode().strip()
        why = (f"where {refs[0][1]} is on the remote" if base in known
               else "the parent of the first commit the remote does not have")
        out.append(PushRange(names, refs[0][1], base, tip, int(changed), why))
        reviewed.append(tip)
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

def run_hook(profile: str = "rules", ignore: tuple[str, ...] = (), stdin_text: str | None = None,
             fail_on: str = "error", remote: str | None = None) -> int:
    """Review what is being pushed; print the terminal report to stderr; the worst exit code.

    Under the pre-commit framework (stage pre-push) the range comes from its environment
    (PRE_COMMIT_FROM_REF/PRE_COMMIT_TO_REF) instead of git's stdin."""
    from mmreview.common.errors import EXIT_OK
    from mmreview.review.pipeline import CheckRequest, progress_display, run_check
    from mmreview.render.terminal import print_review, report_console
    severity, untested = _fail_on(fail_on)
    root = repo_root(None)
    frm, to = os.environ.get("PRE_COMMIT_FROM_REF"), os.environ.get("PRE_COMMIT_TO_REF")
    if to:
        lines = f"HEAD {full_sha(root, to)} refs/heads/HEAD {full_sha(root, frm or '')}\n"
    else:
        lines = stdin_text if stdin_text is not None else sys.stdin.read()
    worst = EXIT_OK
    out = report_console(sys.stderr)
    skipped: list[Skipped] = []
    ranges = push_ranges(root, lines, remote, skipped)
    for sk in skipped:
        print(f"mmreview: pre-push: {sk.ref}: {sk.why}", file=sys.stderr)
    for r in ranges:
        native = host_target() if profile == "quick" else None
        # The note first: which push this review is of, before its report.
        print(f"mmreview: pre-push: reviewing {r.local_ref} -> {r.remote_ref} "
              f"({r.commits} commit{'s' if r.commits != 1 else ''} on {r.base[:12]})", file=sys.stderr)
        req = CheckRequest(source=r.range, tree=str(root), base=r.base, base_why=r.why, arch=native,
                           profile=profile, ignore=tuple(ignore), fail_on=severity,
                           fail_on_untested=untested, notes=[f"pre-push of {r.local_ref} -> {r.remote_ref}"])
        with progress_display() as progress:
            review = run_check(req, progress)
        print_review(review, out)
        worst = max(worst, review.exit_code)
    if worst:
        print("mmreview: push blocked: the review is not clean "
              "(push anyway with `git push --no-verify`)", file=sys.stderr)
    return worst


def _fail_on(text: str) -> tuple[str, bool]:
    """The one `--fail-on` grammar of check and rules (`warning`, `error,untested`)."""
    from mmreview.review.model import parse_fail_on
    try:
        return parse_fail_on(text)
    except ValueError as exc:
        raise BadInput(f"--fail-on {text}", str(exc)) from None


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
    from mmreview.common.exits import guarded
    ap = argparse.ArgumentParser(prog="mmreview.review.prepush")
    ap.add_argument("action", choices=["run"])
    ap.add_argument("--profile", default="rules", choices=HOOK_PROFILES)
    ap.add_argument("--ignore", action="append", default=[])
    ap.add_argument("--fail-on", default="error")
    args, git_args = ap.parse_known_args(argv)     # git's own: the remote's name and URL
    git_args = [a for a in git_args if a != "--"]
    # The URL, else the name: ls-remote takes either, and a URL needs no configured remote.
    remote = (git_args[1:2] or git_args[:1] or [None])[0]
    code, failed = guarded(lambda: run_hook(args.profile, tuple(args.ignore), fail_on=args.fail_on,
                                            remote=remote))
    return code if failed is None else failed


if __name__ == "__main__":
    sys.exit(main())
