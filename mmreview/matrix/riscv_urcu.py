"""liburcu for riscv64, built from Debian's own source package.

bookworm has no riscv64 architecture, so there is no liburcu-dev:riscv64 to
install.  The suites need only liburcu's headers and a library to link, so we
fetch Debian's `liburcu` source package with apt (a private source list holding
one deb-src line: the system's sources are never touched), unpack it with
dpkg-source (which applies Debian's patches and checks the tarballs against the
.dsc, whose own hash apt checked against the signed Sources index), and
cross-build a static library with riscv64-linux-gnu-gcc into

    <cache>/toolchains/riscv64/liburcu-<debian version>/{include,lib}

A static liburcu.a is self-contained (it carries compat_futex.o too), so the
suites' own `-lurcu -lpthread` links with just `-L<prefix>/lib`, and the
binaries need nothing beyond the cross sysroot's libc under qemu-riscv64 -L.

A prefix counts as built only when its stamp file (written last) matches the
current recipe; a lock serialises builds across processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

from mmreview.common import apt as aptpolicy
from mmreview.kernel import privateapt
from mmreview.common.filelock import exclusive
from mmreview.common.errors import InfraError
from mmreview.common.paths import toolchains_dir

SUBJECT = "riscv64 liburcu"
SOURCE_PACKAGE = "liburcu"
DEB_SRC_LINE = "deb-src http://deb.debian.org/debian bookworm main"   # signed-by: privateapt
TRIPLET = "riscv64-linux-gnu"
CC = f"{TRIPLET}-gcc"
SYSROOT = Path(f"/usr/{TRIPLET}")
# debian/rules passes --disable-compiler-tls on riscv64; static because nothing
# on this machine could load a riscv64 liburcu.so without extra -L/rpath care.
# Maintainer mode off: Debian's patches touch Makefile.am files (sh4 headers,
# tests) and we must not need automake to rebuild Makefile.in.
CONFIGURE_FLAGS = ["--disable-shared", "--enable-static", "--disable-compiler-tls",
                   "--disable-maintainer-mode", "--disable-dependency-tracking"]
LIB_SUBDIRS = ("include", "src")
RECIPE = 2             # bump when the build recipe changes: older prefixes are rebuilt
STAMP = "mmreview-build.json"
# What a prefix must hold for the suites (urcu.h and the static library).
REQUIRED = ("include/urcu.h", "include/urcu/config.h", "lib/liburcu.a")
# Commands this needs, and the Debian package that provides each.
TOOLS = {CC: "gcc-riscv64-linux-gnu", "apt-get": "apt", "dpkg-source": "dpkg-dev",
         "make": "make"}

Progress = Callable[[str, int, int], None]


def toolchain_dir() -> Path:
    return toolchains_dir() / "riscv64"


def _stamp(prefix: Path) -> dict | None:
    try:
        data = json.loads((prefix / STAMP).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("recipe") != RECIPE:
        return None
    if not all((prefix / rel).is_file() for rel in REQUIRED):
        return None
    return data


def _version_key(v: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"[.\-+~]", v)]


def riscv64_liburcu_prefix() -> Path | None:
    """The prefix of an already built, valid liburcu for riscv64 (newest), else None."""
    base = toolchain_dir()
    if not base.is_dir():
        return None
    found = []
    for p in base.glob(f"{SOURCE_PACKAGE}-*"):
        data = _stamp(p) if p.is_dir() else None
        if data is not None:
            found.append((_version_key(str(data.get("version", ""))), p))
    return max(found)[1] if found else None


def build_info(prefix: Path) -> dict:
    """What went into a built prefix (version, .dsc hash, flags, compiler): for cache keys."""
    data = _stamp(prefix)
    if data is None:
        raise InfraError(SUBJECT, f"{prefix} is not a complete liburcu build")
    return data


def cflags(prefix: Path) -> list[str]:
    """Compiler flags for the suites' CFLAGS (after their own -I flags)."""
    return [f"-I{prefix / 'include'}"]


def ldflags(prefix: Path) -> list[str]:
    """Library path for linking.  Put it in LDLIBS (before -lpthread -lurcu), not only
    LDFLAGS: tools/testing/vma's link rule is `$(CC) $(CFLAGS) -o $@ $(OFILES) $(LDLIBS)`."""
    return [f"-L{prefix / 'lib'}"]




def ensure_riscv64_liburcu(progress: Progress | None = None) -> Path:
    """The liburcu prefix for riscv64, built once from Debian's source package if needed.

    Raises InfraError (one line) when a tool is missing or a step fails; the
    step's full output stays in <toolchains>/riscv64/liburcu-build.log."""
    prefix = riscv64_liburcu_prefix()
    if prefix is not None:
        return prefix
    _check_tools()
    base = toolchain_dir()
    with exclusive(base / f"{SOURCE_PACKAGE}.lock"):
        prefix = riscv64_liburcu_prefix()     # another process may have built it meanwhile
        if prefix is not None:
            return prefix
        return _Builder(base, progress).run()


def _check_tools() -> None:
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise InfraError(SUBJECT, f"missing tools; install them with: apt-get install {' '.join(missing)}")
    if not (SYSROOT / "include" / "stdio.h").is_file():
        raise InfraError(SUBJECT, f"no riscv64 C library in {SYSROOT}; install it with: "
                                  "apt-get install libc6-dev-riscv64-cross")


