"""The kernels mmreview can provision, and fetching their Debian linux-source package.

Which Debian suite(s) each kernel comes from is data: `KERNELS` below, with the
default (`DEFAULT`): the one place either is written.  Every kernel's .deb is
fetched with a private apt configuration under the cache directory (its own sources list signed by Debian's archive keyring, its
own lists, archives and no package caches), so the system's apt sources,
lists and caches are never touched.  apt checks the .deb against the signed
Release file as for any install.  Only `usr/src/linux-source-X.tar.xz` is then
read out of the .deb, streamed (`dpkg-deb --fsys-tarfile`), never unpacked.

Debian moves: a security update replaces 6.12.117 with 6.12.118 within a week.  So a kernel
names the Debian version this project was last verified on (`verified`), and `tree init` fetches
exactly that while the archive still serves it (bookworm-security keeps the older versions), so
every machine gets the same commit; when the archive no longer has it, the newest of the line is
taken and said in one line.  `tree init --update` moves a tree to the newest on purpose.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from mmreview.common import apt as aptpolicy
from mmreview.kernel import privateapt
from mmreview.common.errors import BadInput, InfraError

Progress = Callable[[str, int, int], None]   # (what, done, total)

DEBIAN = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"


@dataclass(frozen=True)
class Kernel:
    name: str                              # VERSION.PATCHLEVEL, e.g. "7.3"
    suites: tuple[tuple[str, str], ...]    # (archive URI, suite), component main
    verified: str = ""                     # Debian version last verified here; "" = the newest served

    @property
    def package(self) -> str:
        return f"linux-source-{self.name}"

    @property
    def tarball(self) -> str:
        """Where the package installs its tarball (and what the import records)."""
        return f"/usr/src/linux-source-{self.name}.tar.xz"

    @property
    def source(self) -> str:
        return ", ".join(suite for _, suite in self.suites)


DEFAULT = "6.12"
# The one kernel table.  `verified` is what the README's measurements and the tests were last run
# on; sid and backports keep only their newest version, so a pin there holds only until it moves.
KERNELS: dict[str, Kernel] = {k.name: k for k in (
    Kernel("6.1", ((SECURITY, "bookworm-security"), (DEBIAN, "bookworm")), verified="6.1.192-3"),
    Kernel("6.12", ((SECURITY, "bookworm-security"), (DEBIAN, "bookworm")),
           verified="6.12.117-1~deb12u1"),
    Kernel("7.2", ((DEBIAN, "sid"),)),
    Kernel("7.3", ((DEBIAN, "trixie-backports"),), verified="7.3.4-1~bpo13+1"),
)}

NAME_RE = re.compile(r"^\d+\.\d+$")


def version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in name.split("."))


def known() -> list[str]:
    return sorted(KERNELS, key=version_key)


def known_text() -> str:
    return ", ".join(f"{n} (default)" if n == DEFAULT else n for n in known())


def get(name: str) -> Kernel:
    """The kernel named `name`; BadInput naming the known ones otherwise."""
    k = KERNELS.get(name.strip())
    if k is None:
        raise BadInput(f"kernel {name}", f"unknown; known kernels: {known_text()}")
    return k


# ---------------------------------------------------------------- fetching

@dataclass
class Deb:
    path: Path
    package: str
    version: str
    note: str = ""      # said to the user when this is not the version asked for


class _Apt:
    """apt-get / apt-cache against a private configuration in `base`."""

    def __init__(self, kernel: Kernel, base: Path):
        self.kernel = kernel
        self.base = base
        self.log = base / "apt.log"
        self.download = base / "download"
        self.opts: list[str] = []

    def setup(self) -> None:
        self.opts = privateapt.prepare(
            self.base, [f"deb {uri} {suite} main" for uri, suite in self.kernel.suites])
        self.download.mkdir(exist_ok=True)
        privateapt.give_to_apt_sandbox(self.download)
        self.log.write_text("")

    def options(self) -> list[str]:
        return self.opts

    def start(self, tool: str, *args: str, cwd: Path) -> tuple[subprocess.Popen, object]:
        argv = aptpolicy.argv(tool, *self.options(), *args)
        env = {**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
        log = open(self.log, "a")
        log.write(f"$ cd {cwd} && {' '.join(argv)}\n")
        log.flush()
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT)
        except OSError as exc:
            log.close()
            raise InfraError(self.kernel.package, f"{tool}: {exc.strerror}") from None
        return proc, log

    def attempt(self, tool: str, *args: str, cwd: Path, timeout: float | None = None,
                waiting: Callable[[], None] = lambda: None) -> tuple[int, str]:
        """One run of an apt tool for common/apt.run: its exit status and this run's output
        (the log keeps every run); `waiting` is called while it runs (progress)."""
        start = self.log.stat().st_size if self.log.exists() else 0
        proc, log = self.start(tool, *args, cwd=cwd)
        deadline = None if timeout is None else time.monotonic() + timeout
        with log:
            while proc.poll() is None:
                if deadline is not None and time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    raise InfraError(self.kernel.package, f"{tool} took over {timeout:.0f} s; log: {self.log}")
                waiting()
                time.sleep(0.5)
        return proc.returncode, self.log.read_bytes()[start:].decode(errors="replace")

    def versions(self) -> list[str]:
        """Every version of the package the private lists hold, newest first (apt's order)."""
        proc = subprocess.run(aptpolicy.argv("apt-cache", *self.options(), "madison", self.kernel.package),
                              capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
        out = []
        for line in proc.stdout.splitlines():
            cols = [c.strip() for c in line.split("|")]
            if len(cols) >= 2 and cols[0] == self.kernel.package and cols[1] not in out:
                out.append(cols[1])
        return out

    def show(self, version: str) -> dict[str, str]:
        """That version's fields (Version, Size, Filename)."""
        proc = subprocess.run(aptpolicy.argv("apt-cache", *self.options(), "show",
                                             f"{self.kernel.package}={version}"), capture_output=True, text=True,
                              env={**os.environ, "LC_ALL": "C"})
        # apt takes a name it does not know as a pattern ("linux-source-6.1" matches 6.12): only a
        # stanza of exactly this package counts.
        fields: dict[str, str] = {}
        for stanza in proc.stdout.split("\n\n"):
            f = dict(re.findall(r"^([A-Za-z0-9-]+): ?(.*)$", stanza, re.M))
            if f.get("Package") == self.kernel.package and f.get("Version") == version:
                fields = f
                break
        if proc.returncode != 0 or not fields:
            why = (proc.stderr.strip().splitlines() or ["no such package"])[-1]
            raise InfraError(self.kernel.package, f"apt-cache show: not in {self.kernel.source}: {why}")
        return fields


def _update(apt: _Apt) -> None:
    """apt-get update of the private lists.  --error-on=any: an index that failed to download is
    an error, not a warning (apt would go on with no list, then find nothing, or worse, match the
    name as a pattern).  Tried again as every apt run is (common/apt.py: a mirror mid-sync)."""
    aptpolicy.run(lambda: apt.attempt("apt-get", "update", "--error-on=any", cwd=apt.base, timeout=600),
                  f"apt-get update ({apt.kernel.source})", [apt.kernel.package])


def served_versions(kernel: Kernel, base: Path, refresh: bool = True) -> list[str]:
    """The versions Debian serves of `kernel`'s package, newest first, through the private apt in
    `base`.  refresh=False reads the lists the last fetch left (no network; [] if there are none)."""
    apt = _Apt(kernel, base)
    apt.setup()
    if refresh:
        _update(apt)
    return apt.versions()


def choose_version(kernel: Kernel, served: list[str], newest: bool = False) -> tuple[str, str]:
    """(version to fetch, a note for the user or ""): the verified one while Debian serves it."""
    if not served:
        raise InfraError(kernel.package, f"apt-cache: not in {kernel.source}")
    if newest or not kernel.verified:
        return served[0], ""
    if kernel.verified in served:
        return kernel.verified, ""
    return served[0], (f"Debian no longer serves {kernel.package} {kernel.verified}, the version "
                       f"mmreview was verified on; taking {served[0]}, the newest it serves")


def fetch_deb(kernel: Kernel, base: Path, progress: Progress | None = None,
              newest: bool = False) -> Deb:
    """Download `kernel`'s linux-source .deb into `base`/download with a private apt in `base`:
    the verified version while the archive has it, else (or with newest=True) the newest.

    A .deb already there with the right hash is kept (apt checks it): a run killed after the
    download does not fetch it again.  Raises InfraError naming the step that failed."""
    progress = progress or (lambda what, done, total: None)
    apt = _Apt(kernel, base)
    apt.setup()
    progress(f"apt-get update ({kernel.source})", 0, 1)
    _update(apt)
    version, note = choose_version(kernel, apt.versions(), newest)
    fields = apt.show(version)
    size = int(fields.get("Size", "0") or 0)
    name = Path(fields.get("Filename", "")).name or f"{kernel.package}_{version}_all.deb"
    for old in apt.download.iterdir():          # an older version's .deb, a partial download
        if old.name != name:
            _remove(old)
    what = f"apt-get download {kernel.package} {version}"

    def download() -> tuple[int, str]:
        return apt.attempt("apt-get", "download", f"{kernel.package}={version}", cwd=apt.download,
                           waiting=lambda: progress(what, min(_du(apt.download), size), size))
    aptpolicy.run(download, what, [kernel.package])     # again, on a mirror caught mid-sync
    progress(what, size, size)
    debs = sorted(apt.download.glob(f"{kernel.package}_*.deb"))
    if len(debs) != 1:
        raise InfraError(kernel.package, f"apt-get download left {len(debs)} .deb files in {apt.download}")
    got = _deb_field(debs[0], "Version")
    if _deb_field(debs[0], "Package") != kernel.package or got != version:
        raise InfraError(str(debs[0]), f"is not {kernel.package} {version}")
    return Deb(debs[0], kernel.package, version, note)


@contextmanager
def tarball_in_deb(deb: Path, member: str) -> Iterator[tuple[BinaryIO, int]]:
    """Stream one file of a .deb's data: yields (readable, size); nothing is written to disk."""
    want = "./" + member.lstrip("/")
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tf:
            for m in tf:
                if m.name in (want, want[2:]) and m.isfile():
                    fh = tf.extractfile(m)
                    assert fh is not None
                    yield fh, m.size
                    return
        proc.wait()
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        raise InfraError(str(deb), (err.splitlines() or [f"has no {member}"])[-1])
    except tarfile.TarError as exc:
        raise InfraError(str(deb), f"reading {member}: {exc}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


# ---------------------------------------------------------------- helpers

def _deb_field(deb: Path, field: str) -> str:
    proc = subprocess.run(["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True)
    if proc.returncode != 0:
        raise InfraError(str(deb), f"dpkg-deb -f: {(proc.stderr.strip().splitlines() or ['failed'])[-1]}")
    return proc.stdout.strip()


def _du(d: Path) -> int:
    total = 0
    for root, _, files in os.walk(d):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)
