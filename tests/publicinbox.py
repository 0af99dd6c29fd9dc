"""A real public-inbox server on 127.0.0.1 for tests: the software that serves lore.kernel.org.

Debian's `public-inbox` package (scripts/bootstrap --tests installs it).  API (kept stable; other
tests import it):

    from publicinbox import PublicInbox                # tests/ is on sys.path; or the fixtures

    inbox = PublicInbox(tmp_path)                       # name "linux-mm", address linux-mm@kvack.org
    inbox.start()                                       # public-inbox-init -V2 + public-inbox-httpd
    ids = inbox.deliver(Path("series/clean-3.mbox"))   # an mbox path, mbox bytes, one message's
                                                        # bytes or an email.message.Message;
                                                        # returns the Message-IDs (no <>) in order
    inbox.url          # "http://127.0.0.1:PORT/linux-mm/"  (a message: url + msgid + "/")
    inbox.midmask      # url + "%s"                      (b4.midmask)
    inbox.searchmask   # url + "?x=m&t=1&q=%s"          (b4.searchmask, lore's form)
    inbox.base         # "http://127.0.0.1:PORT/"
    inbox.start_nntp() # public-inbox-nntpd too; returns inbox.nntp_url,
                       # "nntp://127.0.0.1:PORT/org.kvack.linux-mm" (the newsgroup lore gives the list)
    inbox.stop()       # idempotent (both daemons); the fixtures stop it for you

    own_lore_cache(d)  # {"XDG_CACHE_HOME": d}: for mmreview fetching from these servers

Fixtures: `public_inbox` (one per test) and `public_inbox_factory` (call it with a directory and
optional name/address, e.g. from a module-scoped fixture; every inbox it made is stopped at the end
of the session).

How: `public-inbox-init -V2` into ROOT/inbox with its own PI_CONFIG (nothing of ~/.public-inbox is
read or written: HOME is ROOT for the public-inbox processes); each message goes through
`public-inbox-mda --no-precheck` (spam check off), as a list's MTA would deliver it, so it is
indexed (Xapian, so search works) on delivery; `public-inbox-httpd -W0` inherits a listening socket
bound here to 127.0.0.1 on a free port (systemd-style LISTEN_FDS), so there is no port race and
the server answers as soon as start() returns.  Delivering after start() is fine: the server sees
new mail on the next request.
"""

from __future__ import annotations

import ctypes
import email.message
import email.parser
import email.policy
import mailbox
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

TOOLS = ("public-inbox-init", "public-inbox-mda", "public-inbox-httpd", "public-inbox-nntpd")


def own_lore_cache(root: Path) -> dict[str, str]:
    """The environment of an mmreview that fetches from these servers: a cache of its own under
    root, the machine's kernel trees linked in.  mmreview's lore cache is keyed by inbox URL, and
    these servers are 127.0.0.1 on whatever port the kernel gives, so an earlier run's server on
    the same port would answer from the machine's cache (CI saw a hanging server "answer" so)."""
    from mmreview.common.paths import trees_dir
    (root / "mmreview").mkdir(parents=True)
    (root / "mmreview" / "trees").symlink_to(trees_dir(), target_is_directory=True)
    return {"XDG_CACHE_HOME": str(root)}


def _split(item) -> list[bytes]:
    """The messages of an mbox path, mbox bytes, one message's bytes or a Message."""
    if isinstance(item, email.message.Message):
        return [item.as_bytes(policy=email.policy.compat32)]
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
    elif item.startswith(b"From "):
        fd, name = tempfile.mkstemp(suffix=".mbox")
        with os.fdopen(fd, "wb") as f:
            f.write(item)
        try:
            return _split(Path(name))
        finally:
            os.unlink(name)
    else:
        return [bytes(item)]
    # mailbox.mbox keeps each message's bytes as they were (no re-encoding of bodies).
    box = mailbox.mbox(str(path), create=False)
    try:
        return [box.get_bytes(key) for key in box.iterkeys()]
    finally:
        box.close()


