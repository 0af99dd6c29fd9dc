"""liburcu for riscv64, cross-built from Debian's source package (mmreview/riscv_urcu.py).

The build (apt fetch + configure + make, ~95 s on this machine) runs once per
machine and is cached, so the tests that may trigger it are marked slow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmreview.matrix import riscv_urcu
from mmreview.common.errors import InfraError
from mmreview.common.filelock import exclusive

REPO = Path(__file__).resolve().parents[1]

QEMU = ["qemu-riscv64", "-L", str(riscv_urcu.SYSROOT)]

# Readers walk an RCU-protected pointer while a writer replaces it and frees the
# old one through synchronize_rcu and call_rcu: the calls the suites make.
URCU_PROGRAM = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <urcu.h>

struct box { struct rcu_head rcu; long value; };
static struct box *shared;
static volatile int stop;
static long freed;

static void free_box(struct rcu_head *head)
{
	free(caa_container_of(head, struct box, rcu));
	uatomic_inc(&freed);
}

static void *reader(void *arg)
{
	long seen = 0;
	rcu_register_thread();
	while (!CMM_LOAD_SHARED(stop)) {
		rcu_read_lock();
		struct box *b = rcu_dereference(shared);
		if (b->value < seen) abort();          /* values only grow */
		seen = b->value;
		rcu_read_unlock();
	}
	rcu_unregister_thread();
	return NULL;
}

int main(void)
{
	pthread_t t[2];
	rcu_register_thread();
	shared = calloc(1, sizeof(*shared));
	for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, reader, NULL);
	for (long v = 1; v <= 200; v++) {
		struct box *b = malloc(sizeof(*b));
		b->value = v;
		struct box *old = rcu_xchg_pointer(&shared, b);
		if (v % 2) { synchronize_rcu(); free(old); uatomic_inc(&freed); }
		else call_rcu(&old->rcu, free_box);
	}
	CMM_STORE_SHARED(stop, 1);
	for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
	rcu_barrier();
	printf("urcu-ok freed=%ld value=%ld\n", uatomic_read(&freed), shared->value);
	rcu_unregister_thread();
	return 0;
}
"""


@pytest.fixture(scope="module")
def prefix() -> Path:
    return riscv_urcu.ensure_riscv64_liburcu()


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "mmreview" / "toolchains" / "riscv64"


def _fake_prefix(base: Path, version: str, recipe: int = riscv_urcu.RECIPE,
                 files=riscv_urcu.REQUIRED) -> Path:
    p = base / f"liburcu-{version}"
    for rel in files:
        (p / rel).parent.mkdir(parents=True, exist_ok=True)
        (p / rel).write_text("")
    (p / riscv_urcu.STAMP).write_text(json.dumps({"recipe": recipe, "version": version}))
    return p


# -- cheap: validity, failures ------------------------------------------------------------

def test_only_complete_current_builds_count(private_cache: Path):
    assert riscv_urcu.riscv64_liburcu_prefix() is None
    _fake_prefix(private_cache, "0.14.0-1", recipe=riscv_urcu.RECIPE - 1)     # older recipe
    _fake_prefix(private_cache, "0.15.0-1", files=riscv_urcu.REQUIRED[:-1])   # no liburcu.a
    assert riscv_urcu.riscv64_liburcu_prefix() is None
    old = _fake_prefix(private_cache, "0.13.2-1")
    assert riscv_urcu.riscv64_liburcu_prefix() == old
    new = _fake_prefix(private_cache, "0.13.10-1")                            # 10 > 2, not text order
    assert riscv_urcu.riscv64_liburcu_prefix() == new
    # ensure returns a valid prefix without building (no apt, no compiler)
    assert riscv_urcu.ensure_riscv64_liburcu(progress=lambda *a: pytest.fail(f"built: {a}")) == new


def test_missing_cross_compiler_is_infra_error(private_cache: Path, monkeypatch):
    monkeypatch.setattr(riscv_urcu, "TOOLS", {**riscv_urcu.TOOLS,
                                              "riscv64-mmreview-nonexistent-gcc": "gcc-riscv64-linux-gnu"})
    with pytest.raises(InfraError) as exc:
        riscv_urcu.ensure_riscv64_liburcu()
    assert exc.value.reason == "missing tools; install them with: apt-get install gcc-riscv64-linux-gnu"
    assert not private_cache.exists() or not list(private_cache.glob("liburcu-*"))


def test_failed_step_gives_one_line_reason_and_keeps_log(tmp_path: Path):
    builder = riscv_urcu._Builder(tmp_path, None)
    builder.log.write_text("")
    with pytest.raises(InfraError) as exc:
        builder._run(["sh", "-c", "echo checking...; echo 'urcu.c:12: error: boom' >&2; echo done; exit 2"],
                     cwd=tmp_path, what="make -C src")
    reason = exc.value.reason
    assert "\n" not in reason
    assert reason.startswith("make -C src failed (exit 2): urcu.c:12: error: boom; log: ")
    assert "error: boom" in builder.log.read_text()


# -- real build, real qemu ----------------------------------------------------------------

