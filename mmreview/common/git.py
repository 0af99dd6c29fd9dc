"""Running git: one place that fixes identity, locale and error handling.

GitPython's `Repo` is used where we read repository state; plumbing that
needs stdin/env control (fast-import, am) goes through `run_git`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mmreview.common.errors import InfraError

# A fresh machine has no git identity; git am and commit refuse without one.
_IDENTITY = {
    "GIT_AUTHOR_NAME": "mmreview",
    "GIT_AUTHOR_EMAIL": "mmreview@localhost",
    "GIT_COMMITTER_NAME": "mmreview",
    "GIT_COMMITTER_EMAIL": "mmreview@localhost",
}


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for k, v in _IDENTITY.items():
        env.setdefault(k, v)
    env["LC_ALL"] = "C"
    # Never open an editor or pager, never ask for credentials.
    env["GIT_EDITOR"] = "true"
    env["GIT_PAGER"] = "cat"
    env["GIT_TERMINAL_PROMPT"] = "0"
    if extra:
        env.update(extra)
    return env


def run_git(repo: str | Path, *args: str, input: bytes | None = None,
            check: bool = True, env: dict[str, str] | None = None,
            config: dict[str, str] | None = None,
            merge_output: bool = False) -> subprocess.CompletedProcess:
    """Run git in `repo`; with merge_output, stderr is interleaved into stdout as git wrote it."""
    cmd = ["git"]
    for k, v in (config or {}).items():
        cmd += ["-c", f"{k}={v}"]
    cmd += ["-C", str(repo), *args]
    try:
        proc = subprocess.run(cmd, input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
                              env=git_env(env))
    except FileNotFoundError:
        raise InfraError("git", "not found on PATH (install git)") from None
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
    return proc


def git_out(repo: str | Path, *args: str, **kw) -> str:
    return run_git(repo, *args, **kw).stdout.decode("utf-8", "replace").strip()


def rev_parse(repo: str | Path, rev: str) -> str | None:
    """The commit `rev` names in `repo`, or None if it names no commit."""
    proc = run_git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout.decode().strip()


def git_dir(repo: str | Path) -> Path | None:
    """The git directory of `repo` (bare or not), or None if it is no git repository.
    InfraError if git cannot answer at all (a broken ~/.gitconfig, say): that is not the
    user's tree being wrong."""
    proc = run_git(repo, "rev-parse", "--absolute-git-dir", check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace")
        if "not a git repository" in err or not err.strip():
            return None
        last = err.strip().splitlines()[-1] if "fatal:" not in err else \
            next(ln for ln in err.splitlines() if "fatal:" in ln)
        raise InfraError(f"git -C {repo}", f"failed: {last.strip()}")
    return Path(proc.stdout.decode().strip())


def show_file(repo: str | Path, rev: str, path: str) -> bytes | None:
    """A file's bytes at `rev`, or None if it does not exist there."""
    proc = run_git(repo, "show", f"{rev}:{path}", check=False)
    return proc.stdout if proc.returncode == 0 else None
