"""Pid 1 of every sandbox (run by the system's python, `-I -S`, at /run/mmreview/init.py).

It reads its arguments from /run/mmreview/args.json (so that /proc/1/cmdline shows no host path
and /proc/1/environ is empty), starts the command with the resource limits and a seccomp filter,
and until the command ends it
- reaps orphans (it is the namespace's init: a kill(-1, ...) inside does not reach it),
- hears, through the filter's user notification, every call that would create, change or remove
  a file (open for writing, mkdir, unlink, rename, link, symlink, chmod, chown, utimes, truncate,
  xattrs) and notes those aimed outside the directories the command may write: the kernel still
  decides (the call goes on and the read-only mount refuses it), so a refused write is seen even
  when the command hides its failure, from any binary, static or 32-bit, and from qemu's guests;
then it writes how the command ended, what it tried, and what the namespace's network counters
saw to an inherited file descriptor that nothing inside can open (this process is not dumpable:
/proc/1/fd is closed to the command, who runs as the same user).

Not importable by mmreview (no package imports): sandbox.py binds it into each sandbox.
"""
import ctypes
import fcntl
import json
import os
import re
import resource
import select
import signal
import socket
import struct
import sys

sys.path.append("/usr/lib/python3/dist-packages")      # Debian's python3-seccomp (libseccomp)

ARGS = json.load(open("/run/mmreview/args.json"))
WRITABLE = [os.path.realpath(p) for p in ARGS["writable"]]
# Read-only binds may sit inside a writable mount (a cache under /tmp: the tree's work tree inside
# the private /tmp); the innermost mount of a path says whether it is writable.
READONLY = [os.path.realpath(p) for p in ARGS.get("readonly", [])]
TOLERATED = os.path.realpath(ARGS["tolerated"]) if ARGS.get("tolerated") else ""     # read-only compiler cache: ccache's own touches are no attempt
MAX_NOTED = 20

# openat-style flags that mean "to write"; the numbers are the same on every Linux ABI mmreview runs.
O_WRONLY, O_RDWR, O_CREAT, O_TRUNC = 0o1, 0o2, 0o100, 0o1000
AT_FDCWD = 0xffffff9c
# syscall -> (index of dirfd or None, index of path) for each path the call writes
CALLS = {
    "creat": [(None, 0)], "mkdir": [(None, 0)], "mkdirat": [(0, 1)], "mknod": [(None, 0)],
    "mknodat": [(0, 1)], "rmdir": [(None, 0)], "unlink": [(None, 0)], "unlinkat": [(0, 1)],
    "rename": [(None, 0), (None, 1)], "renameat": [(0, 1), (2, 3)], "renameat2": [(0, 1), (2, 3)],
    "link": [(None, 1)], "linkat": [(2, 3)], "symlink": [(None, 1)], "symlinkat": [(1, 2)],
    "truncate": [(None, 0)], "truncate64": [(None, 0)], "chmod": [(None, 0)], "fchmodat": [(0, 1)],
    "chown": [(None, 0)], "lchown": [(None, 0)], "chown32": [(None, 0)], "lchown32": [(None, 0)],
    "fchownat": [(0, 1)], "utime": [(None, 0)], "utimes": [(None, 0)], "futimesat": [(0, 1)],
    "utimensat": [(0, 1)], "utimensat_time64": [(0, 1)], "setxattr": [(None, 0)],
    "lsetxattr": [(None, 0)], "removexattr": [(None, 0)], "lremovexattr": [(None, 0)],
    "open": [(None, 0)], "openat": [(0, 1)],
}
OPEN_FLAGS = {"open": 1, "openat": 2}


