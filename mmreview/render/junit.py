"""JUnit XML for Jenkins and GitLab: one testcase per patch applied, per matrix cell and per
rule × patch.

A new failure, a patch that did not apply, and findings at or above --fail-on are
<failure>s carrying the excerpt; a pre-existing failure or a cell not run is <skipped>
with its reason (the series did not cause it); findings below the threshold are
reported in <system-out> of a passing case.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from mmreview.rules.findings import Finding
from mmreview.matrix.results import NEW_VERDICTS, V_NOT_RUN, V_PRE
from mmreview.review.model import Review
from mmreview.render import cell_detail, clean_log, location

def _clean(s: str) -> str:
    """XML 1.0 forbids most control characters; compiler and sanitizer logs can hold them."""
    return "\n".join(clean_log(l) for l in s.split("\n"))


def _suite(root: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(root, "testsuite", name=name)


def _case(suite: ET.Element, classname: str, name: str, time: float = 0.0) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{time:.3f}")


def _fail(case: ET.Element, message: str, type_: str, text: str) -> None:
    el = ET.SubElement(case, "failure", message=_clean(message), type=type_)
    el.text = _clean(text)


def _skip(case: ET.Element, message: str) -> None:
    ET.SubElement(case, "skipped", message=_clean(message))


def _finding_text(f: Finding) -> str:
    lines = [f"{f.severity}: {f.rule} at {location(f)}: {f.message}"]
    lines += [f"  + {e}" for e in f.excerpt]
    if f.fixed_by:
        lines.append(f"  (removed again by patch {f.fixed_by})")
    return "\n".join(lines)


def render_junit(review: Review, **_opts) -> str:
    root = ET.Element("testsuites", name=f"mmreview: {_clean(review.series.title)}")
    props = ET.SubElement(ET.SubElement(root, "testsuite", name="mmreview"), "properties")
    ET.SubElement(props, "property", name="confinement", value=review.confinement())
    ET.SubElement(props, "property", name="verdict", value=review.verdict)
    ET.SubElement(props, "property", name="summary", value=_clean(review.summary()))

    apply_suite = _suite(root, "apply")
    for p in review.apply:
        case = _case(apply_suite, "mmreview.apply", f"patch {p.number:02d}: {_clean(p.subject)}")
        if p.state == "failed":
            _fail(case, f"patch {p.number} did not apply"
                  + (f": {', '.join(p.conflict_files)}" if p.conflict_files else ""),
                  "did-not-apply", p.message)
        elif not p.ok:
            _skip(case, "not attempted: an earlier patch did not apply")

    matrix = _suite(root, "matrix")
    for c in review.cells:
        case = _case(matrix, f"mmreview.matrix.run.{c.target}.{c.suite}", c.binary, c.tip.duration)
        v = c.verdict
        if v in NEW_VERDICTS:
            text = "\n".join(c.tip.excerpt)
            if c.tip.command:
                text += f"\n\nReproduce:\n  {c.tip.command}"
            _fail(case, f"{v.replace('-', ' ')}: {cell_detail(c)}", v, text)
        elif v == V_PRE:
            _skip(case, f"pre-existing failure (fails at base too): {cell_detail(c)}")
        elif v == V_NOT_RUN:
            _skip(case, f"not run: {c.tip.reason or 'no reason given'}")
        if c.tip.command:
            ET.SubElement(case, "system-out").text = _clean(f"$ {c.tip.command}\n")

    rules = _suite(root, "rules")
    failing = {id(f) for f in review.failing_findings()}
    whole = {n.rule: n.reason for n in review.not_applied if n.file is None}
    def rule_of(f: Finding) -> str:
        info = review.rule(f.rule)
        return info.id if info else f.rule
    rule_ids = list(dict.fromkeys([r.id for r in review.rules] + [rule_of(f) for f in review.findings]))
    for p in review.apply:
        for rid in rule_ids:
            case = _case(rules, f"mmreview.rules.patch{p.number:02d}", rid)
            if rid in whole:
                _skip(case, f"rule not applied: {whole[rid]}")
                continue
            if not p.ok:
                _skip(case, "patch not applied")
                continue
            fs = [f for f in review.findings_for(p.number) if rule_of(f) == rid]
            bad = [f for f in fs if id(f) in failing]
            if bad:
                _fail(case, f"{len(bad)} finding{'s' if len(bad) != 1 else ''}: {bad[0].message}",
                      bad[0].severity, "\n\n".join(_finding_text(f) for f in fs))
            elif fs:
                ET.SubElement(case, "system-out").text = _clean(
                    "\n\n".join(_finding_text(f) for f in fs) + "\n")

    total = fails = skips = 0
    for suite in root:
        cases = suite.findall("testcase")
        f = sum(1 for c in cases if c.find("failure") is not None)
        s = sum(1 for c in cases if c.find("skipped") is not None)
        t = sum(float(c.get("time", "0")) for c in cases)
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(f))
        suite.set("errors", "0")
        suite.set("skipped", str(s))
        suite.set("time", f"{t:.3f}")
        total, fails, skips = total + len(cases), fails + f, skips + s
    root.set("tests", str(total))
    root.set("failures", str(fails))
    root.set("errors", "0")
    root.set("skipped", str(skips))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
