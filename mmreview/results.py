"""Results of the architecture matrix: one RunResult per (target, suite, binary, revision).

Base and tip results side by side give each cell its verdict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# States of one run.
PASS = "pass"
FAIL = "fail"
CRASH = "crash"
TIMEOUT = "timeout"
BUILD_FAILED = "build-failed"
NOT_RUN = "not-run"
FAILING = (FAIL, CRASH, TIMEOUT, BUILD_FAILED)

# Verdicts of one cell.
V_PASS = "pass"
V_NEW = "new-failure"
V_PRE = "pre-existing"
V_FIXED = "fixed"
V_NOT_RUN = "not-run"


@dataclass
class RunResult:
    target: str
    suite: str
    binary: str
    state: str                   # one of the states above
    passed: int | None = None    # from "X of Y tests passed"
    total: int | None = None
    duration: float = 0.0
    excerpt: list[str] = field(default_factory=list)   # first lines of the failure / compiler error
    command: str = ""            # shell command that reproduces it locally
    sanitizers: list[str] = field(default_factory=list)
    reason: str = ""             # why not-run, or a one-line summary of the failure
    cached: bool = False         # taken from the result cache (same inputs ran before)

    def to_json(self) -> dict:
        return asdict(self)


def verdict(base: RunResult | None, tip: RunResult) -> str:
    if tip.state == NOT_RUN:
        return V_NOT_RUN
    tip_bad = tip.state in FAILING
    base_bad = base is not None and base.state in FAILING
    if base is None or base.state == NOT_RUN:
        return V_NEW if tip_bad else V_PASS
    if tip_bad:
        return V_PRE if base_bad else V_NEW
    return V_FIXED if base_bad else V_PASS


@dataclass
class Cell:
    target: str
    suite: str
    binary: str
    base: RunResult | None
    tip: RunResult

    @property
    def verdict(self) -> str:
        return verdict(self.base, self.tip)

    def to_json(self) -> dict:
        return {"target": self.target, "suite": self.suite, "binary": self.binary,
                "base": self.base.state if self.base else None, "tip": self.tip.state,
                "verdict": self.verdict,
                "base_result": self.base.to_json() if self.base else None,
                "tip_result": self.tip.to_json()}
