"""The run parser: one reader for every target's output (as kunit_parser.py is for KTAP)."""

from __future__ import annotations

import signal

from mmreview.matrix.results import BUILD_FAILED, CRASH, FAIL, PASS, TIMEOUT, Cell, RunResult, verdict
from mmreview.matrix.parse import first_build_error, parse_run


def run(out: str, rc: int | None = 0, **kw) -> RunResult:
    return parse_run("arm64", "radix-tree", "xarray", out, rc, 1.5, **kw)


def test_counts_pass_and_fail():
    r = run("random seed 1\nXArray: 159585263 of 159585263 tests passed\n")
    assert (r.state, r.passed, r.total) == (PASS, 159585263, 159585263)
    # xarray and maple exit 0 even when checks failed: the count decides.
    r = run("BUG at check_find_1:1190\nxa_dump ...\nXArray: 1000 of 1003 tests passed\n")
    assert r.state == FAIL and r.reason == "XArray: 1000 of 1003 tests passed"
    assert r.excerpt[0] == "BUG at check_find_1:1190"
    r = run("maple_tree: 3000 of 3001 tests passed\n")
    assert r.state == FAIL and (r.passed, r.total) == (3000, 3001)


def test_idr_counts_the_last_line_of_each_kind():
    out = "IDA: 10 of 10 tests passed\nXArray: 5 of 5 tests passed\nIDA: 1000 of 1000 tests passed\n"
    r = parse_run("x86_64", "radix-tree", "idr-test", out, 0, 44.0)
    assert r.state == PASS and (r.passed, r.total) == (1005, 1005)


def test_vma_summary():
    r = parse_run("x86_64", "vma", "vma", "Test foo: ok\n22 tests run, 22 passed, 0 failed.\n", 0, 0.2)
    assert r.state == PASS and r.total == 22
    r = parse_run("x86_64", "vma", "vma", "FAIL: merge_extend\n22 tests run, 21 passed, 1 failed.\n", 1, 0.2)
    assert r.state == FAIL and r.excerpt[0] == "FAIL: merge_extend"


def test_crashes():
    r = run("xarray: ../../../lib/test_xarray.c:92: check_xa_err: Assertion `0' failed.\n", -signal.SIGABRT)
    assert r.state == CRASH and "SIGABRT" in r.reason and "Assertion" in r.reason
    r = run("qemu: uncaught target signal 11 (Segmentation fault) - core dumped\n", -signal.SIGSEGV)
    assert r.state == CRASH and "SIGSEGV" in r.reason
    # qemu relays the guest's signal as its own exit: the message still says which.
    r = run("qemu: uncaught target signal 6 (Aborted) - core dumped\n", 134)
    assert r.state == CRASH and "SIGABRT" in r.reason
    asan = ("=================================================================\n"
            "==1234==ERROR: AddressSanitizer: heap-use-after-free on address 0x6020 at pc 0x55\n"
            "READ of size 8 at 0x6020 thread T0\n    #0 0x55 in mas_walk maple_tree.c:100\n")
    r = run(asan, 1)
    assert r.state == CRASH and r.excerpt[0].startswith("==1234==ERROR: AddressSanitizer: heap-use-after")
    assert len(r.excerpt) >= 3
    r = run("../../../lib/xarray.c:42:7: runtime error: shift exponent 64 is too large\n"
            "XArray: 5 of 5 tests passed\n", 0)
    assert r.state == CRASH and "runtime error" in r.reason


def test_exit_status_and_timeout():
    r = parse_run("x86_64", "radix-tree", "main", "running tests\n", 2, 3.0)
    assert r.state == FAIL and r.reason == "exit status 2"
    r = parse_run("x86_64", "radix-tree", "main", "running tests\ntests completed\n", 0, 3.0)
    assert r.state == PASS
    r = run("XArray: 1 of 1 tests passed\n", None, timed_out=True, timeout=90)
    assert r.state == TIMEOUT and "90 s" in r.reason


def test_first_build_error():
    log = ("make: Entering directory '/x'\n"
           "cc -c foo.c\n"
           "/usr/bin/ld: vma.o: in function `remove_vma':\n"
           "/x/../../../mm/vma.c:332: undefined reference to `vma_close'\n"
           "collect2: error: ld returned 1 exit status\n")
    err = first_build_error(log)
    assert err[0].endswith("in function `remove_vma':") and "vma_close" in err[1]
    log = "cc -c a.c\n../../../lib/xarray.c:1150:17: error: 'foo' undeclared (first use in this function)\n"
    assert "error: 'foo' undeclared" in first_build_error(log)[0]


