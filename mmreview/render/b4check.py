"""The Review as b4's review check results: what `review-perpatch-check-cmd` and
`review-series-check-cmd` commands print (b4 0.16.0, b4/review/checks.py: _run_external_cmd()).

b4 reads stdout as JSON: a list of {"tool", "status": "pass"|"warn"|"fail", "summary", "url",
"details"}; one row per tool in its check matrix.  `details` may be a JSON list of
{"status", "description"} (b4/review_tui/_modals.py: _render_detail_lines(), as its own
checkpatch gives it), shown one dot per entry.

One entry per part of the review: mmreview-rules (the review rules, and whether the patch
applied), mmreview-checkpatch (the tree's checkpatch.pl, run by the rules engine), and, when the
matrix ran, mmreview-matrix.
"""

from __future__ import annotations

import json

from mmreview.review.model import Review
from mmreview.render import cell_detail

PASS, WARN, FAIL = "pass", "warn", "fail"
_ORDER = {PASS: 0, WARN: 1, FAIL: 2}


def _entry(tool: str, items: list[dict], clean: str) -> dict:
    worst = max((i["status"] for i in items), key=_ORDER.__getitem__, default=PASS)
    if not items:
        summary = clean
    else:
        fails = sum(i["status"] == FAIL for i in items)
        warns = len(items) - fails
        parts = [f"{n} {w}{'s' if n != 1 else ''}" for n, w in ((fails, "error"), (warns, "warning")) if n]
        summary = ", ".join(parts) + ": " + items[0]["description"]
    return {"tool": tool, "status": worst, "summary": summary[:200], "url": "",
            "details": json.dumps(items) if items else ""}


def results(review: Review, later_patch: bool = False, patch: int | None = None) -> list[dict]:
    """The check results b4 reads.  later_patch: patch k > 1 of a series, checked alone (b4's
    per-patch check), so not applying by itself is a warning: it may need the patches before
    it, which the series check applies.  patch: the review is of patches 1..k of the series, and
    b4 asks about patch k: only its findings count (a patch before it not applying is a warning)."""
    failing = {id(f) for f in review.failing_findings()}
    rules: list[dict] = []
    checkpatch: list[dict] = []
    for p in review.apply:
        if not p.ok and p.state == "failed":
            why = ", ".join(p.conflict_files) or (p.message.splitlines() or ["git am failed"])[0]
            earlier = patch is not None and p.number < patch
            what = (f"patch {p.number} before it did not apply" if earlier else
                    f"patch did not apply{' alone' if later_patch else ''}")
            rules.append({"status": WARN if (later_patch or earlier) else FAIL,
                          "description": f"{what} on {review.tree.base_rev or 'the base'}: {why}"})
    for f in review.findings:
        if patch is not None and f.patch != patch:
            continue
        item = {"status": FAIL if id(f) in failing else WARN,
                "description": f"{f.rule}: {f.file}:{f.line}: {f.message}"}
        (checkpatch if f.rule.startswith("checkpatch") else rules).append(item)
    on_top = ("" if not patch or patch < 2 else " (on top of patch 1 of the thread)" if patch == 2
              else f" (on top of patches 1-{patch - 1} of the thread)")
    out = [_entry("mmreview-rules", rules, f"{len(review.rules)} rules, no finding{on_top}"),
           _entry("mmreview-checkpatch", checkpatch, "checkpatch.pl: no finding")]
    if review.cells:
        cells = [{"status": FAIL, "description": f"new failure: {c.target} {c.suite}/{c.binary}: "
                                                 f"{cell_detail(c)}"} for c in review.new_failures()]
        cells += [{"status": WARN, "description": f"not tested: {c.target} {c.suite}/{c.binary}: "
                                                  f"{cell_detail(c)}"} for c in review.infra_cells()]
        out.append(_entry("mmreview-matrix", cells,
                          f"{len(review.cells)} cells, no new failure"))
    return out


def render_b4(review: Review, later_patch: bool = False, patch: int | None = None, **_opts) -> str:
    return json.dumps(results(review, later_patch, patch), indent=1) + "\n"


def error_result(message: str, infra: bool) -> str:
    """What b4 shows when mmreview could not review the mail at all."""
    return json.dumps([{"tool": "mmreview", "status": WARN if infra else FAIL,
                        "summary": message[:200], "url": "", "details": ""}]) + "\n"
