"""A series is untrusted code: the hostile samples (series/make_hostile_samples.py) through the real
CLI, with the real bubblewrap, on the default 6.12 tree.

Each asserts both halves: nothing reached the machine (no file outside, no connection to a listener
on 127.0.0.1, no process left), and the review says the series tried (a failure, never a pass).
"""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import SERIES, mmreview

PORT = 47391           # what series/hostile-tests.mbox connects to


def marks() -> list[str]:
    """Files the hostile samples would leave if they got out."""
    from mmreview.kernel.trees import cache_dir
    homes = {os.path.expanduser("~"), "/root", "/tmp", os.environ.get("XDG_CACHE_HOME", "/tmp"),
             str(cache_dir() / "ccache"), str(cache_dir() / "ccache-nobody")}
    return sorted(p for h in homes for p in glob.glob(f"{h}/PWNED-mmreview*"))


@pytest.fixture
def listener():
    """A TCP listener on the loopback: whatever connects to it is recorded."""
    got: list[bytes] = []
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", PORT))
    srv.listen()
    srv.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except (socket.timeout, OSError):
                continue
            got.append(conn.recv(100) or b"(connected)")
            conn.close()
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield got
    stop.set()
    t.join()
    srv.close()


def check_json(series: str, *args: str) -> tuple[int, dict, str]:
    proc = mmreview("check", str(SERIES / series), "--format", "json", "-q", *args)
    return proc.returncode, json.loads(proc.stdout or b"{}"), proc.stderr.decode()


def cell(review: dict, target: str, binary: str) -> dict:
    return next(c for c in review["cells"] if c["target"] == target and c["binary"] == binary)


def test_test_binaries_that_phone_home_are_blocked_and_reported(vma_unlinked, listener):
    before = marks()
    code, review, err = check_json("hostile-tests.mbox", "--tree", str(vma_unlinked), "--arch", "x86_64,arm64",
                                   "--profile", "quick", "--ignore", "checkpatch")
    assert marks() == before, "a test binary wrote outside its sandbox"
    assert listener == [], "a test binary reached a listener on the host's loopback"
    assert code == 1 and review["verdict"] == "regressions", err
    assert review["sandbox"]["confined"] and "bubblewrap" in review["sandbox"]["tool"]
    assert "confined by bubblewrap" in review["confinement"]
    for target in ("x86_64", "arm64"):                # natively and under qemu-user
        for binary in ("multiorder", "vma"):
            c = cell(review, target, binary)
            assert c["tip"] == "blocked" and c["verdict"] in ("new-failure", "changed-failure"), c
            why = c["tip_result"]["reason"]
            assert "$HOME/PWNED-mmreview" in why and "/tmp/PWNED-mmreview" in why, why
            assert "tried 1 TCP connection" in why, why
        assert cell(review, target, "xarray")["verdict"] == "pass"
    # every report says so: the terminal one too
    term = mmreview("report", str(_saved(err)), "--format", "terminal")
    assert b"confined by bubblewrap" in term.stdout and b"blocked" in term.stdout


def _saved(stderr: str) -> Path:
    """The review JSON `check` saved (it names it on stderr unless -q): the newest one."""
    from mmreview.kernel.trees import cache_dir
    return max((cache_dir() / "reviews").glob("*.json"), key=lambda p: p.stat().st_mtime)


def test_a_makefile_that_writes_outside_is_blocked(kernel_tree):
    before = marks()
    proc = mmreview("test", str(SERIES / "hostile-make.mbox"), "--arch", "x86_64", "--suite", "radix-tree",
                    "--json", "-q")
    assert marks() == before, "the series' Makefile wrote outside its build directory"
    cells = {c["binary"]: c for c in json.loads(proc.stdout)}
    assert proc.returncode == 1, proc.stderr
    for c in cells.values():
        assert c["tip"] == "blocked" and c["verdict"] == "new-failure", c
        assert "its build tried to reach outside the sandbox" in c["tip_result"]["reason"]
        assert "$HOME/PWNED-mmreview-make" in c["tip_result"]["reason"]


def _sleepers() -> list[str]:
    out = subprocess.run(["pgrep", "-af", "sleep 86400"], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if "pgrep" not in l]


