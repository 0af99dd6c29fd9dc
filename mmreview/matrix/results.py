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
BLOCKED = "blocked"              # it tried to reach outside its sandbox (files, network)
FAILING = (FAIL, CRASH, TIMEOUT, BUILD_FAILED, BLOCKED)

# Verdicts of one cell.
V_PASS = "pass"
V_NEW = "new-failure"
V_CHANGED = "changed-failure"    # failing at base and tip, but not in the same way: also new
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
    signature: str = ""          # what failed and where, without line numbers or addresses
    infra: bool = False          # not-run because of mmreview or this machine, not the tree
    worker: str = ""             # the cluster worker that ran it ("": this machine, mmreview --cluster not used)

    def to_json(self) -> dict:
        return asdict(self)


def verdict(base: RunResult | None, tip: RunResult) -> str:
    """Pre-existing means the same failure at base and tip (kind and where), not any failure:
    a series that turns a base's timeout into a crash is a changed failure, which is new."""
    if tip.state == NOT_RUN or (base is not None and base.infra):
        return V_NOT_RUN
    tip_bad = tip.state in FAILING
    base_bad = base is not None and base.state in FAILING
    if base is None or base.state == NOT_RUN:
        return V_NEW if tip_bad else V_PASS
    if tip_bad:
        if not base_bad:
            return V_NEW
        return V_PRE if same_failure(base, tip) else V_CHANGED
    return V_FIXED if base_bad else V_PASS


def same_failure(a: RunResult, b: RunResult) -> bool:
    # A Review JSON written before signatures existed has none: compare what it has.
    return a.state == b.state and (a.signature or a.state) == (b.signature or b.state)


NEW_VERDICTS = (V_NEW, V_CHANGED)


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

    @property
    def infra(self) -> RunResult | None:
        """The result (base's first) mmreview could not produce for its own reasons, if any."""
        return next((r for r in (self.base, self.tip) if r is not None and r.infra), None)

    def to_json(self) -> dict:
        return {"target": self.target, "suite": self.suite, "binary": self.binary,
                "base": self.base.state if self.base else None, "tip": self.tip.state,
                "verdict": self.verdict,
                "base_result": self.base.to_json() if self.base else None,
                "tip_result": self.tip.to_json()}
