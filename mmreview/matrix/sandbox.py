"""Confinement of everything a series builds or runs: bubblewrap, as Flatpak uses it.

A series is code from a stranger: its Makefiles run at build time, its tests at run
time.  Each such process runs under `bwrap` with

- no network (`--unshare-net`: a loopback of its own, nothing listens there),
- the least view (`_least_view`): what builds and runs read, measured by
  benchmarks/sandbox_view.py (VIEW_*: /usr's toolchain directories, the cross
  sysroots, a few named /etc files, the CPU list), and nothing else of the host,
- write access only to its own build directory, plus a private /tmp and $HOME that
  mmreview looks into afterwards (`Jail.escapes`): a test or Makefile that left files
  there, opened a network connection, or tried to write anywhere else, tried to reach
  outside, and its cell says so,
- its own pid namespace whose pid 1 is mmreview's (jailinit.py, arguments in a file: no
  host command line or environment in /proc/1), which sets the resource limits (CPU
  seconds, file size, processes, and address space where no sanitizer needs terabytes
  of shadow), hears every write outside the build directory through a seccomp user
  notification, and reports on a descriptor only mmreview holds; a timeout or Ctrl-C
  kills everything it started; a clean environment (PATH /usr/bin:/bin).

Run as root (a CI bot), the sandboxed process also drops to `nobody` (setpriv) so it
cannot read what only root may read; the directories it writes are given to nobody.

When bwrap or python3-seccomp is missing, or namespaces cannot be made, the matrix
refuses to run series code, unless the user passed --no-sandbox (`require`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from mmreview.common.errors import InfraError

NOBODY = 65534
BUILD_TIMEOUT = 900.0           # seconds for one suite's build (measured 2-30 s; a hang ends here)
INSTALL_HINT = "install it with `apt-get install bubblewrap python3-seccomp` (or `mmreview setup`)"

# The least view: what builds and runs read, measured with benchmarks/sandbox_view.py (strace of a
# build and a run of every target on 6.1, 6.12 and 7.3), and nothing else of the host.
VIEW_USR = ("bin", "lib", "lib64", "include")   # the toolchains, their libraries and headers
VIEW_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives")   # the loader, ld, /usr/bin/cc...
VIEW_SYS = ("/sys/devices/system/cpu",)     # how many CPUs (liburcu, sysconf)
MERGED_USR = ("bin", "lib", "lib64", "lib32", "libx32", "sbin")
PATH = "/usr/bin:/bin"
RUN = "/run/mmreview"                        # the wrapper and its arguments, read-only
# MMREVIEW_SANDBOX_VIEW=full: the view before the least one (`--ro-bind / /` with private
# directories hidden), for benchmarks/matrix.py to compare costs; never for a review.
VIEW_ENV = "MMREVIEW_SANDBOX_VIEW"
_PRIVATE = ("/tmp", "/var/tmp", "/run", "/home", "/root", "/mnt", "/media", "/srv")

_WRAPPER = (Path(__file__).with_name("jailinit.py")).read_text()
# What the sandbox is, for the result cache's key: a change to what a series sees or to how its
# attempts are heard changes what a cell's result says, so results cached before it are not reused.
CONFINEMENT = "bwrap-" + hashlib.sha256(_WRAPPER.encode() + Path(__file__).read_bytes()).hexdigest()[:12]

# Counters of the sandbox's own network namespace that mean "it tried to talk to someone".
_NET_ATTEMPTS = {"Tcp:ActiveOpens": "TCP connection", "Udp:OutDatagrams": "UDP datagram",
                 "Udp6OutDatagrams": "UDP datagram", "UdpLite:OutDatagrams": "UDP datagram",
                 "Icmp:OutEchos": "ping"}


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 0            # per process (RLIMIT_CPU); 0: none
    file_bytes: int = 1 << 30       # no file (the log included) past 1 GiB
    address_bytes: int = 0          # 0: none (ASan reserves terabytes of address space)
    processes: int = 1024           # beyond what the sandbox's user already runs


@dataclass
class Sandbox:
    """How this review runs series code: confined by bwrap, or (opted out) not."""
    confined: bool
    tool: str = ""                  # "bubblewrap 0.8.0"
    as_nobody: bool = False         # mmreview runs as root: the sandbox runs as nobody
    hidden: tuple[str, ...] = ()    # extra paths nobody in the sandbox sees (cache, tree)
    base_processes: int = 0         # processes the sandbox's user runs already (RLIMIT_NPROC counts them)

    def describe(self) -> str:
        if not self.confined:
            return "not confined (--no-sandbox): as this user, with the network and every file"
        who = "as nobody, " if self.as_nobody else ""
        return (f"confined by {self.tool} ({who}no network, nothing of the host but the toolchains, "
                "writes only to its build directory, resource limits)")

    def to_json(self) -> dict:
        return {"confined": self.confined, "tool": self.tool, "as_nobody": self.as_nobody,
                "description": self.describe()}

    def jail(self, scratch: Path, writable: tuple[Path, ...] = (), readonly: tuple[Path, ...] = (),
             limits: Limits = Limits()) -> "Jail | None":
        """One sandboxed process's view, with `scratch` (made here) for its private /tmp and $HOME;
        None when not confined."""
        if not self.confined:
            return None
        for d in ("tmp", "home", "run", "ccache-tmp"):
            (scratch / d).mkdir(parents=True, exist_ok=True)
        if self.as_nobody:
            give_to_nobody(scratch)
        return Jail(self, scratch, tuple(writable), tuple(readonly), limits)


@dataclass
class Jail:
    box: Sandbox
    scratch: Path
    writable: tuple[Path, ...]
    readonly: tuple[Path, ...]
    limits: Limits
    status: dict = field(default_factory=dict)
    _status_fd: int = -1
    _alive: tuple[int, ...] = ()

    HOME = "/home/mmreview"

    @property
    def tool_dir(self) -> Path:
        """Writable in the sandbox and not looked at as an escape: for the tools mmreview runs
        there (ccache's temporary files and stats log)."""
        return self.scratch / "ccache-tmp"

    @property
    def pass_fds(self) -> tuple[int, ...]:
        """The descriptors bwrap is given: the one pid 1 writes how the command ended to, and the
        reading end of a pipe whose writing end mmreview keeps until the command is over (`close`):
        when mmreview gives up on it (a timeout, Ctrl-C) or ends, pid 1 sees the pipe hang up and
        ends, and with it everything inside.  (bwrap's --die-with-parent does not do it: the kernel
        drops a parent-death SIGKILL to a namespace's init.)"""
        return tuple(fd for fd in (self._status_fd, self._alive[0] if self._alive else -1) if fd >= 0)

    def started(self) -> None:
        """bwrap has the pipe's reading end: mmreview's copy goes."""
        if self._alive and self._alive[0] >= 0:
            os.close(self._alive[0])
            self._alive = (-1, self._alive[1])

    def command(self, cmd: list[str], cwd: Path, env: dict[str, str]) -> list[str]:
        full_view = os.environ.get(VIEW_ENV) == "full"
        args = ["bwrap", *(_full_view(self) if full_view else _least_view(self.scratch))]
        made: set[str] = set()
        hidden = _hidden(self) if full_view else None
        for op, src, dest in self._binds():
            args += _parents(dest, made, hidden)
            args += [op, str(src), str(dest)]
        args += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                 "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv", "--as-pid-1"]
        if not self.box.as_nobody:
            args.append("--unshare-user")
        full_env = {"PATH": PATH, "LC_ALL": "C", "HOME": self.HOME, "TMPDIR": "/tmp", **env}
        writable = ["/tmp", self.HOME, str(self.tool_dir), *(str(p) for p in self.writable)]
        if "CCACHE_DIR" in full_env:
            full_env["CCACHE_TEMPDIR"] = str(self.tool_dir)
        lim = self.limits
        self.close()
        fd = os.open(self.scratch / "status.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.set_inheritable(fd, True)
        self._status_fd = fd
        self._alive = os.pipe()
        os.set_inheritable(self._alive[0], True)
        run = self.scratch / "run"
        (run / "init.py").write_text(_WRAPPER)
        (run / "args.json").write_text(json.dumps({
            "status_fd": fd, "alive_fd": self._alive[0], "cmd": cmd, "env": full_env, "writable": writable,
            "readonly": [str(p) for p in self.readonly],
            "tolerated": full_env["CCACHE_DIR"] if full_env.get("CCACHE_READONLY") else "",
            "cpu": lim.cpu_seconds, "fsize": lim.file_bytes, "vm": lim.address_bytes,
            "nproc": lim.processes + self.box.base_processes if lim.processes else 0}))
        args += ["--ro-bind", str(run), RUN, "--chdir", str(cwd), "--"]
        if self.box.as_nobody:
            args += ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                     "--inh-caps=-all", "--bounding-set=-all", "--"]
        return [*args, SYSTEM_PYTHON, "-I", "-S", f"{RUN}/init.py"]

    def _binds(self) -> list[tuple[str, Path, Path]]:
        return [("--bind", self.scratch / "tmp", Path("/tmp")), ("--bind", self.scratch / "home", Path(self.HOME)),
                ("--bind", self.tool_dir, self.tool_dir),
                *(("--ro-bind", p, p) for p in self.readonly),
                *(("--bind", p, p) for p in self.writable)]

    def close(self) -> None:
        self.started()
        if self._alive:
            os.close(self._alive[1])
            self._alive = ()
        if self._status_fd >= 0:
            os.close(self._status_fd)
            self._status_fd = -1

    def returncode(self, rc: int | None) -> int | None:
        """The command's own ending, as subprocess gives it (negative for a signal)."""
        self.close()
        try:
            self.status = json.loads((self.scratch / "status.json").read_text())
        except (OSError, ValueError):
            self.status = {}
        sig, code = self.status.get("signal"), self.status.get("exit")
        if rc is None:
            return None
        if sig and rc == 128 + sig:
            return -sig
        if code is not None and rc == code:
            return code
        if rc > 128 and not self.status:
            return -(rc - 128)      # pid 1 itself was killed: bwrap says 128 + its signal
        return rc

    def escapes(self) -> list[str]:
        """What the process tried outside its build directory: files it left in its private
        /tmp or $HOME, connections it tried to open, and the writes elsewhere that pid 1 heard
        (refused by the read-only view or not)."""
        out = []
        # Mount points bwrap made under the private /tmp (a cache under /tmp) are not the process's.
        ours = {Path(p).relative_to("/tmp").parts[0] for p in (self.scratch, *self.readonly, *self.writable)
                if Path(p).is_relative_to("/tmp") and Path(p) != Path("/tmp")}
        for d, shown in (("home", "$HOME"), ("tmp", "/tmp")):
            names = sorted(p.name for p in (self.scratch / d).iterdir()) if (self.scratch / d).is_dir() else []
            names = [n for n in names if not (d == "tmp" and n in ours)]
            if names:
                listed = ", ".join(f"{shown}/{n}" for n in names[:3]) + (f" and {len(names) - 3} more"
                                                                          if len(names) > 3 else "")
                out.append(f"wrote {listed}")
        tried: dict[str, int] = {}
        for key, what in _NET_ATTEMPTS.items():
            n = self.status.get("net", {}).get(key, 0)
            if n > 0:
                tried[what] = tried.get(what, 0) + n
        out += [f"tried {n} {what}{'s' if n > 1 else ''}" for what, n in tried.items()]
        refused = self.status.get("refused", [])
        if refused:
            out.append("tried to write outside its build directory: " + ", ".join(refused[:3])
                       + (f" and {len(refused) - 3} more" if len(refused) > 3 else ""))
        return out


