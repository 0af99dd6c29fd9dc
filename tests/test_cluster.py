"""The matrix on a real Dask cluster: a `dask scheduler` and `mmreview worker` processes on 127.0.0.1.

Each worker has its own XDG_CACHE_HOME (two "machines": their own exports, builds and ccache; no
kernel tree), and so has the reviewing client, which names the tree with --tree; the fixtures
start them and stop them (and every process they started) at teardown.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BIN, MMREVIEW, SERIES, mmreview

PY = str(BIN / "python")
# The local runs compare with what this machine's own cache holds (as a user's review would).
USER_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


# ---------------------------------------------------------------- processes

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every process under `pid`, including those in sessions of their own (builds, tests)."""
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def kill_tree(proc: subprocess.Popen) -> None:
    """What a machine going down does to its worker: it and everything it started, at once."""
    for pid in [proc.pid, *descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def processes_under(directory: Path) -> list[str]:
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cwd = os.readlink(p / "cwd")
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(str(directory)) or str(directory) in cmd:
            found.append(f"{p.name}: {cmd[:100]}")
    return found


class LocalCluster:
    """A real scheduler and `mmreview worker`s, each worker with a cache of its own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}

    def start(self, workers: dict[str, list[str]]) -> "LocalCluster":
        self.scheduler = subprocess.Popen(
            [PY, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
             str(self.port), "--no-dashboard"], stdout=subprocess.DEVNULL,
            stderr=open(self.root / "scheduler.log", "wb"), start_new_session=True)
        for name, args in workers.items():
            self.add_worker(name, args)
        self.wait_for(len(workers))
        return self

    def cache(self, name: str) -> Path:
        return self.root / name

    def add_worker(self, name: str, args: list[str]) -> None:
        self.workers[name] = subprocess.Popen(
            [MMREVIEW, "worker", self.address, "--name", name, *args],
            env={**os.environ, "XDG_CACHE_HOME": str(self.cache(name))},
            stdout=subprocess.DEVNULL, stderr=open(self.root / f"{name}.log", "wb"),
            start_new_session=True)

    def wait_for(self, n: int, timeout: float = 90) -> dict[str, str]:
        """{worker name: address} once `n` workers are connected."""
        from distributed import Client
        deadline = time.monotonic() + timeout
        while True:
            try:
                with Client(self.address, timeout=5, set_as_default=False) as c:
                    c.wait_for_workers(n, timeout=max(1, deadline - time.monotonic()))
                    return {w["name"]: a for a, w in c.scheduler_info()["workers"].items()}
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise

    def stop(self) -> None:
        for p in [*self.workers.values(), self.scheduler]:
            if p is not None and p.poll() is None:
                kill_tree(p)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`solo` offers x86_64 alone; `both` offers x86_64 and i386 (nothing else: a named arm64 is
    offered by no worker).  One thread each: two "machines" sharing this one's two cores."""
    c = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield c.start({"solo": ["--targets", "x86_64", "--nthreads", "1"],
                       "both": ["--targets", "x86_64,i386", "--nthreads", "1"]})
    finally:
        c.stop()


def review(series: str, *args: str, cache: Path, out: Path, env: dict | None = None,
           timeout: float = 1800) -> tuple[subprocess.CompletedProcess, dict | None]:
    """`mmreview check --format json` with the given cache (the client's own: no results of
    earlier runs), the Review JSON written to `out`."""
    proc = mmreview("check", str(SERIES / series), "--format", "json", "--quiet", "--json-out",
                    str(out), *args, env={"XDG_CACHE_HOME": str(cache), **(env or {})},
                    timeout=timeout)
    return proc, (json.loads(out.read_text()) if out.exists() else None)


def comparable(cell: dict) -> tuple:
    """A cell as a reader sees it: everything but where, when and how long it ran."""
    def run(r):
        return None if r is None else {k: v for k, v in r.items()
                                       if k not in ("duration", "cached", "worker")}
    return (cell["target"], cell["suite"], cell["binary"], cell["verdict"],
            json.dumps([run(cell["base_result"]), run(cell["tip_result"])], sort_keys=True))


# ---------------------------------------------------------------- the same review, elsewhere

@pytest.fixture(scope="module")
def cluster_review(cluster, vma_unlinked, tmp_path_factory):
    """matrix-32bit (a new failure on i386 alone, the vma link failure of `vma_unlinked`
    pre-existing) with the quick profile on x86_64 and i386, run on the cluster from an empty
    client cache."""
    cache = tmp_path_factory.mktemp("client")
    proc, rev = review("matrix-32bit.mbox", "--tree", str(vma_unlinked), "--arch", "x86_64,i386",
                       "--cluster", cluster.address, cache=cache, out=cache / "review.json")
    assert proc.returncode == 1, proc.stderr.decode()
    return rev, cache


def test_cluster_review_is_the_local_review(cluster_review, vma_unlinked, tmp_path):
    clustered, _ = cluster_review
    proc, local = review("matrix-32bit.mbox", "--tree", str(vma_unlinked), "--arch", "x86_64,i386",
                         cache=USER_CACHE, out=tmp_path / "local.json")
    assert proc.returncode == 1, proc.stderr.decode()
    assert sorted(map(comparable, clustered["cells"])) == sorted(map(comparable, local["cells"]))
    assert (clustered["verdict"], clustered["summary"]) == (local["verdict"], local["summary"])
    verdicts = {(c["target"], c["binary"]): c["verdict"] for c in clustered["cells"]}
    assert verdicts[("i386", "xarray")] == "new-failure"
    assert verdicts[("x86_64", "xarray")] == "pass"
    assert verdicts[("x86_64", "vma")] == "pre-existing"
    # Which worker ran each result: recorded on the cluster, empty here.
    assert all(c["tip_result"]["worker"].startswith("tcp://127.0.0.1:") for c in clustered["cells"])
    assert all(c["tip_result"]["worker"] == "" for c in local["cells"])


def test_a_worker_offering_only_x86_64_gets_no_i386_cell(cluster, cluster_review):
    clustered, _ = cluster_review
    addr = cluster.wait_for(2)
    ran = {(c["target"], r["worker"]) for c in clustered["cells"]
           for r in (c["base_result"], c["tip_result"])}
    assert ("i386", addr["solo"]) not in ran
    assert ("i386", addr["both"]) in ran
    assert {w for _, w in ran} <= {addr["solo"], addr["both"]}


def test_second_series_on_the_same_base_sends_only_the_tip(cluster, cluster_review, vma_unlinked):
    """The client's result cache has the base from the first review: only tip builds go out,
    and they go where that target's base was built (its ccache has the base's objects)."""
    first, cache = cluster_review
    proc = mmreview("test", str(SERIES / "matrix-break-xarray.mbox"), "--tree", str(vma_unlinked),
                    "--arch", "x86_64,i386", "--binary", "xarray", "--json", "--cluster",
                    cluster.address, env={"XDG_CACHE_HOME": str(cache)}, timeout=1800)
    assert proc.returncode == 1, proc.stderr.decode()
    cells = {c["target"]: c for c in json.loads(proc.stdout)}
    base_worker = {c["target"]: c["base_result"]["worker"] for c in first["cells"]
                   if c["binary"] == "xarray"}
    for target, c in cells.items():
        assert c["verdict"] == "new-failure", c
        assert c["base_result"]["cached"] is True and c["tip_result"]["cached"] is False
        assert c["tip_result"]["worker"] == base_worker[target]


# ---------------------------------------------------------------- what can go wrong

def test_a_target_no_worker_offers_is_exit_3_before_anything_runs(cluster, kernel_tree, tmp_path):
    for command in ("check", "test"):
        t0 = time.monotonic()
        proc = mmreview(command, str(SERIES / "matrix-32bit.mbox"), "--tree", str(kernel_tree),
                        "--arch", "x86_64,arm64", "--cluster", cluster.address,
                        env={"XDG_CACHE_HOME": str(tmp_path)}, timeout=300)
        err = proc.stderr.decode()
        assert proc.returncode == 3, err
        assert "--arch arm64: no worker of " + cluster.address + " offers it" in err
        assert time.monotonic() - t0 < 60
        assert not (tmp_path / "mmreview" / "results").exists()    # nothing was built


def test_unreachable_scheduler_is_exit_3_in_one_line(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    for command in ("check", "test"):
        t0 = time.monotonic()
        proc = mmreview(command, str(SERIES / "matrix-32bit.mbox"), "--arch", "x86_64",
                        "--cluster", address, env={"XDG_CACHE_HOME": str(tmp_path)}, timeout=120)
        err = proc.stderr.decode()
        assert proc.returncode == 3, err
        assert err.count("\n") == 1 and err.startswith(f"mmreview: error: {address}: "), err
        assert "unreachable" in err
        assert time.monotonic() - t0 < 30


def test_environment_and_config_name_the_cluster_and_local_overrides_them(tmp_path, kernel_tree):
    """MMREVIEW_CLUSTER, then [cluster] address in the config file; `--cluster local` runs here."""
    dead = f"tcp://127.0.0.1:{free_port()}"
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "MMREVIEW_CLUSTER": dead}
    proc = mmreview("test", str(SERIES / "matrix-32bit.mbox"), "--arch", "x86_64", env=env)
    assert proc.returncode == 3 and dead in proc.stderr.decode()
    conf = tmp_path / "config" / "mmreview" / "config.toml"
    conf.parent.mkdir(parents=True)
    conf.write_text(f'[cluster]\naddress = "{dead}"\n')
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "MMREVIEW_CLUSTER": ""}
    proc = mmreview("test", str(SERIES / "matrix-32bit.mbox"), "--arch", "x86_64", env=env)
    assert proc.returncode == 3 and dead in proc.stderr.decode()
    # `local`: the configured cluster is not contacted (bad input fails here, not at connect).
    proc = mmreview("test", str(SERIES / "matrix-32bit.mbox"), "--tree", str(kernel_tree),
                    "--arch", "sparc", "--cluster", "local", env=env)
    assert proc.returncode == 2 and "unknown architecture" in proc.stderr.decode()