def build_filter():
    import seccomp
    global ARCHES
    ARCHES = (seccomp.Arch.X86_64, seccomp.Arch.X86, seccomp.Arch.X32)   # audit numbers, as heard
    f = seccomp.SyscallFilter(seccomp.ALLOW)
    for arch in (seccomp.Arch.X86, seccomp.Arch.X32):     # i386 binaries run natively here
        try:
            f.add_arch(arch)
        except Exception:
            pass
    names = {}
    for name in CALLS:
        try:
            nr = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
        except Exception:
            nr = -1
        for arch in ARCHES:
            try:
                names[(int(arch) & 0xffffffff, seccomp.resolve_syscall(arch, name))] = name
            except Exception:
                pass
        try:
            if name in OPEN_FLAGS:
                for bit in (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC):
                    f.add_rule(seccomp.NOTIFY, name, seccomp.Arg(OPEN_FLAGS[name], seccomp.MASKED_EQ, bit, bit))
            else:
                f.add_rule(seccomp.NOTIFY, name)
        except Exception:
            if nr >= 0 and name in ("openat", "unlinkat", "renameat2", "mkdirat"):
                raise
    # io_uring's operations (IORING_OP_OPENAT...) bypass seccomp: no ring (as Docker's default profile)
    for name in ("io_uring_setup",):
        try:
            f.add_rule(seccomp.ERRNO(38), name)         # ENOSYS: as if the kernel had none
        except Exception:
            pass
    for name in ("openat2",):       # how= in memory: every call is heard
        try:
            f.add_rule(seccomp.NOTIFY, name)
            for arch in ARCHES:
                names[(int(arch) & 0xffffffff, seccomp.resolve_syscall(arch, name))] = name
        except Exception:
            pass
    return f, names


def limits():
    for res, v in ((resource.RLIMIT_CPU, ARGS["cpu"]), (resource.RLIMIT_FSIZE, ARGS["fsize"]),
                   (resource.RLIMIT_AS, ARGS["vm"]), (resource.RLIMIT_NPROC, ARGS["nproc"]),
                   (resource.RLIMIT_CORE, 0)):
        if int(v) or res == resource.RLIMIT_CORE:
            resource.setrlimit(res, (int(v), int(v)))


# struct seccomp_notif (80 bytes) and seccomp_notif_resp (24 bytes); the ioctls on the listener.
NOTIF = struct.Struct("=QIIiIQ6Q")
RESP = struct.Struct("=QqiI")
RECV, SEND = 0xC0502100, 0xC0182101
CONTINUE = 1


def read_str(pid, addr):
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as m:
        m.seek(addr)
        data = m.read(4096)
    return data.split(b"\0", 1)[0].decode(errors="replace")


def resolve(pid, dirfd, path, follow):
    if not path.startswith("/"):
        if dirfd is None or (dirfd & 0xffffffff) == AT_FDCWD:
            base = os.readlink(f"/proc/{pid}/cwd")
        else:
            base = os.readlink(f"/proc/{pid}/fd/{dirfd & 0xffffffff}")
        path = os.path.join(base, path)
    path = os.path.normpath(path)
    if re.match(r"/(proc/(self|thread-self|\d+)/|dev/(std(in|out|err)$|fd/))", path):
        return ""            # the process's own files and descriptors
    head, tail = os.path.split(path)
    path = os.path.realpath(path) if follow else os.path.join(os.path.realpath(head), tail)
    return path


DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/random", "/dev/urandom", "/dev/ptmx")


def _depth(path, mounts):
    """The length of the innermost of `mounts` that holds `path` (-1: none does)."""
    return max((len(m) for m in mounts if path == m or path.startswith(m + "/")), default=-1)


def allowed(path, name):
    if not path or path in DEVICES or path.startswith(("/dev/pts/", "/dev/shm/")):
        return True
    if _depth(path, WRITABLE) > _depth(path, READONLY):
        return True
    if TOLERATED and path.startswith(TOLERATED + "/"):
        # ccache with CCACHE_READONLY still makes directories, touches what it used and takes
        # stats locks (symlinks): read-only, those fail and mean nothing
        return name in ("mkdir", "mkdirat", "utimensat", "utimensat_time64") or \
            (name in ("symlink", "symlinkat") and path.endswith(".lock"))
    return False