def test_verdicts():
    def rr(state):
        return RunResult("x86_64", "vma", "vma", state)
    assert Cell("x86_64", "vma", "vma", rr(PASS), rr(FAIL)).verdict == "new-failure"
    assert Cell("x86_64", "vma", "vma", rr(BUILD_FAILED), rr(BUILD_FAILED)).verdict == "pre-existing"
    assert Cell("x86_64", "vma", "vma", rr(BUILD_FAILED), rr(PASS)).verdict == "fixed"
    assert verdict(rr(PASS), rr("not-run")) == "not-run"


def test_missing_input_is_a_build_error():
    log = ("make: Entering directory '/x'\n"
           "make: *** No rule to make target '../../../lib/test_xarray.c', needed by 'xarray-shared.o'.\n"
           "make: Target 'vma' not remade because of errors.\n")
    assert "No rule to make target '../../../lib/test_xarray.c'" in first_build_error(log)[0]


def test_build_error_line_is_the_error_not_its_context():
    from mmreview.matrix.parse import build_error_line
    exc = ["/usr/bin/ld: vma.o: in function `remove_vma':",
           "/x/../../../mm/vma.c:332: undefined reference to `vma_close'",
           "collect2: error: ld returned 1 exit status"]
    assert build_error_line(exc) == "/x/../../../mm/vma.c:332: undefined reference to `vma_close'"


def test_paths_read_as_in_the_tree():
    """Compiler errors name the build copy; linker errors and sanitizer frames name the debug
    info's tree-relative path (builds compile with -ffile-prefix-map): both read as in the tree."""
    from pathlib import Path
    from mmreview.matrix.build import tree_relative
    src = Path("/root/.cache/mmreview/matrix-work/123-ab/x86_64-radix-tree-0123456789/src")
    assert tree_relative(f"{src}/tools/testing/radix-tree/../../../lib/xarray.c:1150:17: error: 'foo'",
                         src) == "lib/xarray.c:1150:17: error: 'foo'"
    assert tree_relative("tools/testing/vma/../../../mm/vma.c:332: undefined reference to `vma_close'",
                         src) == "mm/vma.c:332: undefined reference to `vma_close'"
    frame = "    #1 0x55d0 in xas_find tools/testing/radix-tree/../../../lib/xarray.c:1339"
    assert tree_relative(frame, src) == "    #1 0x55d0 in xas_find lib/xarray.c:1339"
    ld = "/usr/lib/gcc-cross/aarch64-linux-gnu/12/../../../../aarch64-linux-gnu/bin/ld: vma.o:"
    assert tree_relative(ld, src) == ld       # not a tree path: left alone


# riscv64's link of 6.12's vma suite, as binutils 2.40 prints it with -ffile-prefix-map (captured
# from `make -C tools/testing/vma CC=riscv64-linux-gnu-gcc` on the 6.12.117 import).
RISCV64_VMA_LINK = """\
/usr/lib/gcc-cross/riscv64-linux-gnu/12/../../../../riscv64-linux-gnu/bin/ld: vma.o: in function `find_vma_prev':
tools/testing/vma/tools/testing/vma/vma_internal.h:578: undefined reference to `vma_close'
/usr/lib/gcc-cross/riscv64-linux-gnu/12/../../../../riscv64-linux-gnu/bin/ld: vma.o: in function `vma_merge_new_range':
tools/testing/vma/../../../mm/vma.c:938: undefined reference to `vma_close'
/usr/lib/gcc-cross/riscv64-linux-gnu/12/../../../../riscv64-linux-gnu/bin/ld: vma.o: in function `test_vmi_prealloc_fail':
tools/testing/vma/tools/testing/vma/vma.c:1420: undefined reference to `vma_close'
collect2: error: ld returned 1 exit status
make: *** [Makefile:15: vma] Error 1
"""


def test_riscv64_linker_paths_name_each_file_once():
    """riscv64's ld names the suite's own files with the suite's directory twice; read as in
    the tree, each error is one path, and the failure one signature line per file."""
    from pathlib import Path
    from mmreview.matrix.build import tree_relative
    from mmreview.matrix.parse import build_errors, signature
    src = Path("/root/.cache/mmreview/matrix-work/123-ab/riscv64-vma-0123456789/src")
    errors = [tree_relative(l, src, "tools/testing/vma") for l in build_errors(RISCV64_VMA_LINK)]
    assert errors == ["tools/testing/vma/vma_internal.h:578: undefined reference to `vma_close'",
                      "mm/vma.c:938: undefined reference to `vma_close'",
                      "tools/testing/vma/vma.c:1420: undefined reference to `vma_close'"]
    r = RunResult("riscv64", "vma", "vma", BUILD_FAILED, excerpt=errors[:1])
    assert "tools/testing/vma/tools" not in signature(r, errors)
    # A path that merely starts with the suite's directory is left as it is.
    assert tree_relative("tools/testing/vma/vma.c:1: x", src, "tools/testing/vma") == \
        "tools/testing/vma/vma.c:1: x"


