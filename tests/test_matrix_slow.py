"""The whole matrix: all six targets (quick profile), the big-endian series, the full profile.

Slow: minutes to tens of minutes on a 2-core machine.  Run before resolving, not in CI.
"""

from __future__ import annotations

import time

import pytest

from mmreview.matrix import targets as T
from test_matrix import matrix

pytestmark = pytest.mark.slow


def test_quick_profile_on_all_six_targets():
    start = time.monotonic()
    code, cells, err = matrix("matrix-break-xarray.mbox", "--profile", "quick", timeout=3600)
    wall = time.monotonic() - start
    print(f"\nquick profile, all targets: {wall:.0f} s wall")
    for (target, binary), c in sorted(cells.items()):
        print(f"  {target:8} {binary:10} base {c['base']:12} tip {c['tip']:12} {c['verdict']:12} "
              f"{c['tip_result']['duration']:7.1f}s")
    assert code == 1, err
    assert {t for t, _ in cells} == {t.name for t in T.all_targets()}
    assert {b for _, b in cells} == {"xarray", "multiorder", "vma"}
    for t in T.all_targets():
        a = T.availability(t)
        if not a.available:
            assert cells[(t.name, "xarray")]["verdict"] == "not-run"
            assert cells[(t.name, "xarray")]["tip_result"]["reason"] == a.reason
            continue
        assert cells[(t.name, "xarray")]["verdict"] == "new-failure", (t.name, cells[(t.name, "xarray")])
        assert cells[(t.name, "vma")]["verdict"] == "pre-existing"


def test_bigendian_breaks_on_s390x_alone():
    code, cells, err = matrix("matrix-bigendian.mbox", "--arch", "x86_64,i386,arm64,s390x,ppc64le",
                              "--binary", "xarray", timeout=3600)
    assert code == 1, err
    assert cells[("s390x", "xarray")]["verdict"] == "new-failure", cells[("s390x", "xarray")]
    for arch in ("x86_64", "i386", "arm64", "ppc64le"):
        assert cells[(arch, "xarray")]["verdict"] == "pass", cells[(arch, "xarray")]


def test_full_profile_natively():
    """Every binary on both native targets; the vma fix series leaves radix-tree's inputs alone,
    so its tip reuses the base's results (same key) and each radix-tree binary runs once."""
    start = time.monotonic()
    code, cells, err = matrix("vma-fix.mbox", "--profile", "full", "--arch", "x86_64,i386", timeout=7200)
    print(f"\nfull profile, x86_64 + i386: {time.monotonic() - start:.0f} s wall")
    for (target, binary), c in sorted(cells.items()):
        print(f"  {target:8} {binary:10} base {c['base']:12} tip {c['tip']:12} {c['verdict']:12} "
              f"{c['tip_result']['duration']:7.1f}s  {c['tip_result']['reason'][:60]}")
    assert code == 0, err
    assert {b for _, b in cells} == {"xarray", "multiorder", "idr-test", "maple", "main", "vma"}
    for (target, binary), c in cells.items():
        if binary == "vma":
            assert c["verdict"] == "fixed"
        else:
            assert c["verdict"] == "pass", c
    assert cells[("x86_64", "maple")]["tip_result"]["total"] > 1000
