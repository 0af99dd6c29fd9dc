"""The kernel tree: the provisioned default, or any checkout given with --tree.

The default tree is Debian's linux-source-6.12 tarball imported into a bare
git repository in the user's cache directory.  The import streams the
tarball straight into `git fast-import` (no 1.4 GB extraction, and the
tarball's own .gitignore, which ignores everything, plays no part).  Author,
committer and dates come from the tarball, so every machine gets the same
commit id and a series' `base-commit:` names it everywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .filelock import exclusive
from .errors import BadInput, InfraError
from .gitutil import git_dir, git_env, rev_parse, run_git

PACKAGE = "linux-source-6.12"
TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
# Another linux-source tarball (a newer Debian kernel, a trimmed one for tests) can be imported instead.
TARBALL_ENV = "MMREVIEW_LINUX_TARBALL"


def tarball() -> Path:
    return Path(os.environ.get(TARBALL_ENV) or TARBALL)
BRANCH = "master"
# A file every tree mmreview can review has: the maple tree itself.
KERNEL_MARKER = "lib/maple_tree.c"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "mmreview"


def default_tree_path() -> Path:
    return cache_dir() / "trees" / "linux-6.12.git"


@dataclass
class Tree:
    """A kernel git repository mmreview reads from (never writes to its refs or work tree)."""

    path: Path          # what the user named (work tree or bare repo)
    gitdir: Path

    def rev(self, rev: str) -> str | None:
        return rev_parse(self.path, rev)

    @property
    def head(self) -> str:
        sha = self.rev("HEAD")
        if sha is None:
            raise BadInput(str(self.path), "the repository has no commits")
        return sha

    def has_file(self, rev: str, path: str) -> bool:
        return run_git(self.path, "cat-file", "-e", f"{rev}:{path}", check=False).returncode == 0


def open_tree(path: str | Path | None) -> Tree:
    """The tree named by --tree, or the provisioned default; BadInput if it is no kernel git tree."""
    if path is None:
        p = default_tree_path()
        if not (p / "HEAD").exists():
            raise BadInput(str(p), "the default tree is not provisioned; run `mmreview tree init` "
                                   "or give --tree PATH")
    else:
        p = Path(path).expanduser()
        if not p.exists():
            raise BadInput(str(path), "no such directory")
        if not p.is_dir():
            raise BadInput(str(path), "not a directory")
    gd = git_dir(p)
    if gd is None:
        raise BadInput(str(path or p), "not a git repository")
    tree = Tree(path=p.resolve(), gitdir=gd)
    if tree.rev("HEAD") is None:
        raise BadInput(str(path or p), "the git repository has no commits")
    if not tree.has_file("HEAD", KERNEL_MARKER):
        raise BadInput(str(path or p), f"not a kernel tree (no {KERNEL_MARKER} at HEAD)")
    return tree


# ---------------------------------------------------------------- provisioning

Progress = Callable[[str, int, int], None]   # (what, done, total)




def _ensure_tarball(progress: Progress | None) -> Path:
    path = tarball()
    if path.exists():
        return path
    if path != TARBALL:
        raise InfraError(f"{TARBALL_ENV}={path}", "no such file")
    if shutil.which("apt-get") is None:
        raise InfraError(str(TARBALL), f"missing, and no apt-get to install {PACKAGE}")
    if progress:
        progress(f"apt-get install {PACKAGE}", 0, 1)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", PACKAGE]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            raise InfraError(" ".join(cmd), last)
    if not TARBALL.exists():
        raise InfraError(str(TARBALL), f"{PACKAGE} installed but the tarball is not there")
    return TARBALL


def _package_version() -> str:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", PACKAGE],
                          capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def _kernel_release(makefile: bytes) -> str:
    vals = {}
    for line in makefile.decode("utf-8", "replace").splitlines()[:10]:
        k, _, v = line.partition("=")
        vals[k.strip()] = v.strip()
    rel = f"{vals.get('VERSION', '?')}.{vals.get('PATCHLEVEL', '?')}"
    if vals.get("SUBLEVEL", "0") != "0":
        rel += f".{vals['SUBLEVEL']}"
    return rel + vals.get("EXTRAVERSION", "")


def _fast_import(tarball: Path, gitdir: Path, progress: Progress | None) -> str:
    """Stream every file of the tarball into one commit; return the kernel release."""
    proc = subprocess.Popen(["git", "--git-dir", str(gitdir), "fast-import", "--quiet",
                             "--done"], stdin=subprocess.PIPE, env=git_env())
    out = proc.stdin
    assert out is not None
    entries: list[tuple[str, str, int]] = []   # (mode, path, mark)
    makefile = b""
    newest = 0
    total = tarball.stat().st_size
    with open(tarball, "rb") as raw, tarfile.open(fileobj=raw, mode="r|xz") as tf:
        for n, member in enumerate(tf):
            name = member.name.split("/", 1)[1] if "/" in member.name else ""
            if not name or member.isdir():
                continue
            if member.issym():
                data, mode = member.linkname.encode(), "120000"
            elif member.isfile():
                fh = tf.extractfile(member)
                data = fh.read() if fh else b""
                mode = "100755" if member.mode & 0o111 else "100644"
            else:
                continue   # hard links, devices: the kernel tarball has none that matter
            if name == "Makefile":
                makefile = data
            newest = max(newest, int(member.mtime))
            mark = len(entries) + 1
            out.write(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)))
            out.write(data)
            out.write(b"\n")
            entries.append((mode, name, mark))
            if progress and n % 2000 == 0:
                progress("importing files", raw.tell(), total)
    release = _kernel_release(makefile)
    msg = (f"Linux {release}\n\nImported by mmreview from Debian {PACKAGE} "
           f"{_package_version()} ({tarball}).\n").encode()
    ident = b"Debian linux-source <debian-kernel@lists.debian.org> %d +0000" % newest
    out.write(b"commit refs/heads/%s\n" % BRANCH.encode())
    out.write(b"author " + ident + b"\ncommitter " + ident + b"\n")
    out.write(b"data %d\n" % len(msg) + msg)
    for mode, name, mark in entries:
        out.write(b"M %s :%d %s\n" % (mode.encode(), mark, _quote(name)))
    out.write(b"\ndone\n")
    out.close()
    if proc.wait() != 0:
        raise InfraError(str(gitdir), "git fast-import failed")
    if progress:
        progress("importing files", total, total)
    return release


def _quote(path: str) -> bytes:
    if any(c in path for c in '"\\\n') or path.startswith(" "):
        esc = path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{esc}"'.encode()
    return path.encode()


def init_default_tree(progress: Progress | None = None) -> tuple[Path, bool]:
    """Provision the default tree; returns (path, created).  Idempotent, and safe
    when two processes run it at once: the second waits on the lock, then finds it done."""
    dest = default_tree_path()
    with exclusive(dest.parent / ".init.lock"):
        if (dest / "HEAD").exists() and rev_parse(dest, BRANCH):
            return dest, False
        source = _ensure_tarball(progress)
        tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        for stale in dest.parent.glob(f".{dest.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)   # a killed earlier run
        run_git(dest.parent, "init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(tmp))
        try:
            release = _fast_import(source, tmp, progress)
            run_git(tmp, "tag", f"v{release}", BRANCH)
            shutil.rmtree(dest, ignore_errors=True)
            os.rename(tmp, dest)   # atomic: a reader sees no tree or a whole one
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest, True
