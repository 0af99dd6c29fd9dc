"""The kernel tree: the provisioned default, another provisioned kernel, or any checkout given with --tree.

The default tree (kernel/table.py's DEFAULT) is Debian's linux-source tarball of that
kernel imported into a bare git repository in the user's cache directory; other kernels
(kernel/table.py says which, from which Debian suite, and which version was verified) are
imported the same way, each into its own `trees/linux-<VERSION.PATCHLEVEL>.git`.  The import streams the
tarball straight into `git fast-import` (no 1.4 GB extraction, and the
tarball's own .gitignore, which ignores everything, plays no part).  Author,
committer and dates come from the tarball, so every machine gets the same
commit id and a series' `base-commit:` names it everywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from mmreview.kernel import table as kernels
from mmreview.common.filelock import exclusive
from mmreview.common.errors import BadInput, InfraError
from mmreview.common.git import git_dir, git_env, rev_parse, run_git
from mmreview.common import paths
from mmreview.common.paths import apt_dir, trees_dir

cache_dir = paths.cache_dir      # still importable from here

# Another linux-source tarball (a trimmed one for tests) can be imported by `tree init` instead; like
# `tree init --tarball PATH` it lands in the tree its Makefile names (linux-<VERSION.PATCHLEVEL>.git).
TARBALL_ENV = "MMREVIEW_LINUX_TARBALL"
BRANCH = "master"
# A file every tree mmreview can review has: the maple tree itself.
KERNEL_MARKER = "lib/maple_tree.c"


def tree_path(kernel: str) -> Path:
    """Where kernel `kernel` (VERSION.PATCHLEVEL, e.g. "7.3") is provisioned."""
    return trees_dir() / f"linux-{kernel}.git"


def default_tree_path() -> Path:
    return tree_path(kernels.DEFAULT)


def is_provisioned(path: Path) -> bool:
    return (path / "HEAD").exists() and rev_parse(path, BRANCH) is not None


@dataclass
class Tree:
    """A kernel git repository mmreview reads from (never writes to its refs or work tree)."""

    path: Path          # what the user named (work tree or bare repo)
    gitdir: Path
    how: str = "--tree"  # how it was chosen: "--tree", "the checkout you are in", "the provisioned default"

    @property
    def kernel(self) -> str | None:
        """VERSION.PATCHLEVEL when this is a provisioned tree (trees/linux-7.3.git), else None."""
        try:
            rel = self.path.resolve().relative_to(trees_dir().resolve())
        except ValueError:
            return None
        m = re.fullmatch(r"linux-(\d+\.\d+)\.git", str(rel))
        return m.group(1) if m else None

    @property
    def name(self) -> str:
        """The tree as a review's header names it: which kernel or which checkout, and why it."""
        what = f"kernel {self.kernel} (provisioned)" if self.kernel else str(self.path)
        return f"{what}, {self.how}"

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


