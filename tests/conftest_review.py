"""Reviews for the renderer tests, made on the real tree (plain module, imported by the tests).

Each is a real intake + apply on the provisioned tree through the pipeline's own
`new_review`; the rules and the matrix are added as their engines produce them
when those engines are present (`real_*`), else from Findings/Cells built here on real
lines of the series (`constructed_*`).
"""

from __future__ import annotations

import functools
from pathlib import Path

from mmreview.apply.checkout import apply_series
from mmreview.rules.findings import Finding, NotApplied, RuleInfo
from mmreview.intake.read import load_series
from mmreview.review.pipeline import CheckRequest, new_review
from mmreview.matrix.results import Cell, RunResult
from mmreview.review.model import Review, TargetInfo
from mmreview.kernel.trees import open_tree

REPO = Path(__file__).resolve().parents[1]
SERIES = REPO / "series"

RULE_LOCK = RuleInfo(id="lock-order", severity="error", title="Lock ordering follows mm/rmap.c",
                     rationale="Lock ordering is not changed because a new order looks nicer; "
                               "the comment at the head of mm/rmap.c is the authority.",
                     source="Hugh Dickins, maple-tree conversion of vma_expand(), July 2022")
RULE_TEST = RuleInfo(id="error-path-needs-test", severity="warning",
                     title="A new failure path needs a test case",
                     rationale="An error path added to the maple tree needs a test case that "
                               "exercises it.",
                     source="Liam Howlett, fork: Use __mt_dup(), Sept 2023")
RULE_CP = RuleInfo(id="checkpatch", severity="warning", title="checkpatch.pl",
                   rationale="The tree's own scripts/checkpatch.pl.", source="scripts/checkpatch.pl")

XARRAY_CMD = ("make -C tools/testing/radix-tree O=/tmp/build/x86_64 xarray && "
              "/tmp/build/x86_64/xarray")


def _applied(source: str, profile: str = "rules", targets=()) -> Review:
    tree = open_tree(None)
    series = load_series(str(SERIES / source), tree)
    with apply_series(tree, series) as co:
        return new_review(series, str(tree.path), co.result, list(targets),
                          CheckRequest(source=str(SERIES / source), profile=profile))


def _run(target, binary, state, passed=None, total=None, excerpt=(), reason=""):
    return RunResult(target=target, suite="radix-tree", binary=binary, state=state,
                     passed=passed, total=total, duration=8.5, excerpt=list(excerpt),
                     command=XARRAY_CMD.replace("xarray", binary).replace("x86_64", target),
                     sanitizers=["address", "undefined"] if target == "x86_64" else [],
                     reason=reason)


def passing_cells() -> list[Cell]:
    cells = []
    for t in ("x86_64", "arm64"):
        for b in ("xarray", "maple"):
            cells.append(Cell(t, "radix-tree", b, _run(t, b, "pass", 10, 10),
                              _run(t, b, "pass", 10, 10)))
    vma_fail = RunResult(target="x86_64", suite="vma", binary="vma", state="build-failed",
                         excerpt=["/usr/bin/ld: vma.o: undefined reference to `vma_close'"],
                         command="make -C tools/testing/vma", reason="undefined reference to vma_close")
    cells.append(Cell("x86_64", "vma", "vma", vma_fail, vma_fail))
    return cells


@functools.cache
def constructed_clean() -> Review:
    r = _applied("clean-3.mbox", "quick", [TargetInfo("x86_64", True, ["address", "undefined"]),
                                           TargetInfo("arm64", True),
                                           TargetInfo("riscv64", False, [],
                                                      "no liburcu for riscv64")])
    r.cells = passing_cells()
    r.rules = [RULE_LOCK, RULE_TEST, RULE_CP]
    return r


@functools.cache
def constructed_findings() -> Review:
    r = _applied("clean-3.mbox")
    subject = r.apply[2].subject
    r.rules = [RULE_LOCK, RULE_TEST, RULE_CP]
    r.findings = [
        Finding(rule="lock-order", severity="error", patch=3, patch_subject=subject,
                file="tools/testing/radix-tree/maple.c", line=36351,
                function="check_find_range_rev",
                message="takes mapping->i_mmap_rwsem while holding anon_vma->rwsem",
                excerpt=["\tmtree_store_range(mt, 10, 19, xa_mk_value(1), GFP_KERNEL);",
                         "\tmtree_store_range(mt, 30, 39, xa_mk_value(3), GFP_KERNEL);"]),
        Finding(rule="checkpatch:LONG_LINE", severity="warning", patch=1,
                patch_subject=r.apply[0].subject, file="mm/vma.c", line=198,
                function=None, message="line length of 101 exceeds 100 columns | <a@b>",
                excerpt=[" * vma_complete() - Helper function for handling the unlocking after altering"]),
    ]
    r.not_applied = [NotApplied(rule="lock-order", file="lib/maple_tree.c",
                                reason="tree-sitter could not parse the file")]
    return r


@functools.cache
def constructed_regression() -> Review:
    r = _applied("clean-3.mbox", "quick", [TargetInfo("x86_64", True, ["address", "undefined"]),
                                           TargetInfo("arm64", True)])
    r.rules = [RULE_LOCK]
    cells = passing_cells()
    cells[0] = Cell("x86_64", "radix-tree", "xarray", _run("x86_64", "xarray", "pass", 10, 10),
                    _run("x86_64", "xarray", "fail", 8, 10,
                         ["XArray: 8 of 10 tests passed",
                          "BUG at check_xa_mark_1:294 \x1b[1m(ctrl)\x1b[0m"],
                         "8 of 10 tests passed"))
    r.cells = cells
    return r


@functools.cache
def constructed_no_apply() -> Review:
    return _applied("no-apply.mbox")


ALL = {"clean": constructed_clean, "findings": constructed_findings,
       "regression": constructed_regression, "no-apply": constructed_no_apply}


@functools.cache
def real(source: str, profile: str = "rules", arch: str | None = None,
         binary: str | None = None) -> Review:
    """A Review from the real pipeline (intake, apply, rules, and the matrix unless
    profile is "rules") on the provisioned tree."""
    from mmreview.review.pipeline import run_check
    src = source if ".." in source and not source.endswith(".mbox") else str(SERIES / source)
    return run_check(CheckRequest(source=src, profile=profile, arch=arch, binary=binary))


REAL = {"clean": lambda: real("clean-3.mbox"),
        "findings": lambda: real("rules-lock-order-pos.mbox"),
        "no-apply": lambda: real("no-apply.mbox"),
        # the narrow matrix (x86_64, xarray) at base and tip: a new failure
        "regression": lambda: real("matrix-break-xarray.mbox", "quick", "x86_64", "xarray")}
