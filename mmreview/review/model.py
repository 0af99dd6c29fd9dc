"""The Review: the one object every renderer reads.

It holds what a reader of any report needs and nothing that would require
going back to the mbox, the tree or the build directories: a summary of the
series (with each patch's diff, so the email reply can quote it), the tree
and base, the apply result per patch, the rules' findings, the matrix cells,
the targets, and the verdict.  It is serialised as versioned JSON
(mmreview/review/schema.json) so `mmreview report review.json --format F`
renders it again without re-running anything.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from mmreview import __version__
from mmreview.common.errors import BadInput, EXIT_FINDINGS, EXIT_INFRA, EXIT_OK
from mmreview.rules.findings import Finding, NotApplied, RuleInfo, SEVERITIES, severity_rank
from mmreview.matrix.results import NEW_VERDICTS, V_NOT_RUN, V_PRE, Cell, RunResult
from mmreview.matrix.targets import TargetInfo

SCHEMA_VERSION = 1
TOOL = "mmreview"

# Verdicts, worst first: the first that holds is the review's verdict.
DID_NOT_APPLY = "did-not-apply"
REGRESSIONS = "regressions"
FINDINGS = "findings"
INCOMPLETE = "incomplete"        # mmreview could not test what the tree has (exit 3), else clean
UNTESTED = "untested"            # the matrix ran, but no cell could say anything about the series
CLEAN = "clean"
VERDICTS = (DID_NOT_APPLY, REGRESSIONS, FINDINGS, INCOMPLETE, UNTESTED, CLEAN)

# --fail-on: the lowest severity that fails the review; "none": findings never do.  "untested"
# may be added (`--fail-on error,untested`): an untested review then fails too (exit 1).
FAIL_ON_CHOICES = (*SEVERITIES, "none")
DEFAULT_FAIL_ON = "error"
FAIL_ON_UNTESTED = "untested"

APPLIED_STATES = ("applied", "applied-3way")


@dataclass
class PatchSummary:
    number: int
    subject: str
    author: str
    message_id: str
    files: list[str] = field(default_factory=list)
    diff: str = ""               # kept so an email reply can quote the lines it comments on


@dataclass
class SeriesSummary:
    title: str
    version: int
    source: str
    kind: str
    author: str                  # the cover letter's author, else patch 1's
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    cover_subject: str | None = None
    cover_message_id: str | None = None
    reply_subject: str = ""      # the Subject a reply answers: the cover letter's as sent, else patch 1's
    base_commit: str | None = None
    notes: list[str] = field(default_factory=list)
    patches: list[PatchSummary] = field(default_factory=list)

    @property
    def reply_to_id(self) -> str | None:
        """The Message-ID a reply threads under: the cover letter's, else patch 1's."""
        if self.cover_message_id:
            return self.cover_message_id
        return self.patches[0].message_id if self.patches else None

    @classmethod
    def from_series(cls, series) -> "SeriesSummary":
        cover = series.cover
        first = series.patches[0] if series.patches else None
        head = cover or first
        return cls(
            title=series.title, version=series.version, source=series.source, kind=series.kind,
            author=head.author if head else "",
            to=list(head.to) if head else [], cc=list(head.cc) if head else [],
            cover_subject=cover.subject if cover else None,
            cover_message_id=cover.message_id if cover else None,
            reply_subject=(head.full_subject or head.subject) if head else "",
            base_commit=series.base_commit, notes=list(series.notes),
            patches=[PatchSummary(number=p.number, subject=p.subject, author=p.author,
                                  message_id=p.message_id, files=list(p.files), diff=p.diff)
                     for p in series.patches])


@dataclass
class TreeInfo:
    path: str
    base_sha: str
    base_rev: str
    base_reason: str
    tip_sha: str
    name: str = ""               # which tree and why it (the checkout you are in, --tree, the default)


@dataclass
class PatchApply:
    number: int
    subject: str
    state: str                   # applied | applied-3way | failed | not-attempted
    commit: str | None = None
    conflict_files: list[str] = field(default_factory=list)
    message: str = ""
    diagnosis: str = ""          # why it failed, in kind (apply.diagnose): "", base-lacks-lines, ...
    detail: list[str] = field(default_factory=list)   # the failing hunk and the nearest base lines
    applies_on: list[str] = field(default_factory=list)  # other trees the series applies on

    @property
    def ok(self) -> bool:
        return self.state in APPLIED_STATES


@dataclass
class SandboxInfo:
    """Whether the series' code (its Makefiles, its tests) ran confined: every report says it."""
    confined: bool
    description: str
    tool: str = ""
    as_nobody: bool = False