def heard(buf, names, noted):
    _, pid, _, nr, arch, _, *args = NOTIF.unpack(buf)
    name = names.get((arch, nr), f"syscall {nr}")
    try:
        if name == "openat2":           # struct open_how starts with the flags
            with open(f"/proc/{pid}/mem", "rb", buffering=0) as m:
                m.seek(args[2])
                if not struct.unpack("=Q", m.read(8))[0] & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC):
                    return
        for dirarg, patharg in CALLS.get(name, [(0, 1)]):
            if not args[patharg]:       # utimensat(fd, NULL, ...): the descriptor itself
                path, dirarg = "", dirarg if dirarg is not None else 0
                where = os.readlink(f"/proc/{pid}/fd/{args[dirarg] & 0xffffffff}")
                if not allowed(where, name):
                    noted.append(f"{name} {where}")
                continue
            path = read_str(pid, args[patharg])
            follow = name in ("open", "openat", "openat2", "creat", "truncate", "truncate64", "chmod",
                              "fchmodat", "chown", "chown32", "fchownat", "utime", "utimes", "utimensat",
                              "setxattr", "removexattr") and not (name == "utimensat" and args[3] & 0x100)
            where = resolve(pid, None if dirarg is None else args[dirarg], path, follow)
            if name in ("mkdir", "mkdirat") and os.path.isdir(where):
                continue                # `mkdir -p` on a directory that is there changes nothing
            if not allowed(where, name):
                noted.append(f"{name} {where}")
    except OSError:
        noted.append(f"{name} (a path mmreview could not read)")


def network():
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
    return net


def main():
    libc = ctypes.CDLL(None)
    # mmreview keeps the pipe's writing end while it waits for the command: when it hangs up (a
    # timeout, Ctrl-C, mmreview gone) this pid 1 ends, and with it the whole namespace.
    mmreview_alive = ARGS["alive_fd"]
    out = os.fdopen(ARGS["status_fd"], "w")
    cmd, env = ARGS["cmd"], ARGS["env"]
    f, names = build_filter()
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            out.close()
            ours.close()
            os.close(mmreview_alive)
            limits()
            f.load()
            socket.send_fds(theirs, [b"l"], [f.get_notify_fd()])
            theirs.close()
            os.execvpe(cmd[0], cmd, env)
        except OSError as e:
            sys.stderr.write(f"{cmd[0]}: {e.strerror}\n")
        os._exit(127)
    theirs.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # python's only handler: nothing inside may end us
    libc.prctl(4, 0, 0, 0, 0)                       # PR_SET_DUMPABLE 0: /proc/1/{fd,mem,environ} closed
    _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    listener = fds[0] if fds else -1
    child = os.pidfd_open(pid)
    noted, st = [], None
    poll = select.poll()
    poll.register(child, select.POLLIN)
    poll.register(mmreview_alive, select.POLLIN)
    if listener >= 0:
        poll.register(listener, select.POLLIN)
    while st is None:
        for fd, ev in poll.poll(1000):
            if fd == mmreview_alive:
                os._exit(137)           # nobody waits for a status any more
            if fd == listener and ev & select.POLLIN:
                buf = bytearray(NOTIF.size)
                try:
                    fcntl.ioctl(listener, RECV, buf, True)
                except OSError:
                    continue          # the caller went away
                if len(noted) < MAX_NOTED:
                    heard(bytes(buf), names, noted)
                try:
                    fcntl.ioctl(listener, SEND, bytearray(RESP.pack(NOTIF.unpack(buf)[0], 0, 0, CONTINUE)), True)
                except OSError:
                    pass
            elif fd == listener:
                poll.unregister(listener)
                listener = -1
        while True:         # reap: the command, and orphans handed to init
            try:
                w, s = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if w == 0:
                break
            if w == pid:
                st = s
    json.dump({"exit": os.WEXITSTATUS(st) if os.WIFEXITED(st) else None,
               "signal": os.WTERMSIG(st) if os.WIFSIGNALED(st) else None,
               "net": {k: n for k, n in network().items() if n > 0 and k[:3] in ("Tcp", "Udp", "Icm")},
               "refused": list(dict.fromkeys(noted))}, out)
    out.close()
    os._exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st))


main()