def test_one_preexisting_failure_is_one_line_whatever_place_each_linker_names():
    """arm64's linker puts 6.12's vma link failure at mm/vma.c:332, riscv64's at the inlined
    vma_internal.h:578: one failure, one line, the targets together."""
    from types import SimpleNamespace
    from mmreview.render import preexisting_lines

    def pre(target, where):
        r = RunResult(target, "vma", "vma", BUILD_FAILED, reason=f"{where}: undefined reference to `vma_close'")
        return Cell(target, "vma", "vma", r, r)
    both = SimpleNamespace(cells=[pre("arm64", "mm/vma.c:332"), pre("x86_64", "mm/vma.c:332"),
                                  pre("riscv64", "tools/testing/vma/vma_internal.h:578")])
    assert preexisting_lines(both) == [
        "vma/vma on arm64, x86_64, riscv64: build-failed: undefined reference to `vma_close' (same as base)"]
    same = SimpleNamespace(cells=both.cells[:2])
    assert preexisting_lines(same) == [
        "vma/vma on arm64, x86_64: build-failed: mm/vma.c:332: undefined reference to `vma_close' (same as base)"]


# ---------------------------------------------------------------- same failure, or a changed one

def signed(out: str, rc: int | None = 0, **kw) -> RunResult:
    from mmreview.matrix.parse import signature
    r = parse_run("i386", "radix-tree", "maple", out, rc, 3.0, **kw)
    r.signature = signature(r)
    return r


def test_a_crash_where_the_base_timed_out_is_a_changed_failure():
    """7.3's i386 maple runs for hours at base (a timeout); a series making it crash at once
    must not hide behind that."""
    from mmreview.matrix.results import V_CHANGED, V_PRE
    base = signed("maple_tree: running\n", None, timed_out=True, timeout=1350)
    tip = signed("maple: ../../../lib/maple_tree.c:4211: mas_wr_store_entry: Assertion `0' failed.\n",
                 -signal.SIGABRT)
    assert (base.state, tip.state) == (TIMEOUT, CRASH)
    assert verdict(base, tip) == V_CHANGED
    assert verdict(base, signed("still running\n", None, timed_out=True, timeout=1350)) == V_PRE


def test_the_same_check_failing_at_other_lines_is_preexisting_another_check_is_not():
    from mmreview.matrix.results import V_CHANGED, V_PRE
    base = signed("BUG at check_find_1:1190\nmaple_tree: 1000 of 1003 tests passed\n")
    moved = signed("BUG at check_find_1:1212\nmaple_tree: 1001 of 1004 tests passed\n")
    other = signed("BUG at check_erase2_sets:377\nmaple_tree: 1000 of 1003 tests passed\n")
    assert verdict(base, moved) == V_PRE                 # the series shifted lines, added a test
    assert verdict(base, other) == V_CHANGED


def test_sanitizer_reports_compare_by_kind_and_first_frame_not_addresses():
    from mmreview.matrix.results import V_CHANGED, V_PRE
    report = ("==123==ERROR: AddressSanitizer: heap-use-after-free on address 0x602000000010 at pc "
              "0x55 bp 0x7f sp 0x7e\n    #0 0x55d in mas_walk lib/maple_tree.c:{line}\n")
    base = signed(report.format(line=100), 1)
    assert verdict(base, signed(report.replace("==123==", "==999==").replace("0x6020", "0x6030")
                                .format(line=120), 1)) == V_PRE
    assert verdict(base, signed(report.replace("mas_walk", "mas_find").format(line=100), 1)) == V_CHANGED


def test_build_failures_compare_every_distinct_error():
    """6.12's vma link failure at base; the same at tip is pre-existing, one more error is not."""
    from mmreview.matrix.results import V_CHANGED, V_PRE
    from mmreview.matrix.parse import build_errors, signature
    base_log = ("/usr/bin/ld: vma.o: in function `remove_vma':\nmm/vma.c:332: undefined reference to "
                "`vma_close'\nmm/vma.c:1137: undefined reference to `vma_close'\ncollect2: error: ld "
                "returned 1 exit status\n")
    tip_log = base_log.replace("332", "340") + "mm/vma.c:441: undefined reference to `ksm_add_vma'\n"

    def built(log: str) -> RunResult:
        r = RunResult("x86_64", "vma", "vma", BUILD_FAILED, excerpt=first_build_error(log))
        r.signature = signature(r, build_errors(log))
        return r
    assert verdict(built(base_log), built(base_log.replace("332", "340"))) == V_PRE
    assert verdict(built(base_log), built(tip_log)) == V_CHANGED