def test_a_build_that_hangs_is_a_timeout_cell_and_leaves_nothing_running(kernel_tree):
    start = time.monotonic()
    proc = mmreview("test", str(SERIES / "hostile-hang.mbox"), "--arch", "x86_64", "--suite", "vma",
                    "--build-timeout", "15", "--json", "-q", timeout=600)
    cells = {c["binary"]: c for c in json.loads(proc.stdout)}
    assert proc.returncode == 1, proc.stderr
    vma = cells["vma"]
    assert vma["tip"] == "timeout" and vma["verdict"] == "changed-failure", vma
    assert "did not finish in 15 s" in vma["tip_result"]["reason"]
    assert time.monotonic() - start < 300
    assert _sleepers() == [], "the hung build's processes outlived it"


def test_no_sandbox_is_said_in_the_review_and_reports(vma_unlinked):
    code, review, err = check_json("vma-fix.mbox", "--tree", str(vma_unlinked), "--arch", "x86_64",
                                   "--binary", "vma", "--no-sandbox", "--ignore", "checkpatch")
    assert code == 0, err
    assert review["sandbox"]["confined"] is False
    assert "NOT confined" in review["confinement"]
    md = mmreview("report", str(_saved(err)), "--format", "markdown")
    assert b"NOT confined" in md.stdout


