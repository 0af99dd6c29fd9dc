"""`--format b4`: a Review as b4 review's check results (b4 0.16.0, b4/review/checks.py:
_run_external_cmd() reads them), checked on the constructed reviews of every verdict."""

from __future__ import annotations

import json

import pytest

import conftest_review as samples
from mmreview.render import render

KEYS = {"tool", "status", "summary", "url", "details"}


def _results(name: str, **opts) -> dict[str, dict]:
    out = json.loads(render(samples.ALL[name](), "b4", **opts))
    assert isinstance(out, list) and all(set(r) == KEYS for r in out), out
    assert all(r["status"] in ("pass", "warn", "fail") for r in out)
    return {r["tool"]: r for r in out}


def _details(result: dict) -> list[dict]:
    return json.loads(result["details"]) if result["details"] else []


def test_clean_is_pass_everywhere():
    res = _results("clean")
    assert {t: r["status"] for t, r in res.items()} == {
        "mmreview-rules": "pass", "mmreview-checkpatch": "pass", "mmreview-matrix": "pass"}


def test_findings_fail_with_one_detail_each():
    review = samples.ALL["findings"]()
    res = _results("findings")
    rules = res["mmreview-rules"]
    assert rules["status"] == "fail"
    expected = [f for f in review.findings if not f.rule.startswith("checkpatch")]
    assert [d["description"] for d in _details(rules)] == [
        f"{f.rule}: {f.file}:{f.line}: {f.message}" for f in expected]
    assert rules["summary"].split(":")[0].endswith(("error", "errors", "warning", "warnings"))


def test_regression_fails_the_matrix_row():
    res = _results("regression")
    assert res["mmreview-matrix"]["status"] == "fail"
    assert any("new failure" in d["description"] for d in _details(res["mmreview-matrix"]))


@pytest.mark.parametrize("later,status", [(False, "fail"), (True, "warn")])
def test_a_patch_that_does_not_apply(later, status):
    res = _results("no-apply", later_patch=later)
    assert res["mmreview-rules"]["status"] == status
    assert "did not apply" in res["mmreview-rules"]["summary"]