def test_local_run_does_not_import_dask():
    """Without --cluster nothing of Dask is loaded (start-up time of the local CLI)."""
    proc = subprocess.run([PY, "-X", "importtime", "-m", "mmreview", "test",
                           str(SERIES / "matrix-32bit.mbox"), "--arch", "x86_64", "--binary",
                           "multiorder", "--quiet"], capture_output=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.decode().splitlines()
                if line.startswith("import time:")]
    assert "mmreview.matrix.run" in imported            # the matrix ran: a real local run
    assert not [m for m in imported if m.split(".")[0] in ("distributed", "dask")]


def test_worker_offers_what_mmreview_targets_says(tmp_path):
    proc = mmreview("worker", "tcp://127.0.0.1:1", "--targets", "x86_64,i386", "--nthreads", "3",
                    "--dry-run")
    assert proc.returncode == 0, proc.stderr.decode()
    argv = proc.stdout.decode().split()
    assert argv[argv.index("--resources") + 1] == "target-x86_64=3,target-i386=3"
    assert argv[argv.index("--nthreads") + 1] == "3"
    # riscv64's liburcu is built into the cache: an empty one has none, and the worker says so.
    proc = mmreview("worker", "tcp://127.0.0.1:1", "--targets", "riscv64", "--dry-run",
                    env={"XDG_CACHE_HOME": str(tmp_path)})
    assert proc.returncode == 3 and "riscv64" in proc.stderr.decode()
    assert "mmreview setup --arch riscv64" in proc.stderr.decode()


