"""Confinement of everything a series builds or runs: bubblewrap, as Flatpak uses it.

A series is code from a stranger: its Makefiles run at build time, its tests at run
time.  Each such process runs under `bwrap` with

- no network (`--unshare-net`: a loopback of its own, nothing listens there),
- a read-only view of the system, and none of $HOME, /root, /home, /run (sockets),
  mmreview's cache (other cells, the results cache) or the user's tree: tmpfs over each,
- write access only to its own build directory, plus a private /tmp and $HOME that
  mmreview looks into afterwards (`Jail.escapes`): a test or Makefile that left files
  there, or opened a network connection, tried to reach outside, and its cell says so,
- its own pid namespace (a timeout or Ctrl-C kills everything it started), a clean
  environment, and resource limits set by a small wrapper inside the sandbox
  (`_WRAPPER`): CPU seconds, file size, processes, and address space where no
  sanitizer needs terabytes of shadow.

Run as root (a CI bot), the sandboxed process also drops to `nobody` (setpriv) so it
cannot read what only root may read; the directories it writes are given to nobody.

When bwrap is missing or cannot create namespaces the matrix refuses to run series
code, unless the user passed --no-sandbox (`require`).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mmreview.common.errors import InfraError

NOBODY = 65534
BUILD_TIMEOUT = 900.0           # seconds for one suite's build (measured 2-30 s; a hang ends here)
INSTALL_HINT = "install it with `apt-get install bubblewrap` (or `mmreview setup`)"

# Paths hidden from every sandbox (tmpfs over each), besides the cache and the tree.
_PRIVATE = ("/tmp", "/var/tmp", "/run", "/home", "/root", "/mnt", "/media", "/srv")

# Runs inside the sandbox with the system's python: set the limits, run the command,
# record how it ended and what the private network namespace saw.  bwrap reports a
# signal as 128+N; the status file keeps the signal itself.
_WRAPPER = r"""
import json, os, resource, signal, sys
status, cpu, fsize, vm, nproc = sys.argv[1:6]
cmd = sys.argv[7:]
def limits():
    for res, v in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_FSIZE, fsize),
                   (resource.RLIMIT_AS, vm), (resource.RLIMIT_NPROC, nproc), (resource.RLIMIT_CORE, "0")):
        if int(v) or res == resource.RLIMIT_CORE:
            resource.setrlimit(res, (int(v), int(v)))
pid = os.fork()
if pid == 0:
    try:
        limits()
        os.execvp(cmd[0], cmd)
    except OSError as e:
        sys.stderr.write(f"{cmd[0]}: {e.strerror}\n")
    os._exit(127)
_, st = os.waitpid(pid, 0)
net = {}
for path in ("/proc/net/snmp", "/proc/net/snmp6"):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for i in range(len(lines) - 1):
        k, v = lines[i].split(), lines[i + 1].split()
        if k[0].endswith(":") and k[0] == v[0]:
            net.update({k[0] + n: int(x) for n, x in zip(k[1:], v[1:]) if x.lstrip("-").isdigit()})
    if path.endswith("6"):
        net.update({l.split()[0]: int(l.split()[1]) for l in lines if len(l.split()) == 2})
with open(status, "w") as f:
    json.dump({"exit": os.WEXITSTATUS(st) if os.WIFEXITED(st) else None,
               "signal": os.WTERMSIG(st) if os.WIFSIGNALED(st) else None, "net": net}, f)
if os.WIFSIGNALED(st):
    signal.signal(os.WTERMSIG(st), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(st))