def _parents(dest: Path | str, made: set[str], hidden: list[str] | None = None) -> list[str]:
    """Directories for a mount point's missing parents (those under `hidden`, in the full view),
    0755: bwrap would make them 0700, which nobody, who runs the sandbox when mmreview is root,
    could not pass."""
    args = []
    for a in reversed(Path(dest).parents):
        if str(a) != "/" and str(a) not in made and (
                hidden is None or any(a.is_relative_to(h) and str(a) != h for h in hidden)):
            made.add(str(a))
            args += ["--perms", "0755", "--dir", str(a)]
    return args


def _least_view(scratch: Path) -> list[str]:
    """bwrap's arguments for what a build and a run read (VIEW_*), and nothing else of the host."""
    made: set[str] = set()
    args = ["--dev", "/dev", "--proc", "/proc", *_parents("/tmp/x", made), *_parents("/etc/x", made)]
    for d in MERGED_USR:
        p = Path("/") / d
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), str(p)]
        elif p.is_dir():
            args += ["--ro-bind", str(p), str(p)]
    for p in (*(Path("/usr") / d for d in VIEW_USR), *_sysroots(), *(Path("/etc") / f for f in VIEW_ETC),
              *(Path(p) for p in VIEW_SYS)):
        if p.exists():
            args += [*_parents(p, made), "--ro-bind", str(p), str(p)]
    for name, text in _identity().items():
        (scratch / "run" / name).write_text(text)
        args += ["--ro-bind", str(scratch / "run" / name), f"/etc/{name}"]
    return args + _parents(RUN + "/x", made)