class _Builder:
    STEPS = ("fetch source (apt)", "unpack (dpkg-source)", "configure", "build", "install")

    def __init__(self, base: Path, progress: Progress | None):
        self.base = base
        self.progress = progress or (lambda what, done, total: None)
        self.work = base / f"{SOURCE_PACKAGE}-work"
        self.log = base / f"{SOURCE_PACKAGE}-build.log"

    def run(self) -> Path:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self.log.write_text("")
        n = len(self.STEPS)
        self._step(0)
        dsc = self._fetch()
        version = _dsc_field(dsc, "Version")
        prefix = self.base / f"{SOURCE_PACKAGE}-{version}"
        shutil.rmtree(prefix, ignore_errors=True)      # an incomplete or outdated build
        self._step(1)
        src = self.work / "src"
        self._run(["dpkg-source", "-x", dsc.name, str(src)], cwd=dsc.parent, what="dpkg-source -x")
        self._step(2)
        build = self.work / "build"
        build.mkdir()
        self._run([str(src / "configure"), f"--host={TRIPLET}", f"--prefix={prefix}",
                   *CONFIGURE_FLAGS, f"CC={CC}"], cwd=build, what="configure")
        self._step(3)
        # Only the headers and the libraries: `make all` would also build the
        # test and benchmark programs, doubling the time for nothing we use.
        jobs = f"-j{os.cpu_count() or 1}"
        for sub in LIB_SUBDIRS:
            self._run(["make", jobs, "-C", sub], cwd=build, what=f"make -C {sub}", timeout=3600)
        self._step(4)
        try:
            for sub in LIB_SUBDIRS:
                self._run(["make", "-C", sub, "install"], cwd=build, what=f"make -C {sub} install")
            missing = [rel for rel in REQUIRED if not (prefix / rel).is_file()]
            if missing:
                raise InfraError(SUBJECT, f"make install left no {', '.join(missing)} in {prefix}")
        except BaseException:
            shutil.rmtree(prefix, ignore_errors=True)
            raise
        stamp = {
            "recipe": RECIPE, "package": SOURCE_PACKAGE, "version": version,
            "dsc_sha256": hashlib.sha256(dsc.read_bytes()).hexdigest(),
            "configure": CONFIGURE_FLAGS, "cc": CC, "cc_version": _cc_version(),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        tmp = prefix / (STAMP + ".tmp")
        tmp.write_text(json.dumps(stamp, indent=1) + "\n")
        tmp.replace(prefix / STAMP)                    # written last: the prefix is now valid
        shutil.rmtree(self.work, ignore_errors=True)
        self.progress("done", n, n)
        return prefix

    def _step(self, i: int) -> None:
        self.progress(self.STEPS[i], i, len(self.STEPS))

    def _fetch(self) -> Path:
        """apt-get update + source --download-only against a private list of one deb-src line."""
        opts = privateapt.prepare(self.work / "apt", [DEB_SRC_LINE])
        dl = self.work / "download"
        dl.mkdir()
        privateapt.give_to_apt_sandbox(dl)
        self._apt([*opts, "update"], cwd=self.work, what="apt-get update", package=SUBJECT)
        self._apt([*opts, "source", "--download-only", SOURCE_PACKAGE], cwd=dl,
                  what="apt-get source", package=SOURCE_PACKAGE)
        dscs = sorted(dl.glob(f"{SOURCE_PACKAGE}_*.dsc"))
        if len(dscs) != 1:
            raise InfraError(SUBJECT, f"apt-get source gave {len(dscs)} .dsc files in {dl}")
        return dscs[0]

    def _apt(self, args: list[str], cwd: Path, what: str, package: str) -> None:
        """apt-get, tried again on a mirror caught mid-sync (mmreview.common.apt)."""
        def attempt() -> tuple[int, str]:
            start = self.log.stat().st_size
            rc = self._run(aptpolicy.argv("apt-get", *args), cwd=cwd, what=what, timeout=600,
                           check=False)
            return rc, self.log.read_bytes()[start:].decode(errors="replace")
        aptpolicy.run(attempt, what, [package])

    def _run(self, argv: list[str], cwd: Path, what: str, timeout: float = 1800,
             check: bool = True) -> int:
        env = {**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
        with open(self.log, "a") as log:
            log.write(f"$ cd {cwd} && {' '.join(argv)}\n")
            log.flush()
            try:
                proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise InfraError(SUBJECT, f"{what} took over {timeout:.0f} s; log: {self.log}") from None
            except OSError as exc:
                raise InfraError(SUBJECT, f"{what}: {exc.strerror}") from None
        if check and proc.returncode != 0:
            raise InfraError(SUBJECT, f"{what} failed (exit {proc.returncode}): "
                                      f"{_last_error(self.log)}; log: {self.log}")
        return proc.returncode


def _dsc_field(dsc: Path, name: str) -> str:
    m = re.search(rf"^{name}:\s*(\S+)\s*$", dsc.read_text(errors="replace"), re.M)
    if not m:
        raise InfraError(SUBJECT, f"{dsc.name} has no {name} field")
    return m.group(1)


def _cc_version() -> str:
    out = subprocess.run([CC, "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else ""


def _last_error(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.search(r"error|^E:|cannot|not found|failed", ln, re.I) and not ln.startswith("$ "):
            return ln[:200]
    return lines[-1][:200] if lines else "no output"
