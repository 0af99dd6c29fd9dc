"""Target architectures as data: one `mmreview/matrix/targets/<name>.toml` each (tuxmake's arch/*.ini).

Adding an architecture is adding one file.  A Target knows its compiler, word
size, endianness, how to run a binary (natively or under qemu-user), which
sanitizers its runtime supports, and which Debian packages provide it;
`availability()` says whether this machine has all of that and, if not, the
exact apt command that provides the rest.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from mmreview.common.errors import BadInput

TARGETS_DIR = Path(__file__).parent
RISCV_URCU_HINT = "liburcu for riscv64 not built (run `mmreview setup --arch riscv64`)"


@dataclass(frozen=True)
class Target:
    name: str
    aliases: tuple[str, ...]
    cc: str
    cflags: tuple[str, ...]          # "{src}" is replaced by the exported source directory
    ldflags: tuple[str, ...]
    make_vars: tuple[tuple[str, str], ...]
    word_size: int
    endian: str
    runner: tuple[str, ...]          # empty: native
    sanitizers: tuple[str, ...]
    dpkg_arch: str
    triplet: str
    packages: tuple[str, ...]
    timeout_factor: float = 1.0
    slowdown: float = 1.0            # run time here / natively on x86_64: only orders the work
    tree_paths: tuple[str, ...] = ()  # extra kernel paths this target's build needs
    urcu: str = "multiarch"          # "multiarch" | "riscv_urcu"
    source: str = ""                 # the .toml text, part of the cache key

    @property
    def native(self) -> bool:
        return not self.runner

    @property
    def runner_binary(self) -> str | None:
        return self.runner[0] if self.runner else None

    def summary(self) -> str:
        how = "native" if self.native else " ".join(self.runner)
        return f"{self.word_size}-bit {self.endian}-endian, {self.cc}, {how}"


def _load(path: Path) -> Target:
    text = path.read_text()
    d = tomllib.loads(text)
    try:
        return Target(
            name=d["name"], aliases=tuple(d.get("aliases", ())), cc=d["cc"],
            cflags=tuple(d.get("cflags", ())), ldflags=tuple(d.get("ldflags", ())),
            make_vars=tuple(sorted(d.get("make_vars", {}).items())),
            word_size=int(d["word_size"]), endian=d["endian"], runner=tuple(d.get("runner", ())),
            sanitizers=tuple(d.get("sanitizers", ())), dpkg_arch=d.get("dpkg_arch", ""),
            triplet=d["triplet"], packages=tuple(d.get("packages", ())),
            timeout_factor=float(d.get("timeout_factor", 1.0)),
            slowdown=float(d.get("slowdown", 1.0)),
            tree_paths=tuple(d.get("tree_paths", ())), urcu=d.get("urcu", "multiarch"), source=text)
    except KeyError as exc:
        raise BadInput(str(path), f"target file lacks {exc.args[0]!r}") from None


@functools.cache
def all_targets() -> tuple[Target, ...]:
    """Every target, in a fixed order: natives first, then qemu ones, each by name."""
    ts = [_load(p) for p in sorted(TARGETS_DIR.glob("*.toml"))]
    return tuple(sorted(ts, key=lambda t: (not t.native, t.name != "x86_64", t.name)))


def get_target(name: str) -> Target:
    key = name.strip().lower()
    for t in all_targets():
        if key == t.name or key in t.aliases:
            return t
    raise BadInput(f"--arch {name}", "unknown architecture (known: "
                   + ", ".join(t.name for t in all_targets()) + ")")


def parse_arch_list(spec: str | None) -> list[Target]:
    """`--arch a,b` (names or aliases; 'all' or None: every target)."""
    if not spec or spec.strip().lower() == "all":
        return list(all_targets())
    seen: dict[str, Target] = {}
    for part in spec.split(","):
        if part.strip():
            t = get_target(part)
            seen.setdefault(t.name, t)
    if not seen:
        raise BadInput("--arch", "names no architecture")
    return list(seen.values())


# ---------------------------------------------------------------- availability

@dataclass
class Availability:
    target: str
    available: bool
    reason: str = ""                 # what is missing, in a phrase
    missing_packages: list[str] = field(default_factory=list)
    apt_command: str = ""            # the exact command that provides what is missing
    sanitizers: list[str] = field(default_factory=list)   # those the runtime here supports
    urcu_prefix: str = ""            # riscv64: where mmreview's liburcu is

    def to_json(self) -> dict:
        return dict(self.__dict__)

    def explained(self) -> str:
        """What is missing and the command that provides it: how every report and error says it."""
        return self.reason + (f" (provide it with: {self.apt_command})" if self.apt_command else "")


@dataclass
class TargetInfo:
    """A target as a review saw it (the Review's `targets`): available here or on the cluster's
    workers, with which sanitizers; if not, why and what provides it."""
    name: str
    available: bool
    sanitizers: list[str] = field(default_factory=list)
    reason: str = ""

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def of(cls, a: Availability) -> "TargetInfo":
        return cls(name=a.target, available=a.available,
                   sanitizers=list(a.sanitizers) if a.available else [], reason=a.explained())


def _pkg_installed(pkg: str) -> bool:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return proc.returncode == 0 and "install ok installed" in proc.stdout


def foreign_architectures() -> set[str]:
    proc = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True, text=True)
    return set(proc.stdout.split()) if proc.returncode == 0 else set()


def apt_command(target: Target, missing: list[str]) -> str:
    if not missing:
        return ""
    native_arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                                 text=True).stdout.strip()
    steps = []
    if target.dpkg_arch and target.dpkg_arch != native_arch \
            and target.dpkg_arch not in foreign_architectures():
        steps.append(f"dpkg --add-architecture {target.dpkg_arch}")
        steps.append("apt-get update")
    steps.append("apt-get install -y " + " ".join(missing))
    return " && ".join(steps)


def riscv_urcu_prefix() -> Path | None:
    """The riscv64 liburcu prefix mmreview.matrix.riscv_urcu built, if it did."""
    from mmreview.matrix import riscv_urcu
    try:
        return riscv_urcu.riscv64_liburcu_prefix()
    except Exception:             # a half-built prefix is "not built"
        return None


def _urcu_files(target: Target) -> list[Path]:
    return [Path("/usr/include") / target.triplet / "urcu.h",
            Path("/usr/lib") / target.triplet / "liburcu.so"]


def _sanitizer_runtime(target: Target) -> list[str]:
    """The sanitizers whose runtime library is installed for this target."""
    libs = {"address": "libasan.so.8", "undefined": "libubsan.so.1"}
    return [s for s in target.sanitizers
            if (Path("/usr/lib") / target.triplet / libs.get(s, "")).exists()]


def availability(target: Target) -> Availability:
    problems = []
    if shutil.which(target.cc) is None:
        problems.append(f"{target.cc} not found")
    if target.runner_binary and shutil.which(target.runner_binary) is None:
        problems.append(f"{target.runner_binary} not found")
    prefix = ""
    if target.urcu == "riscv_urcu":
        p = riscv_urcu_prefix()
        if p is None:
            problems.append(RISCV_URCU_HINT)
        else:
            prefix = str(p)
    elif not all(f.exists() for f in _urcu_files(target)):
        problems.append(f"liburcu-dev:{target.dpkg_arch} not installed")
    if target.runner and target.urcu == "multiarch":
        # The multiarch loader qemu finds without -L (from libc6:<arch>).
        if not (Path("/usr/lib") / target.triplet / "libc.so.6").exists():
            problems.append(f"libc6:{target.dpkg_arch} not installed")
    missing = [p for p in target.packages if not _pkg_installed(p)] if problems else []
    sans = _sanitizer_runtime(target)
    return Availability(target=target.name, available=not problems, reason="; ".join(problems),
                        missing_packages=missing, apt_command=apt_command(target, missing),
                        sanitizers=sans, urcu_prefix=prefix)


@functools.cache
def compiler_version(cc: str) -> str:
    proc = subprocess.run([cc, "--version"], capture_output=True, text=True)
    return proc.stdout.splitlines()[0] if proc.returncode == 0 and proc.stdout else "unknown"


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
