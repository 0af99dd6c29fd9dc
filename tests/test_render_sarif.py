"""SARIF 2.1.0, validated against the official OASIS schema (docs/sarif-schema-2.1.0.json, the
errata01 schema as published by OASIS, vendored)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from conftest import REPO
import conftest_review as samples
from mmreview.render import render

SCHEMA = json.loads((REPO / "docs" / "sarif-schema-2.1.0.json").read_text())
VALIDATOR = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
ALL = {**{f"constructed-{k}": v for k, v in samples.ALL.items()},
       **{f"real-{k}": v for k, v in samples.REAL.items()}}


@pytest.mark.parametrize("name", sorted(ALL))
def test_valid_sarif(name):
    log = json.loads(render(ALL[name](), "sarif"))
    VALIDATOR.validate(log)
    assert log["version"] == "2.1.0"


def test_invalid_sarif_is_caught():
    log = json.loads(render(samples.constructed_findings(), "sarif"))
    log["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(log)


def test_rules_and_results_carry_rationale_location_and_patch():
    review = samples.real("rules-lock-order-pos.mbox")
    log = json.loads(render(review, "sarif"))
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    lock = next(r for r in rules if r["id"] == "lock-order")
    info = review.rule("lock-order")
    assert info.rationale.strip()[:60] in lock["help"]["text"]
    assert lock["defaultConfiguration"]["level"] == "error"
    (res,) = run["results"]
    assert rules[res["ruleIndex"]]["id"] == res["ruleId"] == "lock-order"
    loc = res["locations"][0]
    assert loc["physicalLocation"]["artifactLocation"]["uri"] == "mm/vma.c"
    assert loc["physicalLocation"]["region"]["startLine"] == 161
    assert loc["logicalLocations"][0]["name"] == "vma_prepare"
    assert res["properties"]["patch"] == 1
    assert res["level"] == "error"


def test_checkpatch_types_get_their_own_descriptor():
    log = json.loads(render(samples.constructed_findings(), "sarif"))
    rules = {r["id"]: r for r in log["runs"][0]["tool"]["driver"]["rules"]}
    assert "checkpatch:LONG_LINE" in rules and "checkpatch" in rules
    assert rules["checkpatch:LONG_LINE"]["help"]["text"].startswith("The tree's own")