def _die_with_parent() -> None:
    """In the child: SIGTERM when the test process dies, even by SIGKILL (no stray server)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)          # PR_SET_PDEATHSIG; kept across exec
    except (OSError, AttributeError):
        pass


def _message_id(raw: bytes) -> str:
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    mid = (headers.get("Message-ID") or "").strip()
    return mid[1:-1] if mid.startswith("<") and mid.endswith(">") else mid


class PublicInbox:
    """One v2 inbox served over HTTP on 127.0.0.1 (see the module docstring)."""

    def __init__(self, root: Path, name: str = "linux-mm", address: str = "linux-mm@kvack.org"):
        self.root = Path(root)
        self.name = name
        self.address = address
        domain = address.partition("@")[2] or "example.org"
        self.newsgroup = ".".join([*reversed(domain.split(".")), name])
        self.port: int | None = None
        self.nntp_port: int | None = None
        self._proc: subprocess.Popen | None = None
        self._nntpd: subprocess.Popen | None = None
        self._env = {**os.environ, "HOME": str(self.root), "PI_CONFIG": str(self.root / "pi-config"),
                     "PI_EMERGENCY": str(self.root / "emergency"), "LC_ALL": "C"}

    # ------------------------------------------------------------------ addresses
    @property
    def base(self) -> str:
        assert self.port, "the inbox is not started"
        return f"http://127.0.0.1:{self.port}/"

    @property
    def url(self) -> str:
        return f"{self.base}{self.name}/"

    @property
    def nntp_url(self) -> str:
        assert self.nntp_port, "the NNTP server is not started (start_nntp)"
        return f"nntp://127.0.0.1:{self.nntp_port}/{self.newsgroup}"

    @property
    def midmask(self) -> str:
        return self.url + "%s"

    @property
    def searchmask(self) -> str:
        return self.url + "?x=m&t=1&q=%s"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "PublicInbox":
        missing = [t for t in TOOLS if not shutil.which(t)]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not installed (apt-get install public-inbox; "
                               "scripts/bootstrap --tests does it)")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "pi-config"
        if not config.exists():
            config.write_text("[publicinboxmda]\n\tspamcheck = none\n")
        self._run("public-inbox-init", "-V2", "-L", "full", "--ng", self.newsgroup, self.name,
                  str(self.root / "inbox"), f"http://127.0.0.1/{self.name}", self.address)
        self._proc, self.port = self._daemon("public-inbox-httpd", "httpd.log")
        self._wait_ready()
        return self

    def start_nntp(self) -> str:
        """public-inbox-nntpd for the same inbox (after start()); its nntp:// URL."""
        if self._nntpd is None:
            self._nntpd, self.nntp_port = self._daemon("public-inbox-nntpd", "nntpd.log")
            deadline = time.monotonic() + 30
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", self.nntp_port), timeout=5) as c:
                        if c.recv(64).startswith(b"201"):      # the greeting: ready, no posting
                            break
                except OSError:
                    pass
                if self._nntpd.poll() is not None or time.monotonic() > deadline:
                    log = (self.root / "nntpd.log").read_text(errors="replace")
                    raise RuntimeError(f"public-inbox-nntpd did not come up: {log}")
                time.sleep(0.1)
        return self.nntp_url

    def _daemon(self, tool: str, logname: str) -> tuple[subprocess.Popen, int]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        port = sock.getsockname()[1]
        fd = sock.fileno()
        log = open(self.root / logname, "wb")
        # fd 3 is where socket activation looks (kept open: the child closes fds after the dup2);
        # LISTEN_PID must be the daemon's own pid, which only a shell that then execs it knows.
        def child_setup() -> None:
            os.dup2(fd, 3)
            _die_with_parent()

        proc = subprocess.Popen(
            ["sh", "-c", f'LISTEN_PID=$$ LISTEN_FDS=1 exec {tool} -W0'],
            env=self._env, pass_fds=(fd, 3), preexec_fn=child_setup,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.root, start_new_session=True)
        sock.close()
        log.close()
        return proc, port

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "_/text/config/raw", timeout=5) as r:
                    r.read()
                return
            except OSError as e:
                if b"failed to inherit" in (self.root / "httpd.log").read_bytes():
                    deadline = 0   # it would listen on its default port instead: give up now
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log = (self.root / "httpd.log").read_text(errors="replace")
                    raise RuntimeError(f"public-inbox-httpd did not come up ({e}): {log}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        procs = [self._proc, self._nntpd]
        self._proc = self._nntpd = None
        for proc in procs:
            if proc is None or proc.poll() is not None:
                continue
            # SIGTERM: the daemons exit at once (SIGQUIT would wait for open connections).
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def __enter__(self) -> "PublicInbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ mail
    def deliver(self, item) -> list[str]:
        """Deliver every message of `item` in order (as the list would); their Message-IDs."""
        ids = []
        for raw in _split(item):
            self._run("public-inbox-mda", "--no-precheck", input=raw,
                      extra={"ORIGINAL_RECIPIENT": self.address})
            ids.append(_message_id(raw))
        return ids

    def _run(self, *cmd: str, input: bytes | None = None, extra: dict | None = None) -> None:
        proc = subprocess.run(cmd, input=input, capture_output=True, cwd=self.root, timeout=120,
                              env={**self._env, **(extra or {})})
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def public_inbox_factory():
    """public_inbox_factory(directory, name="linux-mm", address="linux-mm@kvack.org") -> a started
    PublicInbox; all are stopped when the session ends."""
    made: list[PublicInbox] = []

    def make(root: Path, name: str = "linux-mm", address: str = "linux-mm@kvack.org") -> PublicInbox:
        inbox = PublicInbox(root, name, address).start()
        made.append(inbox)
        return inbox
    yield make
    for inbox in made:
        inbox.stop()


@pytest.fixture
def public_inbox(tmp_path: Path):
    """An empty, started inbox for one test (stopped after it)."""
    with PublicInbox(tmp_path / "public-inbox") as inbox:
        yield inbox
