"""JUnit XML, read back with junitparser (what Jenkins and GitLab parsers accept)."""

from __future__ import annotations

import pytest
from junitparser import Failure, JUnitXml, Skipped

import conftest_review as samples
from mmreview.render import render


def parse(tmp_path, review):
    path = tmp_path / "junit.xml"
    path.write_text(render(review, "junit"))
    return JUnitXml.fromfile(str(path))


def cases(xml):
    return {(s.name, c.classname, c.name): c for s in xml for c in s}


def test_one_case_per_cell_and_per_rule_and_patch(tmp_path):
    review = samples.constructed_regression()
    xml = parse(tmp_path, review)
    by = cases(xml)
    matrix = [k for k in by if k[0] == "matrix"]
    assert len(matrix) == len(review.cells)
    rules = [k for k in by if k[0] == "rules"]
    assert len(rules) == len(review.rules) * len(review.apply)
    new = by[("matrix", "mmreview.matrix.run.x86_64.radix-tree", "xarray")]
    fail = [r for r in new.result if isinstance(r, Failure)]
    assert fail and fail[0].type == "new-failure"
    assert "XArray: 8 of 10 tests passed" in fail[0].text
    assert "\x1b" not in fail[0].text            # control characters cleaned for XML
    pre = by[("matrix", "mmreview.matrix.run.x86_64.vma", "vma")]
    assert any(isinstance(r, Skipped) for r in pre.result)
    assert xml.failures == 1


def test_findings_fail_their_rule_case(tmp_path):
    review = samples.real("rules-lock-order-pos.mbox")
    by = cases(parse(tmp_path, review))
    lock = by[("rules", "mmreview.rules.patch01", "lock-order")]
    fail = [r for r in lock.result if isinstance(r, Failure)]
    assert fail and fail[0].type == "error"
    assert "mm/vma.c:161" in fail[0].text and "anon_vma_lock_write" in fail[0].text
    ok = by[("rules", "mmreview.rules.patch02", "lock-order")]
    assert not ok.result


@pytest.mark.parametrize("name", sorted(samples.ALL))
def test_every_review_parses(tmp_path, name):
    xml = parse(tmp_path, samples.ALL[name]())
    assert xml.tests == sum(len(list(s)) for s in xml)
    if name == "no-apply":
        by = cases(xml)
        failed = by[("apply", "mmreview.apply",
                     "patch 02: mm/mmap: spell VMA consistently in the find_vma_prev() comment")]
        assert isinstance(failed.result[0], Failure)


def test_real_new_failure_carries_its_excerpt(tmp_path):
    review = samples.REAL["regression"]()
    by = cases(parse(tmp_path, review))
    case = by[("matrix", "mmreview.matrix.run.x86_64.radix-tree", "xarray")]
    (fail,) = [r for r in case.result if isinstance(r, Failure)]
    assert fail.type == "new-failure"
    assert review.cells[0].tip.excerpt[0] in fail.text
    assert "Reproduce:" in fail.text