@functools.cache
def _sysroots() -> tuple[Path, ...]:
    """Each target's cross toolchain directory (binutils, the sysroot qemu -L reads): /usr/<triplet>."""
    from mmreview.matrix.targets import all_targets
    out = []
    for t in all_targets():
        prefix = t.cc.rpartition("-")[0]
        for p in (Path("/usr") / prefix, *(Path(a) for a in t.runner if a.startswith("/usr/"))):
            if prefix and p.is_dir() and p not in out:
                out.append(p)
    return tuple(out)


def _identity() -> dict[str, str]:
    """/etc/passwd and /etc/group naming only root, nobody and the user the sandbox runs as."""
    uid, gid = (NOBODY, NOBODY) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    users = {0: ("root", 0, "/root"), NOBODY: ("nobody", NOBODY, "/nonexistent")}
    users.setdefault(uid, ("mmreview", gid, Jail.HOME))
    groups = {0: "root", NOBODY: "nogroup"}
    groups.setdefault(gid, "mmreview")
    return {"passwd": "".join(f"{n}:x:{u}:{g}::{h}:/bin/sh\n" for u, (n, g, h) in users.items()),
            "group": "".join(f"{n}:x:{g}:\n" for g, n in groups.items())}


def _hidden(jail: Jail) -> list[str]:
    return [p for p in dict.fromkeys((*_PRIVATE, os.path.expanduser("~"), *jail.box.hidden))
            if os.path.isdir(p) and os.path.realpath(p) != "/"]