def _wait_for_build(dirs: list[Path], timeout: float = 300) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for d in dirs:
            if [p for p in processes_under(d) if "make" in p or "cc" in p]:
                return d
        time.sleep(0.2)
    raise AssertionError("no build started on any worker")


def test_ctrl_c_cancels_the_reviews_work_on_the_workers(cluster, kernel_tree, tmp_path):
    work = [cluster.cache(n) / "mmreview" / "matrix-work" for n in ("solo", "both")]
    proc = subprocess.Popen([MMREVIEW, "test", str(SERIES / "matrix-break-xarray.mbox"), "--tree",
                             str(kernel_tree), "--arch", "x86_64,i386", "--binary", "xarray",
                             "--no-cache", "--cluster", cluster.address],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    _wait_for_build(work)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(processes_under(d) for d in work):
        time.sleep(0.5)
    assert [p for d in work for p in processes_under(d)] == []


def test_a_worker_dying_mid_run_is_rerun_elsewhere(kernel_tree, tmp_path):
    """Two workers for x86_64; the one building first is killed with everything it started:
    Dask runs that build again on the other, the review is complete and says so."""
    c = LocalCluster(tmp_path)
    try:
        c.start({"a": ["--targets", "x86_64", "--nthreads", "1"],
                 "b": ["--targets", "x86_64", "--nthreads", "1"]})
        addr = c.wait_for(2)
        client = tmp_path / "client"
        out = tmp_path / "review.json"
        proc = subprocess.Popen([MMREVIEW, "check", str(SERIES / "matrix-32bit.mbox"), "--tree",
                                 str(kernel_tree), "--arch", "x86_64", "--binary", "xarray",
                                 "--format", "json", "--quiet", "--json-out", str(out),
                                 "--cluster", c.address], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env={**os.environ, "XDG_CACHE_HOME": str(client)})
        busy = _wait_for_build([c.cache(n) / "mmreview" / "matrix-work" for n in ("a", "b")])
        victim = busy.parts[-3]           # <root>/<name>/mmreview/matrix-work
        time.sleep(1)
        kill_tree(c.workers[victim])
        _, err = proc.communicate(timeout=1800)
        rev = json.loads(out.read_text())
        assert proc.returncode == 0, err.decode()
        cell = rev["cells"][0]
        assert (cell["binary"], cell["verdict"]) == ("xarray", "pass")
        survivor = addr["b" if victim == "a" else "a"]
        assert cell["base_result"]["worker"] == survivor
        assert cell["base_result"]["total"] > 1000
        notes = [n for n in rev["notes"] if n.startswith("cluster:")]
        assert notes and f"run again on {survivor}" in notes[0] and addr[victim] in notes[0], rev["notes"]
    finally:
        c.stop()


@pytest.mark.slow
def test_every_target_full_profile_on_the_cluster_is_the_local_review(kernel_tree, tmp_path):
    """Every target the machine has, full profile, one worker per "machine" and target group
    (natives; qemu ones), against the same review run here."""
    from mmreview.kernel.trees import cache_dir
    c = LocalCluster(tmp_path)
    try:
        for name in ("native", "qemu"):       # riscv64's liburcu is a one-off set-up, not the tree
            (c.cache(name) / "mmreview").mkdir(parents=True)
            if (cache_dir() / "toolchains").is_dir():
                (c.cache(name) / "mmreview" / "toolchains").symlink_to(cache_dir() / "toolchains")
        c.start({"native": ["--targets", "x86_64,i386", "--nthreads", "1"],
                 "qemu": ["--targets", "arm64,s390x,ppc64le,riscv64", "--nthreads", "1"]})
        proc, clustered = review("matrix-break-xarray.mbox", "--tree", str(kernel_tree), "--profile",
                                 "full", "--cluster", c.address, cache=tmp_path / "client",
                                 out=tmp_path / "cluster.json", timeout=6 * 3600)
        assert proc.returncode == 1, proc.stderr.decode()
        proc, local = review("matrix-break-xarray.mbox", "--tree", str(kernel_tree), "--profile",
                             "full", cache=USER_CACHE, out=tmp_path / "local.json", timeout=6 * 3600)
        assert sorted(map(comparable, clustered["cells"])) == sorted(map(comparable, local["cells"]))
    finally:
        c.stop()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
