"""apt as mmreview runs it (mmreview/common/apt.py): it waits for a dpkg lock another process
holds, tries again when a mirror is caught mid-sync, and fails in one line naming the package.

Real apt throughout: the lock is the real /var/lib/dpkg lock held by a process here, the mirror
a real HTTP server on 127.0.0.1 whose index disagrees with its Release file until it has
"synced"."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mmreview.cli.targets import _apt
from mmreview.common import apt
from mmreview.common.errors import InfraError
from mmreview.kernel import privateapt

LOCK = "/var/lib/dpkg/lock-frontend"


@pytest.fixture(autouse=True)
def as_root():
    assert os.geteuid() == 0, "set-up: these tests run apt-get install, as root (scripts/test does)"


def test_install_waits_for_the_dpkg_lock_another_apt_holds(capfd):
    """Another apt (unattended-upgrades at boot) holds the lock for a few seconds: the install
    waits for it instead of failing, and needs no second attempt."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\n"
                               f"f = open({LOCK!r}, 'w'); fcntl.lockf(f, fcntl.LOCK_EX)\n"
                               "print('held', flush=True); time.sleep(6)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        start = time.monotonic()
        _apt("apt-get install -y --no-upgrade ccache")       # installed: apt only takes the lock
        waited = time.monotonic() - start
    finally:
        holder.wait()
    err = capfd.readouterr().err
    assert waited >= 5, err                    # it waited for the holder (apt locks first) ...
    assert "trying again" not in err and "Could not get lock" not in err   # ... and did not fail


def test_an_unknown_package_fails_at_once_in_one_line_naming_it(capfd):
    with pytest.raises(InfraError) as exc:
        _apt("apt-get install -y --no-upgrade ccache mmreview-no-such-package")
    assert "trying again" not in capfd.readouterr().err      # nothing waiting cures: no retry
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith("mmreview-no-such-package: apt-get install")
    assert "Unable to locate package mmreview-no-such-package" in message


class _Mirror(http.server.BaseHTTPRequestHandler):
    """A flat repository whose Packages index is, until `synced` is set, the next day's (another
    size than its Release file says): what a Debian mirror serves while it syncs."""
    synced = threading.Event()
    packages = b"Package: mmreview-demo\nVersion: 1.0\nArchitecture: all\nFilename: ./x.deb\nSize: 1\n\n"
    stale = packages + b"Package: mmreview-demo2\nVersion: 1.0\n\n"

    def do_GET(self):
        path = os.path.normpath(self.path)           # apt asks for /./Release of a flat repository
        if path == "/Release":
            body = (b"Origin: mmreview-test\nSuite: ./\nSHA256:\n "
                    + hashlib.sha256(self.packages).hexdigest().encode()
                    + b" %d Packages\n" % len(self.packages))
        elif path == "/Packages":
            body = self.packages if self.synced.is_set() else self.stale
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_mirror_caught_mid_sync_is_tried_again(tmp_path: Path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Mirror.synced.clear()
    try:
        opts = privateapt.prepare(tmp_path / "apt", [])
        (tmp_path / "apt" / "sources.list").write_text(
            f"deb [trusted=yes] http://127.0.0.1:{server.server_port}/ ./\n")
        argv = apt.argv("apt-get", *opts, "update", "--error-on=any")

        def update() -> tuple[int, str]:
            proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
            return proc.returncode, proc.stdout + proc.stderr

        said: list[str] = []

        def wait(message: str) -> None:      # while mmreview waits, the mirror finishes its sync
            said.append(message)
            _Mirror.synced.set()
        apt.run(update, "apt-get update", ["mmreview-demo"], say=wait, sleep=lambda s: None)
        assert len(said) == 1 and "unexpected size" in said[0], said
        shown = subprocess.run(apt.argv("apt-cache", *opts, "show", "mmreview-demo"),
                               capture_output=True, text=True)
        assert "Package: mmreview-demo" in shown.stdout, shown.stderr

        # A mirror that never syncs: three attempts, then one line with apt's reason.
        _Mirror.synced.clear()
        for p in (tmp_path / "apt" / "lists").glob("*Packages*"):
            p.unlink()
        said.clear()
        with pytest.raises(InfraError) as exc:
            apt.run(update, "apt-get update", ["mmreview-demo"], say=said.append, sleep=lambda s: None)
        assert len(said) == apt.ATTEMPTS - 1
        assert str(exc.value).startswith(f"mmreview-demo: apt-get update failed (after {apt.ATTEMPTS} attempts): ")
        assert "unexpected size" in str(exc.value) and "\n" not in str(exc.value)
    finally:
        server.shutdown()
