"""Read one binary's output and exit status into a RunResult (the same reader for every target).

What the suites print (kunit_parser.py reads KTAP; these print their own lines):
  maple        "maple_tree: X of Y tests passed"     (exits 0 even when X < Y)
  xarray       "XArray: X of Y tests passed"         (exits 0 even when X < Y)
  idr-test     "IDA: X of Y tests passed" and XArray/IDR lines of its own
  vma          "N tests run, P passed, F failed."
  main / multiorder   nothing countable: the exit status and crash markers decide
A failed check prints "BUG at <func>:<line>"; an assert() or BUG_ON() aborts
("Assertion `...' failed."); ASan/UBSan print "==PID==ERROR: AddressSanitizer"
or "<file>:<line>: runtime error:".  A signal, an assert or a sanitizer report is
a crash; counts short of the total or a non-zero exit is a failure.
"""

from __future__ import annotations

import re
import signal

from mmreview.matrix.results import BUILD_FAILED, CRASH, FAIL, FAILING, PASS, TIMEOUT, RunResult

EXCERPT_LINES = 12

_COUNTS = re.compile(r"^(?P<what>maple_tree|XArray|IDA|IDR):\s*(?P<x>\d+) of (?P<y>\d+) tests passed",
                     re.M)
_VMA = re.compile(r"^(?P<run>\d+) tests run, (?P<passed>\d+) passed, (?P<failed>\d+) failed\.", re.M)
_BUG = re.compile(r"^BUG at .*|^.*Assertion [`'].*' failed\.?$|^.*\bkernel BUG\b.*", re.M)
_SAN = re.compile(r"^==\d+==ERROR: (?:Address|Leak|Memory|Thread)Sanitizer.*|^.*: runtime error: .*"
                  r"|^SUMMARY: (?:Address|Undefined|Leak)\w*Sanitizer.*", re.M)
_QEMU_SIG = re.compile(r"^qemu: uncaught target signal (\d+) \(([^)]*)\)", re.M)
_VMA_FAIL = re.compile(r"^FAIL: .*|^.*\bfailed\b.*line \d+.*", re.M)