def checkout_here(cwd: str | Path | None = None) -> Tree | None:
    """The kernel checkout the current directory is in (like git and b4 take it), or None when it
    is in no git work tree or in one that is no kernel (no lib/maple_tree.c at HEAD)."""
    here = Path(cwd or os.getcwd())
    proc = run_git(here, "rev-parse", "--show-toplevel", check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    top = Path(proc.stdout.decode().strip())
    gd = git_dir(top)
    if gd is None:
        return None
    tree = Tree(path=top.resolve(), gitdir=gd, how="the checkout you are in")
    if tree.rev("HEAD") is None or not tree.has_file("HEAD", KERNEL_MARKER):
        return None
    return tree


def open_tree(path: str | Path | None, cwd: str | Path | None = None) -> Tree:
    """The tree named by --tree, else the kernel checkout the current directory is in, else the
    provisioned default; BadInput if it is no kernel git tree."""
    how = "--tree"
    if path is None:
        here = checkout_here(cwd)
        if here is not None:
            return here
        p = default_tree_path()
        how = "the provisioned default (not in a kernel checkout; --tree names another)"
        if not (p / "HEAD").exists():
            raise BadInput(str(p), "not in a kernel checkout, and the default tree is not "
                                   "provisioned; run `mmreview tree init`, or give --tree PATH")
    else:
        p = Path(path).expanduser()
        if not p.exists():
            if not kernels.NAME_RE.match(str(path)):
                raise BadInput(str(path), "no such directory")
            p = _kernel_tree(str(path))    # a real path always wins; else `--tree 7.3` names a kernel
        if not p.is_dir():
            raise BadInput(str(path), "not a directory")
    gd = git_dir(p)
    if gd is None:
        raise BadInput(str(path or p), "not a git repository")
    tree = Tree(path=p.resolve(), gitdir=gd, how=how)
    if tree.rev("HEAD") is None:
        raise BadInput(str(path or p), "the git repository has no commits")
    if not tree.has_file("HEAD", KERNEL_MARKER):
        raise BadInput(str(path or p), f"not a kernel tree (no {KERNEL_MARKER} at HEAD)")
    return tree


def _kernel_tree(name: str) -> Path:
    p = tree_path(name)
    if (p / "HEAD").exists():
        return p
    if name in kernels.KERNELS:
        raise BadInput(f"kernel {name} is not provisioned", f"run `mmreview tree init --kernel {name}`")
    raise BadInput(name, f"no such directory, nor a kernel mmreview knows ({kernels.known_text()})")


# ---------------------------------------------------------------- provisioning

Progress = Callable[[str, int, int], None]   # (what, done, total)


def _package_version(package: str) -> str:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                          capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def _owning_package(path: Path) -> tuple[str, str] | None:
    """(package, version) of the installed Debian package that ships `path`, if any."""
    proc = subprocess.run(["dpkg-query", "-S", str(path.resolve())], capture_output=True, text=True)
    if proc.returncode != 0 or ":" not in proc.stdout:
        return None
    package = proc.stdout.split(":", 1)[0].strip()
    if "," in package or " " in package:
        return None
    return package, _package_version(package)


def _makefile_vars(makefile: bytes) -> dict[str, str]:
    vals = {}
    for line in makefile.decode("utf-8", "replace").splitlines()[:10]:
        k, _, v = line.partition("=")
        vals[k.strip()] = v.strip()
    return vals


def _kernel_release(makefile: bytes) -> str:
    vals = _makefile_vars(makefile)
    rel = f"{vals.get('VERSION', '?')}.{vals.get('PATCHLEVEL', '?')}"
    if vals.get("SUBLEVEL", "0") != "0":
        rel += f".{vals['SUBLEVEL']}"
    return rel + vals.get("EXTRAVERSION", "")


def kernel_name(release: str) -> str | None:
    """VERSION.PATCHLEVEL of a release ("7.3.4" -> "7.3"), None if it has none."""
    m = re.match(r"^(\d+)\.(\d+)", release)
    return f"{m.group(1)}.{m.group(2)}" if m else None


class _Counting:
    """A read-only stream that counts what was read from it (for progress)."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.done = 0

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.done += len(data)
        return data


def _fast_import(tarball: BinaryIO, size: int, gitdir: Path, package: str | None, version: str | None,
                 origin: str, progress: Progress | None) -> str:
    """Stream every file of a kernel source tarball (read from `tarball`, `size` bytes, any
    compression) into one commit in `gitdir`; return the kernel release.

    The commit message records where it came from: Debian `package` `version` and the tarball's
    path `origin` (as the package installs it, so the id is the same on every machine), or just
    `origin` for a tarball no package ships."""
    proc = subprocess.Popen(["git", "--git-dir", str(gitdir), "fast-import", "--quiet",
                             "--done"], stdin=subprocess.PIPE, env=git_env())
    out = proc.stdin
    assert out is not None
    entries: list[tuple[str, str, int]] = []   # (mode, path, mark)
    makefile = b""
    newest = 0
    raw = _Counting(tarball)
    try:
        with tarfile.open(fileobj=raw, mode="r|*") as tf:   # type: ignore[call-overload]
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
                    progress("importing files", raw.done, size)
    except (tarfile.TarError, EOFError, OSError) as exc:
        out.close()
        proc.kill()
        proc.wait()
        if isinstance(exc, BrokenPipeError):
            raise InfraError(str(gitdir), "git fast-import failed") from None
        raise InfraError(origin, f"reading the tarball: {exc}") from None
    release = _kernel_release(makefile)
    if package:
        msg = f"Linux {release}\n\nImported by mmreview from Debian {package} {version} ({origin}).\n"
    else:
        msg = f"Linux {release}\n\nImported by mmreview from {origin}.\n"
    ident = b"Debian linux-source <debian-kernel@lists.debian.org> %d +0000" % newest
    out.write(b"commit refs/heads/%s\n" % BRANCH.encode())
    out.write(b"author " + ident + b"\ncommitter " + ident + b"\n")
    out.write(b"data %d\n" % len(msg.encode()) + msg.encode())
    for mode, name, mark in entries:
        out.write(b"M %s :%d %s\n" % (mode.encode(), mark, _quote(name)))
    out.write(b"\ndone\n")
    out.close()
    if proc.wait() != 0:
        raise InfraError(str(gitdir), "git fast-import failed")
    if progress:
        progress("importing files", size, size)
    return release


def _quote(path: str) -> bytes:
    if any(c in path for c in '"\\\n') or path.startswith(" "):
        esc = path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{esc}"'.encode()
    return path.encode()


def _provision(dest: Path, import_into: Callable[[Path], str],
               keep: Callable[[], bool] = lambda: True) -> tuple[Path, bool]:
    """Create `dest` with `import_into(tmp_bare_repo) -> release`, tagged v<release>; a tree
    already there is kept while `keep()` says so (asked under the lock), else replaced whole.

    Idempotent, and safe when two processes run it at once: the second waits on the lock
    (one per tree), then finds it done.  A reader sees no tree or a whole one."""
    with exclusive(dest.parent / f".{dest.name}.lock"):
        if is_provisioned(dest) and keep():
            return dest, False
        tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
        for stale in dest.parent.glob(f".{dest.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)   # a killed earlier run
        run_git(dest.parent, "init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(tmp))
        try:
            release = import_into(tmp)
            run_git(tmp, "tag", f"v{release}", BRANCH)
            if dest.exists():      # --update: the old tree goes only once the new one is whole
                old = dest.parent / f".{dest.name}.old-{os.getpid()}"
                os.rename(dest, old)
                os.rename(tmp, dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, dest)   # atomic: a reader sees no tree or a whole one
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest, True


Say = Callable[[str], None]   # a one-line note for the user (a version other than the verified)


def init_default_tree(progress: Progress | None = None, update: bool = False,
                      say: Say | None = None) -> tuple[Path, bool]:
    """Provision the default tree (kernels.DEFAULT); returns (path, created).  With MMREVIEW_LINUX_TARBALL
    set, that tarball is imported instead, into the tree its release names."""
    env = os.environ.get(TARBALL_ENV)
    if env:
        return init_tarball(Path(env), progress, from_env=True)
    return init_kernel(kernels.DEFAULT, progress, update=update, say=say)


def init_kernel(name: str, progress: Progress | None = None, update: bool = False,
                say: Say | None = None) -> tuple[Path, bool]:
    """Provision kernel `name` (see kernel/table.py) into trees/linux-<name>.git; (path, created).

    Its .deb is fetched with a private apt configuration under the cache: the version the table
    says was verified while Debian serves it (else the newest, said through `say`), or with
    update=True the newest, replacing a tree of another version.  The tarball is streamed out of
    the .deb into the import, and the .deb deleted once the tree is in place."""
    kernel = kernels.get(name)
    dest = tree_path(kernel.name)
    debs = apt_dir(kernel.package)

    def from_debian(tmp: Path) -> str:
        deb = kernels.fetch_deb(kernel, debs, progress, newest=update)
        if deb.note and say:
            say(deb.note)
        with kernels.tarball_in_deb(deb.path, kernel.tarball) as (fh, size):
            release = _fast_import(fh, size, tmp, deb.package, deb.version, kernel.tarball, progress)
        if kernel_name(release) != kernel.name:
            raise InfraError(str(deb.path), f"holds Linux {release}, not {kernel.name}")
        # The tree now holds every file of it; keeping the 140-170 MB .deb too would double the
        # cache for a re-import that only a deleted tree needs (and that fetches it again).
        deb.path.unlink(missing_ok=True)
        return release

    def keep() -> bool:
        if not update:
            return True
        newest = kernels.served_versions(kernel, debs)[:1]
        return debian_version(dest) in newest

    return _provision(dest, from_debian, keep)


def debian_version(path: Path) -> str | None:
    """The Debian package version a provisioned tree was imported from (its commit says)."""
    proc = run_git(path, "log", "-1", "--format=%b", BRANCH, check=False)
    m = re.search(r"from Debian \S+ (\S+) \(", proc.stdout.decode("utf-8", "replace")) \
        if proc.returncode == 0 else None
    return m.group(1) if m else None


def tarball_release(path: Path) -> str:
    """The release a kernel source tarball's top-level Makefile names (reads only up to it)."""
    try:
        with tarfile.open(path, mode="r|*") as tf:
            for member in tf:
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == "Makefile" and member.isfile():
                    fh = tf.extractfile(member)
                    release = _kernel_release(fh.read() if fh else b"")
                    if kernel_name(release) is None:
                        raise BadInput(str(path), "its top-level Makefile names no VERSION/PATCHLEVEL")
                    return release
    except (tarfile.TarError, EOFError) as exc:
        raise BadInput(str(path), f"not a readable tar archive: {exc}") from None
    raise BadInput(str(path), "no top-level Makefile: not a kernel source tarball")


def init_tarball(path: Path, progress: Progress | None = None,
                 from_env: bool = False) -> tuple[Path, bool]:
    """Import a kernel source tarball into trees/linux-<VERSION.PATCHLEVEL of its Makefile>.git."""
    subject = f"{TARBALL_ENV}={path}" if from_env else str(path)
    if not path.is_file():
        raise (InfraError if from_env else BadInput)(subject, "no such file")
    release = tarball_release(path)            # reads up to the top-level Makefile: a second or two
    dest = tree_path(kernel_name(release) or "")
    owner = _owning_package(path)

    def from_file(tmp: Path) -> str:
        with open(path, "rb") as fh:
            if owner:
                return _fast_import(fh, path.stat().st_size, tmp, owner[0], owner[1],
                                    str(path.resolve()), progress)
            return _fast_import(fh, path.stat().st_size, tmp, None, None, path.name, progress)

    return _provision(dest, from_file)


def list_trees(refresh: bool = False) -> list[dict]:
    """Every known kernel, and any other tree provisioned from a tarball: what `tree list` shows.

    `served` is what Debian serves of the kernel, newest first, as the private apt lists say: as
    of the last fetch, or fetched now with refresh=True (network)."""
    names = set(kernels.KERNELS)
    if trees_dir().is_dir():
        for p in trees_dir().glob("linux-*.git"):
            name = p.name[len("linux-"):-len(".git")]
            if kernels.NAME_RE.match(name) and (p / "HEAD").exists():
                names.add(name)
    rows = []
    for name in sorted(names, key=kernels.version_key):
        p = tree_path(name)
        k = kernels.KERNELS.get(name)
        row = {"kernel": name, "default": name == kernels.DEFAULT, "known": k is not None,
               "package": k.package if k else None, "source": k.source if k else "a tarball",
               "provisioned": False, "release": None, "commit": None, "debian_version": None,
               "verified": k.verified or None if k else None, "served": [], "newer": None,
               "path": str(p)}
        if (p / "HEAD").exists():
            proc = run_git(p, "log", "-1", "--format=%H%x00%s%x00%b", BRANCH, check=False)
            if proc.returncode == 0 and proc.stdout:
                sha, subject, body = proc.stdout.decode("utf-8", "replace").split("\0", 2)
                row.update(provisioned=True, commit=sha.strip(),
                           release=subject[len("Linux "):] if subject.startswith("Linux ") else subject)
                m = re.search(r"from Debian (\S+) (\S+) \(", body)
                if m:
                    row.update(package=m.group(1), debian_version=m.group(2))
        if k is not None and (refresh or (apt_dir(k.package) / "lists").is_dir()):
            row["served"] = kernels.served_versions(k, apt_dir(k.package), refresh)
            if row["served"] and row["debian_version"] and row["served"][0] != row["debian_version"]:
                row["newer"] = row["served"][0]
        rows.append(row)
    return rows