@pytest.mark.slow
def test_prefix_is_a_static_riscv64_liburcu_from_debian(prefix: Path):
    info = riscv_urcu.build_info(prefix)
    assert prefix == riscv_urcu.toolchain_dir() / f"liburcu-{info['version']}"
    assert info["package"] == "liburcu" and info["version"].startswith("0.13.")   # bookworm: 0.13.2-1
    assert "--disable-compiler-tls" in info["configure"]                           # as debian/rules on riscv64
    assert not list((prefix / "lib").glob("*.so*"))
    members = subprocess.run(["riscv64-linux-gnu-ar", "t", str(prefix / "lib" / "liburcu.a")],
                             capture_output=True, text=True, check=True).stdout.split()
    assert any("compat_futex" in m for m in members)     # self-contained: -lurcu alone links
    head = (prefix / "lib" / "liburcu.a").read_bytes()[:8]
    assert head == b"!<arch>\n"
    elf = subprocess.run(["riscv64-linux-gnu-readelf", "-h", str(prefix / "lib" / "liburcu.a")],
                         capture_output=True, text=True, check=True).stdout
    assert "RISC-V" in elf


@pytest.mark.slow
@pytest.mark.parametrize("lgpl", [True, False], ids=["inline-lgpl", "library-calls"])
def test_urcu_program_runs_under_qemu(prefix: Path, tmp_path: Path, lgpl: bool):
    src = tmp_path / "rcu.c"
    src.write_text(URCU_PROGRAM)
    exe = tmp_path / "rcu"
    cc = [riscv_urcu.CC, "-O2", "-Wall", *(["-D_LGPL_SOURCE"] if lgpl else []),
          *riscv_urcu.cflags(prefix), str(src), "-o", str(exe),
          *riscv_urcu.ldflags(prefix), "-lpthread", "-lurcu"]
    subprocess.run(cc, check=True, capture_output=True)
    assert "RISC-V" in subprocess.run(["file", str(exe)], capture_output=True, text=True).stdout
    run = subprocess.run([*QEMU, str(exe)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "urcu-ok freed=200 value=200"


@pytest.mark.slow
def test_second_call_is_idempotent(prefix: Path):
    stamp = (prefix / riscv_urcu.STAMP).read_bytes()
    mtime = (prefix / "lib" / "liburcu.a").stat().st_mtime_ns
    t0 = time.monotonic()
    again = riscv_urcu.ensure_riscv64_liburcu(progress=lambda *a: pytest.fail(f"rebuilt: {a}"))
    assert again == prefix == riscv_urcu.riscv64_liburcu_prefix()
    assert time.monotonic() - t0 < 2
    assert (prefix / riscv_urcu.STAMP).read_bytes() == stamp
    assert (prefix / "lib" / "liburcu.a").stat().st_mtime_ns == mtime


def _waiting_on_flock(pid: int) -> bool:
    # /proc/locks lists a process blocked on a lock as "N: -> FLOCK ADVISORY WRITE <pid> ...".
    for line in Path("/proc/locks").read_text().splitlines():
        tok = line.split()
        if "->" in tok:
            i = tok.index("->")
            if tok[i + 1:i + 2] == ["FLOCK"] and tok[i + 4:i + 5] == [str(pid)]:
                return True
    return False


@pytest.mark.slow
def test_a_second_process_waits_for_the_builder_then_reuses_its_build(prefix: Path, tmp_path: Path):
    """While one process holds the build lock, another blocks on it; once the first has
    finished (here: its prefix appears), the second takes that prefix instead of building."""
    base = tmp_path / "mmreview" / "toolchains" / "riscv64"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    code = ("from mmreview.matrix import riscv_urcu as r\n"
            "p = r.ensure_riscv64_liburcu(progress=lambda w, d, t: print('step', w, flush=True))\n"
            "print('prefix', p)\n")
    with exclusive(base / f"{riscv_urcu.SOURCE_PACKAGE}.lock"):     # the lock the builder takes
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not _waiting_on_flock(proc.pid):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the second process never waited on the lock"
                time.sleep(0.1)
            assert not (base / "liburcu-work").exists()
            # the "first builder" finishes while the second waits
            shutil.copytree(prefix, base / prefix.name, symlinks=True)
        except BaseException:
            proc.kill()
            raise
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.splitlines() == [f"prefix {base / prefix.name}"]      # no build step ran


@pytest.mark.slow
def test_kernel_multiorder_builds_and_runs_for_riscv64(prefix: Path, kernel_tree: Path, tmp_path: Path):
    """The suites' own Makefile, with the make variables the riscv64 target uses."""
    src = tmp_path / "linux"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(kernel_tree), "archive", "HEAD",
                              "tools", "include", "lib", "arch/riscv/include"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "x", "-C", str(src)], input=archive, check=True)
    suite = src / "tools/testing/radix-tree"
    cflags = ["-I../shared", "-I.", "-I../../include", "-I../../../lib", "-g", "-Og", "-Wall",
              "-D_LGPL_SOURCE", "-idirafter", str(src / "arch/riscv/include"), *riscv_urcu.cflags(prefix)]
    libs = [*riscv_urcu.ldflags(prefix), "-lpthread", "-lurcu"]
    build = subprocess.run(["make", "-C", str(suite), f"-j{os.cpu_count()}", "CC=riscv64-linux-gnu-gcc",
                            "CFLAGS=" + " ".join(cflags), "LDFLAGS=" + " ".join(riscv_urcu.ldflags(prefix)),
                            "LDLIBS=" + " ".join(libs), "multiorder"],
                           capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stderr[-2000:]
    assert "RISC-V" in subprocess.run(["file", str(suite / "multiorder")], capture_output=True, text=True).stdout
    run = subprocess.run([*QEMU, "./multiorder"], cwd=suite, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
