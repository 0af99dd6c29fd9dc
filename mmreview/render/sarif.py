"""SARIF 2.1.0 for code-scanning UIs: the rules (rationale as help text) and one result per finding
with file, line, enclosing function and the patch that added it.

Matrix cells are not code locations; they stay out of SARIF (the verdict and counts go into the
run's properties).  Checkpatch findings ("checkpatch:TYPE") each get a descriptor of their own.
"""

from __future__ import annotations

import json

from mmreview.review.model import Review

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def _descriptor(rule_id: str, review: Review) -> dict:
    info = review.rule(rule_id)
    d: dict = {"id": rule_id}
    if info is None:
        d["shortDescription"] = {"text": rule_id}
        return d
    d["name"] = rule_id.replace(":", "-")
    title = info.title if info.id == rule_id else f"{info.title}: {rule_id.split(':', 1)[1]}"
    d["shortDescription"] = {"text": title}
    d["fullDescription"] = {"text": info.rationale or title}
    help_text = info.rationale + (f"\n\nSource: {info.source}" if info.source else "")
    d["help"] = {"text": help_text or title,
                 "markdown": f"{info.rationale}\n\n*Source:* {info.source}" if info.source
                 else (info.rationale or title)}
    d["defaultConfiguration"] = {"level": _LEVEL.get(info.severity, "warning")}
    d["properties"] = {"source": info.source, "severity": info.severity}
    return d


def render_sarif(review: Review, **_opts) -> str:
    ids: dict[str, int] = {}
    descriptors = []
    for r in review.rules:
        ids[r.id] = len(descriptors)
        descriptors.append(_descriptor(r.id, review))
    for f in review.findings:
        if f.rule not in ids:
            ids[f.rule] = len(descriptors)
            descriptors.append(_descriptor(f.rule, review))

    results = []
    for f in review.findings:
        region: dict = {"startLine": max(1, f.line)}
        if len(f.excerpt) > 1:
            region["endLine"] = region["startLine"] + len(f.excerpt) - 1
        if f.excerpt:
            region["snippet"] = {"text": "\n".join(f.excerpt)}
        loc: dict = {}
        if f.file:
            loc["physicalLocation"] = {"artifactLocation": {"uri": f.file, "uriBaseId": "SRCROOT"},
                                       "region": region}
        else:       # a finding on the commit message has no place in the code
            loc["message"] = {"text": f"commit message of patch {f.patch}"}
        if f.function:
            loc["logicalLocations"] = [{"name": f.function, "kind": "function"}]
        results.append({
            "ruleId": f.rule,
            "ruleIndex": ids[f.rule],
            "level": _LEVEL.get(f.severity, "warning"),
            "message": {"text": f"{f.message} (patch {f.patch}: {f.patch_subject})"},
            "locations": [loc],
            "partialFingerprints": {"mmreview/v1": f"{f.rule}:{f.file}:{f.function or ''}:"
                                                   f"{(f.excerpt or [''])[0].strip()}"},
            "properties": {"patch": f.patch, "patchSubject": f.patch_subject,
                           "fixedBy": f.fixed_by, "severity": f.severity},
        })

    run = {
        "tool": {"driver": {"name": review.tool, "version": review.tool_version,
                            "semanticVersion": review.tool_version,
                            "rules": descriptors}},
        "automationDetails": {"id": f"mmreview/{review.series.reply_to_id or 'series'}/"},
        "originalUriBaseIds": {"SRCROOT": {"description": {
            "text": f"the kernel tree after the series (tip {review.tree.tip_sha})"}}},
        "versionControlProvenance": [{"repositoryUri": _file_uri(review.tree.path),
                                      "revisionId": review.tree.tip_sha}],
        "invocations": [{"executionSuccessful": True, "exitCode": review.exit_code,
                         "toolExecutionNotifications": [
                             {"level": "note",
                              "message": {"text": f"{n.rule}" + (f" on {n.file}" if n.file else "")
                                          + f" not applied: {n.reason}"}}
                             for n in review.not_applied]}],
        "results": results,
        "properties": {"verdict": review.verdict, "summary": review.summary(),
                       "confined": bool(review.sandbox and review.sandbox.confined),
                       "confinement": review.confinement(),
                       "series": review.series.title, "baseSha": review.tree.base_sha,
                       "newFailures": [f"{c.target}/{c.suite}/{c.binary}"
                                       for c in review.new_failures()]},
    }
    log = {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def _file_uri(path: str) -> str:
    from pathlib import Path
    return Path(path).absolute().as_uri() if path.startswith("/") else path