os._exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 1)
"""

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
        return (f"confined by {self.tool} ({who}no network, read-only system, no home, cache or "
                "tree, writes only to its build directory, resource limits)")

    def to_json(self) -> dict:
        return {"confined": self.confined, "tool": self.tool, "as_nobody": self.as_nobody,
                "description": self.describe()}

    def jail(self, scratch: Path, writable: tuple[Path, ...] = (), readonly: tuple[Path, ...] = (),
             limits: Limits = Limits()) -> "Jail | None":
        """One sandboxed process's view, with `scratch` (made here) for its private /tmp and $HOME;
        None when not confined."""
        if not self.confined:
            return None
        for d in ("tmp", "home", "status", "ccache-tmp"):
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

    HOME = "/home/mmreview"

    @property
    def tool_dir(self) -> Path:
        """Writable in the sandbox and not looked at as an escape: for the tools mmreview runs
        there (ccache's temporary files and stats log)."""
        return self.scratch / "ccache-tmp"

    def command(self, cmd: list[str], cwd: Path, env: dict[str, str]) -> list[str]:
        args = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        hidden = [p for p in dict.fromkeys((*_PRIVATE, os.path.expanduser("~"), *self.box.hidden))
                  if os.path.isdir(p) and os.path.realpath(p) != "/"]
        for p in hidden:        # read-only too: a write there is refused, not silently dropped
            args += ["--perms", "0555", "--tmpfs", p]
        binds = [("--bind", self.scratch / "tmp", "/tmp"), ("--bind", self.scratch / "home", self.HOME),
                 *(("--bind", self.scratch / d, self.scratch / d) for d in ("status", "ccache-tmp")),
                 *(("--ro-bind", p, p) for p in self.readonly),
                 *(("--bind", p, p) for p in self.writable)]
        made: set[str] = set()
        for op, src, dest in binds:
            # bwrap makes a missing mount point's parents 0700: nobody could not reach it.
            for a in reversed(Path(dest).parents):
                if str(a) not in made and any(a.is_relative_to(h) and str(a) != h for h in hidden):
                    made.add(str(a))
                    args += ["--perms", "0755", "--dir", str(a)]
            args += [op, str(src), str(dest)]
        args += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                 "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv"]
        if not self.box.as_nobody:
            args.append("--unshare-user")
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C",
                    "HOME": self.HOME, "TMPDIR": "/tmp", **env}
        if "CCACHE_DIR" in full_env:
            full_env["CCACHE_TEMPDIR"] = str(self.tool_dir)
        for k, v in full_env.items():
            args += ["--setenv", k, v]
        args += ["--chdir", str(cwd), "--"]
        if self.box.as_nobody:
            args += ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                     "--inh-caps=-all", "--bounding-set=-all", "--"]
        lim = self.limits
        nproc = lim.processes + self.box.base_processes if lim.processes else 0
        args += [_system_python(), "-I", "-S", "-c", _WRAPPER, str(self.scratch / "status" / "status.json"),
                 str(lim.cpu_seconds), str(lim.file_bytes), str(lim.address_bytes), str(nproc), "--", *cmd]
        return args

    def returncode(self, rc: int | None) -> int | None:
        """The command's own ending, as subprocess gives it (negative for a signal)."""
        try:
            self.status = json.loads((self.scratch / "status" / "status.json").read_text())
        except (OSError, ValueError):
            self.status = {}
        sig, code = self.status.get("signal"), self.status.get("exit")
        if rc is None:
            return None
        if sig and rc == 128 + sig:
            return -sig
        if code is not None and rc == code:
            return code
        return rc           # no (or a forged) status: what bwrap said

    def escapes(self) -> list[str]:
        """What the process tried outside its build directory: files it left in its private
        /tmp or $HOME, and connections it tried to open."""
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
        return out


def give_to_nobody(path: Path, files: bool = True) -> None:
    """Hand `path` (its directories; with `files`, its files too) to nobody, who runs the sandbox."""
    os.chown(path, NOBODY, NOBODY)
    for root, dirs, names in os.walk(path):
        for d in dirs:
            os.chown(os.path.join(root, d), NOBODY, NOBODY, follow_symlinks=False)
        if files:
            for n in names:
                os.chown(os.path.join(root, n), NOBODY, NOBODY, follow_symlinks=False)


@functools.cache
def _system_python() -> str:
    """A python the sandbox can see: the venv's may live under a hidden $HOME."""
    for cand in (getattr(sys, "_base_executable", ""), "/usr/bin/python3", sys.executable):
        if cand and os.path.isfile(cand) and not cand.startswith(os.path.expanduser("~") + "/"):
            return os.path.realpath(cand)
    return "/usr/bin/python3"


@functools.cache
def probe() -> tuple[str, str]:
    """(tool version, "") when bwrap can confine here; ("", why not) otherwise."""
    if shutil.which("bwrap") is None:
        return "", "bwrap is not installed"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "", "setpriv (util-linux) is not installed"
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