def signame(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _excerpt_from(lines: list[str], start: int, n: int = EXCERPT_LINES) -> list[str]:
    return [l[:300] for l in lines[start:start + n]]


def _first_match(pattern: re.Pattern, text: str, lines: list[str]) -> list[str] | None:
    m = pattern.search(text)
    if not m:
        return None
    start = text.count("\n", 0, m.start())
    return _excerpt_from(lines, start)


def parse_run(target: str, suite: str, binary: str, output: str, returncode: int | None,
              duration: float, timed_out: bool = False, timeout: float | None = None) -> RunResult:
    """`returncode` as subprocess gives it: negative for a signal, None if it never finished."""
    lines = output.splitlines()
    r = RunResult(target=target, suite=suite, binary=binary, state=PASS, duration=round(duration, 2))

    # Counts: the last line of each kind wins (idr-test prints several IDA lines).
    totals: dict[str, tuple[int, int]] = {}
    for m in _COUNTS.finditer(output):
        totals[m.group("what")] = (int(m.group("x")), int(m.group("y")))
    vm = None
    for vm in _VMA.finditer(output):
        pass
    if vm:
        totals["vma"] = (int(vm.group("passed")), int(vm.group("run")))
    if totals:
        r.passed = sum(x for x, _ in totals.values())
        r.total = sum(y for _, y in totals.values())

    san = _first_match(_SAN, output, lines)
    bug = _first_match(_BUG, output, lines)
    qsig = _QEMU_SIG.search(output)

    if timed_out:
        r.state = TIMEOUT
        r.reason = f"no result after {timeout:.0f} s" if timeout else "timed out"
        r.excerpt = [l[:300] for l in lines[-EXCERPT_LINES:]]
        return r
    if returncode is not None and returncode < 0 or qsig:
        num = -returncode if returncode is not None and returncode < 0 else int(qsig.group(1))
        r.state = CRASH
        r.reason = f"killed by {signame(num)}"
        if bug:
            r.reason += ": " + bug[0].strip()
        r.excerpt = san or bug or [l[:300] for l in lines[-EXCERPT_LINES:]]
        return r
    if san:
        r.state = CRASH
        r.reason = "sanitizer report: " + san[0].strip()
        r.excerpt = san
        return r
    # An abort() from assert() can arrive as exit 134 when a shell or qemu relays it.
    if returncode in (134, 139) or (bug and any("Assertion" in l for l in bug[:1])):
        r.state = CRASH
        r.reason = ("assertion failed: " + bug[0].strip()) if bug else f"exit status {returncode}"
        r.excerpt = bug or [l[:300] for l in lines[-EXCERPT_LINES:]]
        return r
    short = [f"{k}: {x} of {y}" for k, (x, y) in totals.items() if x < y]
    if short:
        r.state = FAIL
        r.reason = "; ".join(short) + " tests passed"
        r.excerpt = bug or _first_match(_VMA_FAIL, output, lines) or [l[:300] for l in lines[-EXCERPT_LINES:]]
        return r
    if returncode:
        r.state = FAIL
        r.reason = f"exit status {returncode}"
        r.excerpt = bug or [l[:300] for l in lines[-EXCERPT_LINES:]]
        return r
    if bug:
        # Passed by its own count but printed a BUG: report it rather than hide it.
        r.state = FAIL
        r.reason = bug[0].strip()
        r.excerpt = bug
        return r
    r.reason = (f"{r.passed} of {r.total} tests passed" if r.total is not None else "exit status 0")
    return r


_CC_ERROR = re.compile(r"^.*?(?:error|Error|undefined reference to|multiple definition of)\b.*$", re.M)


_BUILD_ERROR = re.compile(r":\d+(?::\d+)?: (?:fatal )?error: |undefined reference to|multiple definition of"
                          r"|cannot find -l|No such file or directory|\*\*\* No rule to make target")


def build_error_line(excerpt: list[str]) -> str:
    """The error itself out of an excerpt (which may open with an 'In function' line)."""
    return next((l.strip() for l in excerpt if _BUILD_ERROR.search(l)), excerpt[0].strip() if excerpt else "")


def build_errors(log: str, limit: int = 20) -> list[str]:
    """Every distinct compiler/linker error line of a build log, in order (the first `limit`)."""
    seen: dict[str, None] = {}
    for line in log.splitlines():
        if _BUILD_ERROR.search(line):
            seen.setdefault(line.strip()[:300], None)
            if len(seen) >= limit:
                break
    return list(seen)


def first_build_error(log: str) -> list[str]:
    """The first compiler/linker error and the lines after it (make's own lines last resort)."""
    lines = log.splitlines()
    for i, l in enumerate(lines):
        if _BUILD_ERROR.search(l):
            # Include the "In function" context line just above a linker error.
            start = i - 1 if i and ("In function" in lines[i - 1] or "in function" in lines[i - 1]) else i
            return [x[:300] for x in lines[start:start + 8]]
    m = _CC_ERROR.search(log)
    if m:
        start = log.count("\n", 0, m.start())
        return [x[:300] for x in lines[start:start + 8]]
    return [x[:300] for x in lines[-8:]]


# What makes two failures "the same" (results.same_failure): the kind and where, not the numbers
# that move when a series shifts lines or the allocator picks other addresses.
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_POS = re.compile(r":\d+(?::\d+)?\b")
_PID = re.compile(r"==\d+==")
_FRAME = re.compile(r"#\d+ \S+ in (\S+)")


def signature(r, errors: list[str] = ()) -> str:
    """`state: what, where` of a failing RunResult ("" for one that did not fail); for a build,
    `errors` are its distinct error lines (build_errors)."""
    if r.state not in FAILING:
        return ""
    if r.state == BUILD_FAILED:
        # Every distinct error, not the first: a series that adds one to the base's is new.
        what = " | ".join(sorted({_POS.sub("", e) for e in errors})) if errors else \
            (build_error_line(r.excerpt) or r.reason)
    elif r.state == TIMEOUT:
        return TIMEOUT
    else:
        what = r.reason
        if r.state == FAIL and r.total is not None and r.passed is not None:
            # Which checks failed, else how many: a series failing three more is not the same.
            bug = next((l.strip() for l in r.excerpt if l.startswith("BUG at")), "")
            what = bug or f"{r.total - r.passed} tests failed"
        frame = next((m.group(1) for l in r.excerpt for m in [_FRAME.search(l)] if m), "")
        if frame and frame not in what:
            what += f" in {frame}"
    what = _POS.sub("", _PID.sub("", _HEX.sub("0x", what)))
    return f"{r.state}: {' '.join(what.split())[:2000]}"