@pytest.fixture
def no_bwrap(tmp_path) -> Path:
    """A PATH with everything /usr/bin and /bin have except bwrap: these tests are about its absence."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for d in ("/usr/bin", "/bin"):
        for p in Path(d).iterdir():
            if p.name != "bwrap" and not (bin_ / p.name).exists():
                (bin_ / p.name).symlink_to(p)
    return bin_


def test_a_cluster_worker_does_not_start_without_bubblewrap(no_bwrap):
    proc = mmreview("worker", "tcp://127.0.0.1:9", "--targets", "x86_64", "--dry-run",
                    env={"PATH": str(no_bwrap)})
    err = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 3 and len(err) == 1 and "bwrap is not installed" in err[0], err
    assert mmreview("worker", "tcp://127.0.0.1:9", "--targets", "x86_64", "--dry-run").returncode == 0


def test_without_bubblewrap_the_matrix_refuses_in_one_line(kernel_tree, no_bwrap):
    bin_ = no_bwrap
    start = time.monotonic()
    for cmd in (["check", str(SERIES / "vma-fix.mbox"), "--arch", "x86_64", "-q"],
                ["test", str(SERIES / "vma-fix.mbox"), "--arch", "x86_64", "-q"]):
        proc = mmreview(*cmd, env={"PATH": str(bin_)})
        err = proc.stderr.decode().strip().splitlines()
        assert proc.returncode == 3, proc.stderr
        assert len(err) == 1 and "bwrap is not installed" in err[0] and "--no-sandbox" in err[0] \
            and "apt-get install bubblewrap" in err[0], err
        assert "Traceback" not in proc.stderr.decode()
    assert time.monotonic() - start < 60, "it must refuse before any build"
    # the rules need no sandbox: they run no series code
    proc = mmreview("rules", str(SERIES / "vma-fix.mbox"), env={"PATH": str(bin_)})
    assert proc.returncode in (0, 1), proc.stderr


def test_checkpatch_comes_from_the_base_not_the_series(kernel_tree, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    from mmreview.kernel.trees import cache_dir
    proc = mmreview("rules", str(SERIES / "hostile-checkpatch.mbox"), "--json",
                    env={"HOME": str(home), "XDG_CACHE_HOME": str(cache_dir().parent)})
    assert proc.returncode in (0, 1), proc.stderr
    assert list(home.iterdir()) == [] and not Path("/root/PWNED-mmreview-checkpatch").exists(), \
        "the series' own scripts/checkpatch.pl ran"


def test_a_series_cannot_exempt_itself_or_rewrite_the_lock_order(kernel_tree):
    proc = mmreview("rules", str(SERIES / "hostile-review.mbox"), "--json")
    review = json.loads(proc.stdout)
    assert proc.returncode == 1, proc.stderr
    found = {(f["rule"], f["patch"], f["file"]) for f in review["findings"]}
    # the series' .mmreview.toml does not switch lock-order off, and its code is checked against
    # the base's order, not the one patch 2 writes into mm/rmap.c
    assert ("lock-order", 3, "mm/vma.c") in found, review["findings"]
    # ... and the rewrite of the documented order is a finding of its own
    assert ("lock-order", 2, "mm/rmap.c") in found, review["findings"]


@pytest.fixture
def bait(kernel_tree):
    """Files with random content where series/hostile-peek.mbox looks (BAIT), world-readable as a
    bot's configuration or another project's checkout would be; removed afterwards."""
    import secrets
    import shutil
    import sys
    sys.path.insert(0, str(SERIES))
    from make_hostile_samples import BAIT, BAIT_BESIDE_TREES
    from mmreview.kernel.trees import cache_dir
    token = "bait-" + secrets.token_hex(16)
    files = [Path(p) for p in BAIT] + [cache_dir() / BAIT_BESIDE_TREES]
    made = []
    for f in files:
        for d in reversed([f.parent, *f.parent.parents]):
            if not d.exists():
                d.mkdir(mode=0o755)
                made.append(d)
        f.write_text(f"token = {token}\n")
        f.chmod(0o644)
    yield token, files
    for f in files:
        f.unlink(missing_ok=True)
    for d in reversed(made):
        shutil.rmtree(d, ignore_errors=True)


def test_a_refused_write_is_heard_with_the_cache_under_tmp(kernel_tree, tmp_path):
    """A cache under /tmp (XDG_CACHE_HOME=/tmp/..., as CI machines set it): the work tree is a
    read-only bind inside the sandbox's private, writable /tmp, and a write to it is still an
    attempt (the innermost mount decides), not taken for a write to /tmp."""
    assert str(tmp_path).startswith("/tmp/")
    proc = mmreview("check", str(SERIES / "hostile-peek.mbox"), "--tree", str(kernel_tree), "--arch",
                    "x86_64", "--profile", "quick", "--binary", "multiorder", "--ignore", "checkpatch",
                    "--format", "json", "-q", env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    review = json.loads(proc.stdout or b"{}")
    assert proc.returncode == 1, proc.stderr.decode()
    mo = cell(review, "x86_64", "multiorder")
    why = mo["tip_result"]["reason"]
    assert mo["tip"] == "blocked" and "openat lib/xarray.c" in why, mo


def test_a_series_sees_nothing_of_the_host_and_a_refused_write_is_an_attempt(kernel_tree, bait):
    from mmreview.kernel.trees import cache_dir
    from mmreview.render import FORMATS
    token, files = bait
    before, head = marks(), git_head(kernel_tree)
    code, review, err = check_json("hostile-peek.mbox", "--arch", "x86_64,arm64", "--profile", "quick",
                                   "--ignore", "checkpatch")
    assert code == 1 and review["verdict"] == "regressions", err
    for target in ("x86_64", "arm64"):                # natively and under qemu-user
        mo = cell(review, target, "multiorder")
        why, shown = mo["tip_result"]["reason"], "\n".join(mo["tip_result"]["excerpt"])
        assert mo["tip"] == "blocked", mo
        assert "openat include/linux/maple_tree.h" in why and "openat lib/xarray.c" in why, why
        for f in files:                               # not refused: not there at all
            assert f"peek {f}: No such file or directory" in shown, shown
        # pid 1 is mmreview's own: no bwrap command line, no environment to read
        assert "peek /proc/1/cmdline: /usr/bin/python3 -I -S /run/mmreview/init.py" in shown, shown
        assert "peek /proc/1/environ: Permission denied" in shown, shown
        vma = cell(review, target, "vma")             # its Makefile appended to mm/vma.h
        assert vma["tip"] == "blocked" and "openat mm/vma.h" in vma["tip_result"]["reason"], vma
        xa = cell(review, target, "xarray")           # kill(-1, SIGKILL) from a child
        assert xa["tip"] == "crash" and xa["tip_result"]["reason"] == "killed by SIGKILL", xa
    saved = _saved(err)
    outputs = {"json (check)": json.dumps(review)}
    for fmt in FORMATS:
        outputs[fmt] = mmreview("report", str(saved), "--format", fmt).stdout.decode(errors="replace")
    for fmt, text in outputs.items():
        assert token not in text, f"the bait reached the {fmt} report"
        assert "--setenv" not in text and "bwrap --" not in text, fmt
    for fmt in ("email", "markdown"):                 # what a bot publishes: no path of this machine
        assert str(cache_dir()) not in outputs[fmt] and "<cache>/trees/mmreview-bait" in outputs[fmt], fmt
    grep = subprocess.run(["grep", "-rlF", "--exclude-dir=mmreview-bait", token, str(cache_dir())],
                          capture_output=True, text=True)
    assert grep.stdout == "", f"the bait is in the cache: {grep.stdout}"
    # nothing changed: the bait, the tree, the machine
    assert all(f.read_text() == f"token = {token}\n" for f in files)
    assert git_head(kernel_tree) == head and marks() == before


def git_head(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "for-each-ref"], capture_output=True, text=True).stdout


def _in_jail(tmp_path: Path, script: str):
    """`sh -c script` in a real sandbox, its build directory `tmp_path/work`: (Ran, its output, what
    its pid 1 said)."""
    from mmreview.matrix.build import ProcessRegistry
    from mmreview.matrix.sandbox import give_to_nobody, require
    box = require(False)
    tmp_path.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    if box.as_nobody:
        give_to_nobody(work)
    jail = box.jail(tmp_path / "box", writable=(work,))
    ran = ProcessRegistry().run(["sh", "-c", script], cwd=work, log=tmp_path / "log", jail=jail)
    return ran, (tmp_path / "log").read_text(), jail.status


def test_the_sandbox_sees_the_toolchains_and_its_build_directory_only(tmp_path):
    ran, out, _ = _in_jail(tmp_path, "echo ETC $(ls /etc); ls -d /var /opt /srv /usr/local /usr/share /mnt; "
                                  "tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/1/environ; env; "
                                  "gcc --version | head -1; echo ok > here")
    assert ran.escapes == [], (ran, out)
    assert (tmp_path / "work" / "here").read_text() == "ok\n"
    for gone in ("/var", "/opt", "/srv", "/usr/local", "/usr/share", "/mnt"):
        assert f"cannot access '{gone}': No such file or directory" in out, out
    assert "ETC alternatives group ld.so.cache ld.so.conf ld.so.conf.d passwd\n" in out, out
    assert "/usr/bin/python3 -I -S /run/mmreview/init.py \n" in out and "bwrap" not in out, out
    assert "cat: /proc/1/environ: Permission denied" in out, out
    assert f"PATH=/usr/bin:/bin\n" in out and os.environ.get("HOME", "/root") not in out.replace("/home/mmreview", "")
    assert "gcc (" in out


def test_a_refused_write_is_an_attempt_and_a_signal_death_is_said_as_one(tmp_path):
    ran, out, status = _in_jail(tmp_path, "echo x > /usr/include/stdio.h; touch /etc/ld.so.cache; mkdir /usr/lib/x; "
                                  "ln -s /usr/include/zz link; echo y > link; sh -c 'kill -9 -1'; echo alive")
    assert ran.returncode == -9 and "alive" not in out, (ran, out)
    assert ran.escapes == ["tried to write outside its build directory: openat /usr/include/stdio.h, "
                           "openat /etc/ld.so.cache, utimensat /etc/ld.so.cache and 2 more"], ran.escapes
    assert status["refused"][3:] == ["mkdir /usr/lib/x", "openat /usr/include/zz"], status  # through a link
    assert status["signal"] == 9


def test_reports_name_no_path_of_the_machine():
    from mmreview.common.textsafe import host_paths_hidden
    places = {"<tree>": "/home/ada/.cache/mmreview/trees/linux-6.12.git", "<cache>": "/home/ada/.cache/mmreview",
              "<home>": "/home/ada"}
    line = ("peek /home/ada/.cache/mmreview/trees/linux-6.12.git/mm/vma.c /home/ada/.cache/mmreview/x "
            "/home/ada/y /home/adam /home/ada")
    assert host_paths_hidden(line, places) == "peek <tree>/mm/vma.c <cache>/x <home>/y /home/adam <home>"