def _full_view(jail: Jail) -> list[str]:
    """The view before the least one: the whole system read-only, private directories hidden."""
    args = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for p in _hidden(jail):
        args += ["--perms", "0555", "--tmpfs", p]
    return args


def give_to_nobody(path: Path, files: bool = True) -> None:
    """Hand `path` (its directories; with `files`, its files too) to nobody, who runs the sandbox."""
    os.chown(path, NOBODY, NOBODY)
    for root, dirs, names in os.walk(path):
        for d in dirs:
            os.chown(os.path.join(root, d), NOBODY, NOBODY, follow_symlinks=False)
        if files:
            for n in names:
                os.chown(os.path.join(root, n), NOBODY, NOBODY, follow_symlinks=False)


SYSTEM_PYTHON = "/usr/bin/python3"         # the system's, in the view, with Debian's python3-seccomp
_SECCOMP_CHECK = "import sys; sys.path.append('/usr/lib/python3/dist-packages'); import seccomp"


def seccomp_missing() -> bool:
    """Whether the system's python lacks libseccomp's binding (Debian's python3-seccomp)."""
    try:
        return subprocess.run([SYSTEM_PYTHON, "-I", "-S", "-c", _SECCOMP_CHECK], capture_output=True).returncode != 0
    except OSError:
        return True


@functools.cache
def probe() -> tuple[str, str]:
    """(tool version, "") when bwrap can confine here; ("", why not) otherwise."""
    if shutil.which("bwrap") is None:
        return "", "bwrap is not installed"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "", "setpriv (util-linux) is not installed"
    if seccomp_missing():
        return "", f"{SYSTEM_PYTHON} cannot import seccomp (python3-seccomp is not installed)"
    user = [] if os.geteuid() == 0 else ["--unshare-user"]
    try:
        proc = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                               "--unshare-net", "--unshare-pid", *user, "--die-with-parent", "true"],
                              capture_output=True, text=True, timeout=30)
        version = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "", f"bwrap could not run ({exc})"
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]
        return "", f"bwrap cannot create namespaces here ({why})"
    return version or "bubblewrap", ""


def _processes_of(uid: int) -> int:
    n = 0
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                n += p.stat().st_uid == uid
            except OSError:
                pass
    return n


def require(no_sandbox: bool, hidden: tuple[str, ...] = ()) -> Sandbox:
    """The sandbox series code runs in; exit 3 in one line when there is none and the user did
    not opt out with --no-sandbox."""
    if no_sandbox:
        return Sandbox(confined=False)
    tool, why = probe()
    if not tool:
        raise InfraError("sandbox", f"cannot confine the series' code: {why}; {INSTALL_HINT}, "
                                    "or pass --no-sandbox to run it unconfined")
    as_nobody = os.geteuid() == 0
    return Sandbox(confined=True, tool=tool, as_nobody=as_nobody, hidden=tuple(hidden),
                   base_processes=_processes_of(NOBODY if as_nobody else os.getuid()))