@dataclass
class Review:
    series: SeriesSummary
    tree: TreeInfo
    apply: list[PatchApply]
    findings: list[Finding] = field(default_factory=list)
    rules: list[RuleInfo] = field(default_factory=list)
    not_applied: list[NotApplied] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    targets: list[TargetInfo] = field(default_factory=list)
    profile: str = "quick"
    fail_on: str = DEFAULT_FAIL_ON
    fail_on_untested: bool = False                    # --fail-on ...,untested: untested exits 1
    notes: list[str] = field(default_factory=list)   # stages skipped and why, etc.
    sandbox: SandboxInfo | None = None                # None: no series code was built or run
    # matrix.run.PatchFinding: the first patch that breaks a build or test (`mmreview test
    # --per-patch` only; not saved: a review `check` saves never has them).
    per_patch: list = field(default_factory=list)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc)
                         .replace(microsecond=0).isoformat())
    tool: str = TOOL
    tool_version: str = __version__
    schema_version: int = SCHEMA_VERSION

    # ------------------------------------------------------------ verdict

    @property
    def applied_ok(self) -> bool:
        return bool(self.apply) and all(p.ok for p in self.apply)

    @property
    def failed_patch(self) -> PatchApply | None:
        return next((p for p in self.apply if not p.ok), None)

    def failing_findings(self) -> list[Finding]:
        """Findings at or above --fail-on: the ones that fail the review."""
        if self.fail_on == "none":
            return []
        floor = severity_rank(self.fail_on)
        return [f for f in self.findings if severity_rank(f.severity) >= floor]

    def new_failures(self) -> list[Cell]:
        """New failures and failures the series changed (failing at base, differently)."""
        return [c for c in self.cells if c.verdict in NEW_VERDICTS]

    def infra_cells(self) -> list[Cell]:
        """Cells mmreview could not build or run for its own reasons, not the tree's."""
        return [c for c in self.cells if c.infra]

    def untested(self) -> bool:
        """The matrix was asked for and no cell could give a verdict: each is pre-existing (the
        same failure at base and tip says nothing of the series) or not run."""
        return (self.profile != "rules" and self.applied_ok
                and all(c.verdict in (V_PRE, V_NOT_RUN) for c in self.cells))

    @property
    def verdict(self) -> str:
        if not self.applied_ok:
            return DID_NOT_APPLY
        if self.new_failures() or self.per_patch:
            return REGRESSIONS
        if self.failing_findings():
            return FINDINGS
        if self.infra_cells():
            return INCOMPLETE
        if self.untested():
            return UNTESTED
        return CLEAN

    @property
    def exit_code(self) -> int:
        v = self.verdict
        if v == UNTESTED:
            return EXIT_FINDINGS if self.fail_on_untested else EXIT_OK
        return {CLEAN: EXIT_OK, INCOMPLETE: EXIT_INFRA}.get(v, EXIT_FINDINGS)

    @property
    def fails_on(self) -> str:
        """--fail-on as given: `error`, `warning,untested`, ..."""
        return self.fail_on + (f",{FAIL_ON_UNTESTED}" if self.fail_on_untested else "")

    def summary(self) -> str:
        """The verdict as one sentence, the first thing every report says."""
        v = self.verdict
        n_find = len(self.findings)
        below = n_find - len(self.failing_findings())
        if v == DID_NOT_APPLY:
            p = self.failed_patch
            assert p is not None
            where = f" ({', '.join(p.conflict_files)})" if p.conflict_files else ""
            text = f"did not apply: patch {p.number}/{len(self.apply)} \"{p.subject}\"{where}"
            if p.diagnosis:
                from mmreview.apply.diagnose import DESCRIBE
                text += f": {DESCRIBE.get(p.diagnosis, p.diagnosis)}"
            if p.applies_on:
                text += f"; applies on: {', '.join(p.applies_on)}"
            return text
        if v == REGRESSIONS and not self.new_failures():
            return f"regressions: {self.per_patch[0].describe()}"
        if v == REGRESSIONS:
            cells = self.new_failures()
            names = ", ".join(f"{c.target}/{c.binary}" for c in cells[:4])
            more = f" and {len(cells) - 4} more" if len(cells) > 4 else ""
            tail = f"; {_plural(n_find, 'finding')}" if n_find else ""
            return f"regressions: {_plural(len(cells), 'new failure')} ({names}{more}){tail}"
        if v == FINDINGS:
            counts = self.severity_counts()
            parts = ", ".join(f"{_plural(counts[s], s)}" for s in SEVERITIES if counts.get(s))
            return f"findings: {parts}"
        if v == INCOMPLETE:
            c = self.infra_cells()[0]
            return (f"incomplete: {_plural(len(self.infra_cells()), 'cell')} not tested "
                    f"({c.target} {c.suite}/{c.binary}: {c.infra.reason})")
        tail = ""
        if below:
            tail = f" ({_plural(below, 'finding')} below --fail-on {self.fail_on})"
        if v == UNTESTED:
            return f"untested: {self.untested_reason()}{tail}"
        return f"clean{tail}"

    def untested_reason(self) -> str:
        """Why no cell could judge the series: how many were pre-existing or not run, and the
        first reason of each kind."""
        pre = [c for c in self.cells if c.verdict == V_PRE]
        off = [c for c in self.cells if c.verdict == V_NOT_RUN]
        if not pre and not off:
            return "the matrix had no cell to run"
        why = []
        if pre:
            c = pre[0]
            why.append(f"{_plural(len(pre), 'cell')} failing the same at the base "
                       f"({c.suite}/{c.binary}: {c.base.reason if c.base else c.tip.reason})")
        if off:
            c = off[0]
            why.append(f"{_plural(len(off), 'cell')} not run ({c.suite}/{c.binary}: {c.tip.reason})")
        return "no matrix cell could give a verdict: " + "; ".join(why)

    def confinement(self) -> str:
        """One sentence: how the series' code ran on this machine."""
        if self.sandbox is None:
            return "no code from the series was built or run"
        if not self.sandbox.confined:
            return "series code ran NOT confined (--no-sandbox)"
        return f"series code ran {self.sandbox.description}"

    def severity_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for f in self.findings:
            counts[f.severity] = counts.get(f.severity, 0) + 1
        return counts

    def findings_for(self, number: int) -> list[Finding]:
        return [f for f in self.findings if f.patch == number]

    def rule(self, rule_id: str) -> RuleInfo | None:
        """The rule behind a finding; checkpatch findings ("checkpatch:TYPE") map to "checkpatch"."""
        by_id = {r.id: r for r in self.rules}
        return by_id.get(rule_id) or by_id.get(rule_id.split(":", 1)[0])

    def patch(self, number: int) -> PatchSummary | None:
        return next((p for p in self.series.patches if p.number == number), None)

    # ------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "tool": {"name": self.tool, "version": self.tool_version},
            "created": self.created,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "summary": self.summary(),
            "profile": self.profile,
            "fail_on": self.fail_on,
            "fail_on_untested": self.fail_on_untested,
            "series": {**asdict(self.series), "reply_to_id": self.series.reply_to_id},
            "tree": asdict(self.tree),
            "apply": [asdict(p) for p in self.apply],
            "findings": [f.to_json() for f in self.findings],
            "rules": [r.to_json() for r in self.rules],
            "not_applied": [n.to_json() for n in self.not_applied],
            "cells": [c.to_json() for c in self.cells],
            "targets": [asdict(t) for t in self.targets],
            "notes": list(self.notes),
            "sandbox": asdict(self.sandbox) if self.sandbox else None,
            "confinement": self.confinement(),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "review") -> "Review":
        """Rebuild a Review; BadInput naming `source` if it is not one this version reads."""
        if not isinstance(data, dict) or "schema_version" not in data:
            raise BadInput(source, "not an mmreview review (no schema_version)")
        if data["schema_version"] != SCHEMA_VERSION:
            raise BadInput(source, f"unknown review schema version {data['schema_version']!r} "
                                   f"(this mmreview reads version {SCHEMA_VERSION})")
        _check_schema(data, source)
        try:
            s = dict(data["series"])
            s.pop("reply_to_id", None)
            s["patches"] = [PatchSummary(**p) for p in s.get("patches", [])]
            cells = []
            for c in data.get("cells", []):
                base = RunResult(**c["base_result"]) if c.get("base_result") else None
                cells.append(Cell(target=c["target"], suite=c["suite"], binary=c["binary"],
                                  base=base, tip=RunResult(**c["tip_result"])))
            return cls(
                series=SeriesSummary(**s),
                tree=TreeInfo(**data["tree"]),
                apply=[PatchApply(**p) for p in data["apply"]],
                findings=[Finding(**f) for f in data.get("findings", [])],
                rules=[RuleInfo(**r) for r in data.get("rules", [])],
                not_applied=[NotApplied(**n) for n in data.get("not_applied", [])],
                cells=cells,
                targets=[TargetInfo(**t) for t in data.get("targets", [])],
                profile=data.get("profile", "quick"),
                fail_on=data.get("fail_on", DEFAULT_FAIL_ON),
                fail_on_untested=data.get("fail_on_untested", False),
                notes=list(data.get("notes", [])),
                sandbox=SandboxInfo(**data["sandbox"]) if data.get("sandbox") else None,
                created=data["created"],
                tool=data["tool"]["name"], tool_version=data["tool"]["version"],
                schema_version=data["schema_version"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(source, f"malformed review: {type(exc).__name__}: {exc}") from None

    @classmethod
    def loads(cls, text: str, source: str = "review") -> "Review":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInput(source, f"not JSON: {exc.msg} at line {exc.lineno}") from None
        return cls.from_json(data, source)


def parse_fail_on(text: str) -> tuple[str, bool]:
    """`--fail-on warning,untested` -> ("warning", True); a list naming no severity keeps the
    default one.  ValueError naming what is wrong."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    severities = [p for p in parts if p != FAIL_ON_UNTESTED]
    bad = [p for p in severities if p not in FAIL_ON_CHOICES]
    if not parts or bad or len(severities) > 1:
        raise ValueError(f"one of {', '.join(FAIL_ON_CHOICES)}, optionally with ',{FAIL_ON_UNTESTED}'")
    return (severities[0] if severities else DEFAULT_FAIL_ON), FAIL_ON_UNTESTED in parts


def schema() -> dict[str, Any]:
    """The Review's JSON schema, installed with the package (mmreview/review/schema.json)."""
    from importlib.resources import files
    return json.loads(files("mmreview.review").joinpath("schema.json").read_text())


def _check_schema(data: dict[str, Any], source: str) -> None:
    import jsonschema   # only `report` reads a review back: keep the import off every other path
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema()).iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise BadInput(source, f"malformed review: {error.message[:200]} (at {where})")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
