"""The matrix on the real tree with real compilers and real qemu (CI: x86_64, i386, arm64; narrow).

Each test names the few binaries its point needs (--binary), so CI stays quick; the base
results are cached across tests (and runs), as they are for a user reviewing several series.
The whole matrix, every target and the full profile, is in test_matrix_slow.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import MMREVIEW, SERIES, mmreview
from mmreview.matrix import targets as T
from mmreview.kernel.trees import cache_dir


def matrix(series: str, *args: str, timeout: float = 1800) -> tuple[int, dict, str]:
    proc = mmreview("test", str(SERIES / series), "--json", *args, timeout=timeout)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode in (0, 1, 3), err
    cells = json.loads(proc.stdout)
    for c in cells:
        assert {"target", "suite", "binary", "base", "tip", "verdict"} <= set(c)
    return proc.returncode, {(c["target"], c["binary"]): c for c in cells}, err


@pytest.fixture(scope="module", autouse=True)
def ci_targets_present():
    for name in ("x86_64", "i386", "arm64"):
        a = T.availability(T.get_target(name))
        assert a.available, f"set-up: {name} is not available: {a.reason} ({a.apt_command})"


def test_32bit_only_breaks_on_i386():
    """xa_err() through xa_to_internal(): the sign is lost only where long is 32 bits."""
    code, cells, err = matrix("matrix-32bit.mbox", "--arch", "x86_64,i386", "--binary", "xarray")
    assert code == 1, err
    i386, x86 = cells[("i386", "xarray")], cells[("x86_64", "xarray")]
    assert i386["verdict"] == "new-failure" and i386["base"] == "pass"
    assert i386["tip"] in ("fail", "crash")
    assert "check_xa_err" in " ".join(i386["tip_result"]["excerpt"] + [i386["tip_result"]["reason"]])
    assert x86["verdict"] == "pass" and x86["tip"] == "pass"
    assert x86["tip_result"]["total"] > 1000 and x86["tip_result"]["passed"] == x86["tip_result"]["total"]
    # Sanitizers as the target's runtime supports them, and the command that reproduces the cell.
    assert x86["tip_result"]["sanitizers"] == ["address", "undefined"]
    assert "CC=i686-linux-gnu-gcc" in i386["tip_result"]["command"] and "BUILD=32" in i386["tip_result"]["command"]


def test_broken_xarray_is_a_new_failure_and_the_base_is_cached():
    """An off-by-one in xas_find(): a new failure on both native targets, while the base results
    come from the cache the series before filled (same inputs, same flags: nothing rebuilt).
    (Every target, qemu ones too: test_matrix_slow.py.)"""
    matrix("matrix-32bit.mbox", "--arch", "x86_64,i386", "--binary", "xarray")
    code, cells, err = matrix("matrix-break-xarray.mbox", "--arch", "x86_64,i386", "--binary", "xarray")
    assert code == 1, err
    for arch in ("x86_64", "i386"):
        c = cells[(arch, "xarray")]
        assert c["base"] == "pass" and c["tip"] in ("fail", "crash"), c
        assert c["verdict"] == "new-failure"
        assert "lib/test_xarray.c" in " ".join(c["tip_result"]["excerpt"]) or \
            "BUG at check_" in " ".join(c["tip_result"]["excerpt"]), c["tip_result"]
        assert c["base_result"]["cached"] is True      # not rebuilt, not rerun


def test_vma_fix_turns_the_preexisting_link_failure_into_fixed(vma_unlinked):
    """Natively with sanitizers and under qemu (arm64) without."""
    code, cells, err = matrix("vma-fix.mbox", "--tree", str(vma_unlinked), "--arch", "x86_64,arm64",
                              "--binary", "vma")
    for arch in ("x86_64", "arm64"):
        c = cells[(arch, "vma")]
        assert c["base"] == "build-failed" and "vma_close" in " ".join(c["base_result"]["excerpt"])
        assert c["tip"] == "pass" and c["verdict"] == "fixed", c
        assert c["tip_result"]["total"] >= 10 and c["tip_result"]["passed"] == c["tip_result"]["total"]
    assert cells[("arm64", "vma")]["tip_result"]["sanitizers"] == []
    assert cells[("arm64", "vma")]["tip_result"]["command"].endswith("&& (cd tools/testing/vma && qemu-aarch64 ./vma)")
    assert cells[("x86_64", "vma")]["tip_result"]["sanitizers"] == ["address", "undefined"]
    assert code == 0, err


def test_vma_link_failure_is_preexisting_for_another_series(vma_unlinked):
    code, cells, err = matrix("matrix-32bit.mbox", "--tree", str(vma_unlinked), "--arch", "arm64",
                              "--binary", "vma")
    c = cells[("arm64", "vma")]
    assert (c["base"], c["tip"], c["verdict"]) == ("build-failed", "build-failed", "pre-existing")
    excerpt = " ".join(c["tip_result"]["excerpt"])
    assert "undefined reference to `vma_close'" in excerpt
    assert "mm/vma.c:" in excerpt and "matrix-work" not in excerpt   # paths as in the tree
    assert code == 0, err          # a pre-existing failure is not the series' fault


def test_per_patch_names_the_patch_that_breaks_the_build():
    proc = mmreview("test", str(SERIES / "matrix-build-break.mbox"), "--arch", "x86_64",
                    "--binary", "multiorder", "--per-patch", timeout=1800)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "per-patch: patch 2 (xarray: use xas_sibling_end() in xas_pause()) breaks the build of " \
           "multiorder on x86_64 (fixed again by patch 3)" in out
    assert "xas_sibling_end" in out.split("per-patch")[-1]     # the compiler's own words
    assert out.count("per-patch:") == 1
    # The series as a whole builds and passes: the tip cell is fine, bisection is not.
    assert "new-failure" not in out


def test_tip_build_reuses_the_base_objects_but_recompiles_what_the_series_changed(tmp_path, kernel_tree,
                                                                                  monkeypatch):
    """With an empty cache: the tip build follows the base build and takes every object the
    series left alone from ccache (read-only: series code adds nothing to it), while lib/xarray.c
    (which it changed) is compiled again, so the broken xarray still crashes at the tip.  The
    command shown to the user has no ccache."""
    from mmreview.apply.checkout import apply_series
    from mmreview.intake.read import load_series
    from mmreview.matrix.run import run_matrix
    from mmreview.kernel.trees import open_tree
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tree = open_tree(str(kernel_tree))
    with apply_series(tree, load_series(str(SERIES / "matrix-break-xarray.mbox"), tree)) as co:
        m = run_matrix(co, T.parse_arch_list("x86_64"), binaries="xarray")
    c = m.cells[0]
    assert (c.base.state, c.verdict) == ("pass", "new-failure"), c
    assert "ccache" not in c.tip.command
    builds = {b["label"].split("@")[1]: b for b in m.builds}
    # The base compiles everything (misses); the tip recompiles the objects that include
    # lib/xarray.c and takes the rest (hits).
    assert builds["base"]["cache_misses"] >= 10 and builds["base"]["cache_hits"] == 0, builds
    assert builds["tip"]["cache_hits"] >= 10 and 0 < builds["tip"]["cache_misses"] <= 3, builds
    assert m.sandbox.confined


def test_unavailable_target_is_reported_not_skipped(tmp_path, kernel_tree):
    """riscv64 needs the liburcu mmreview builds into its cache: with an empty cache the target
    is unavailable, its cells say why, and naming it with --arch exits 3."""
    proc = mmreview("test", str(SERIES / "matrix-32bit.mbox"), "--tree", str(kernel_tree),
                    "--arch", "riscv64", "--binary", "multiorder,vma", "--json",
                    env={"XDG_CACHE_HOME": str(tmp_path / "cache")}, timeout=1800)
    cells = {c["binary"]: c for c in json.loads(proc.stdout)}
    assert proc.returncode == 3, proc.stderr
    assert set(cells) == {"multiorder", "vma"}
    rv = cells["multiorder"]
    assert (rv["base"], rv["tip"], rv["verdict"]) == ("not-run", "not-run", "not-run")
    assert rv["tip_result"]["reason"] == "liburcu for riscv64 not built (run `mmreview setup --arch riscv64`)"
    assert "riscv64" in proc.stderr.decode() and "mmreview setup --arch riscv64" in proc.stderr.decode()


@pytest.mark.parametrize("args,needle", [
    (["--arch", "sparc"], "unknown architecture"),
    (["--profile", "huge"], "must be quick or full"),
    (["--binary", "nosuch"], "unknown binary"),
    (["--suite", "mm"], "unknown suite"),
    (["--jobs", "0"], "at least 1"),
])
def test_bad_input_exits_2(args, needle):
    proc = mmreview("test", str(SERIES / "matrix-32bit.mbox"), *args)
    assert proc.returncode == 2 and needle in proc.stderr.decode()
    assert b"Traceback" not in proc.stderr


def test_patch_that_does_not_apply_exits_1():
    proc = mmreview("test", str(SERIES / "no-apply.mbox"), "--arch", "x86_64", "--binary", "multiorder")
    assert proc.returncode == 1 and b"did not apply" in proc.stderr


def _descendants_in(workdir_prefix: str) -> list[str]:
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(p / "cwd")
        except OSError:
            continue
        if workdir_prefix in cmd or cwd.startswith(workdir_prefix):
            found.append(f"{p.name}: {cmd[:120]}")
    return found


def test_ctrl_c_kills_children_and_leaves_nothing():
    proc = subprocess.Popen([MMREVIEW, "test", str(SERIES / "matrix-break-xarray.mbox"), "--arch",
                             "x86_64,arm64", "--binary", "xarray", "--no-cache"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    work = cache_dir() / "matrix-work"
    prefix = str(work / f"{proc.pid}-")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _descendants_in(prefix):
        time.sleep(0.2)
    assert _descendants_in(prefix), "no build started"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    time.sleep(0.5)
    assert _descendants_in(prefix) == []
    assert not list(work.glob(f"{proc.pid}-*"))
    assert not list((cache_dir() / "worktrees").glob(f"{proc.pid}-*"))
