"""What a review rule reports: one Finding per offending added line."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

SEVERITIES = ("error", "warning", "info")


def severity_rank(sev: str) -> int:
    """Higher is worse; unknown levels rank lowest."""
    return {"info": 1, "warning": 2, "error": 3}.get(sev, 0)


@dataclass
class Finding:
    rule: str                   # rule id, e.g. "lock-order", "checkpatch:LONG_LINE"
    severity: str               # "error" | "warning" | "info"
    patch: int                  # 1-based number of the patch that added the line
    patch_subject: str
    file: str
    line: int                   # line number in the post-image of that patch
    function: str | None        # enclosing C function in the post-image
    message: str
    excerpt: list[str] = field(default_factory=list)   # the offending lines, as added
    fixed_by: int | None = None  # a later patch of the series that removes it again
    checked_on: str = "applied"  # "applied": the tree after the patch; "diff": the patch text alone
                                 # (the patch, or one before it, did not apply)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class RuleInfo:
    """A rule as the reports describe it (SARIF help text, --explain)."""
    id: str
    severity: str
    title: str
    rationale: str              # a maintainer's point, paraphrased
    source: str                 # the review thread it comes from

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class NotApplied:
    """A rule that could not run on a file or at all, and why (never a silent skip)."""
    rule: str
    file: str | None
    reason: str

    def to_json(self) -> dict:
        return asdict(self)
