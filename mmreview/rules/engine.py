"""Review rules: load them from rules/, run them on what a series adds, suppress on request.

API (for `mmreview check` and `mmreview rules`):

    from mmreview.rules.engine import run_rules, load_rules, RulesResult
    with apply_series(tree, series) as co:
        res = run_rules(series, co, ignore=("checkpatch",), only=None)
    res.findings     # list[Finding], ordered by patch, file, line
    res.rules        # list[RuleInfo] of the rules that ran
    res.not_applied  # list[NotApplied]: a rule that could not run on a file, or at all, and why
    res.ignored      # ids skipped (--ignore, .mmreview.toml, [tool.mmreview] in the tree's pyproject.toml)
    res.notes        # list[RuleNote]: what a rule wants the reader to know that is no finding (a lock
                     # line of mm/rmap.c it cannot map, a policy file the series changes but that was
                     # read at the base); str(note) is the one line a Review's notes should carry
    res.seconds      # {rule id: seconds} (benchmarks/rules.py prints them)
    res.to_json()    # {"findings": [{"rule","severity","patch","patch_subject","file","line","function",
                     #                "message","excerpt","fixed_by"}],
                     #  "rules": [...], "not_applied": [...], "ignored": [...],
                     #  "notes": [{"rule","file","line","message"}]}

Finding.patch is the 1-based number in the series; Finding.line is the line in the tree after that
patch (0 with file "" for checkpatch's commit-message findings).  Review policy comes from the BASE
of the series, never its tip: the tree's own ignore lists (.mmreview.toml, pyproject.toml) and what
rules read as policy (mm/rmap.c's lock order) — a series cannot switch its own review off.

Rules that name kernel functions find them where the tree under review keeps them
(`ctx.locate("dup_mmap")` -> the files defining it at the base: kernel/fork.c on 6.1/6.12,
mm/mmap.c on 7.x).  Rules that reason about functions follow the names they meet into their
definitions (`ctx.definition(name)`: a macro, a static inline of a header, a function of another .c
file; the series' own version first, then the tree's at the base, wherever it keeps it) and ask which
definitions mention a token (`ctx.mentioning({"MMF_UNSTABLE"})`: check_stable_address_space() in
include/linux/oom.h).  The tree is searched with `git grep` at the base; what a search found is kept
per base commit under $XDG_CACHE_HOME/mmreview/rules/ (mmreview/rules/definitions.py).

A rule is one file rules/<name>.py with ID, SEVERITY, TITLE, RATIONALE, SOURCE and
`check(ctx: RuleContext) -> list[Finding]`.  Ids to ignore match a rule id
exactly or a prefix before ":" (`checkpatch` ignores every `checkpatch:TYPE`).

What the engine guarantees to every rule: only applied patches are seen; line
numbers are those of the tree after the patch; a finding on a line that a later
patch of the series removes again gets `fixed_by` set to that patch.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Iterator

from mmreview.rules.analysis.cparse import CFile, Function, parse
from mmreview.rules.definitions import _GREP, DefinitionLookup, grep_lines
from mmreview.rules.analysis.diffmap import FileChange, Line, PatchChange, follow_line, patch_changes
from mmreview.common.errors import BadInput
from mmreview.rules.findings import Finding, NotApplied, RuleInfo
from mmreview.common.git import git_env

RULE_FIELDS = ("ID", "SEVERITY", "TITLE", "RATIONALE", "SOURCE", "check")


def rules_dir() -> Path:
    """The rule catalogue: the repository's top-level rules/, installed as mmreview.rules.catalogue
    (pyproject's package-dir), so an editable and a wheel install find it the same way."""
    spec = importlib.util.find_spec("mmreview.rules.catalogue")
    if spec is None or not spec.submodule_search_locations:
        raise BadInput("mmreview.rules.catalogue", "the rule catalogue is not installed")
    return Path(list(spec.submodule_search_locations)[0])


@dataclass
class Rule:
    info: RuleInfo
    module: ModuleType

    @property
    def id(self) -> str:
        return self.info.id


def load_rules(directory: Path | None = None) -> list[Rule]:
    """Every rules/*.py (not starting with "_"), sorted by id; a malformed rule is an error, not a skip."""
    directory = directory or rules_dir()
    if not directory.is_dir():
        raise BadInput(str(directory), "no rules directory")
    out = []
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"mmreview_rules.{path.stem}", path)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        missing = [f for f in RULE_FIELDS if not hasattr(mod, f)]
        if missing:
            raise BadInput(str(path), f"not a rule: missing {', '.join(missing)}")
        out.append(Rule(RuleInfo(id=mod.ID, severity=mod.SEVERITY, title=mod.TITLE,
                                 rationale=" ".join(mod.RATIONALE.split()), source=mod.SOURCE), mod))
    out.sort(key=lambda r: r.id)
    return out


def find_rule(rule_id: str, rules: list[Rule] | None = None) -> Rule | None:
    rules = rules if rules is not None else load_rules()
    base = rule_id.split(":", 1)[0]
    return next((r for r in rules if r.id == rule_id), None) or next((r for r in rules if r.id == base), None)


def _matches(rule_id: str, ids) -> bool:
    return any(rule_id == i or rule_id.split(":", 1)[0] == i for i in ids)


@dataclass
class RuleNote:
    """Something a rule tells the reader that is not a finding on the series: e.g. a lock line of
    the tree's mm/rmap.c that maps to no lock API (orders through it are not checked)."""
    rule: str
    message: str
    file: str | None = None
    line: int = 0

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file and self.line else \
            f"{self.file}: " if self.file else ""
        return f"[{self.rule}] {where}{self.message}"

    def to_json(self) -> dict:
        return {"rule": self.rule, "file": self.file, "line": self.line, "message": self.message}


@dataclass
class RulesResult:
    findings: list[Finding]
    rules: list[RuleInfo]
    not_applied: list[NotApplied]
    ignored: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)   # per rule id
    notes: list[RuleNote] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"findings": [f.to_json() for f in self.findings],
                "rules": [r.to_json() for r in self.rules],
                "not_applied": [n.to_json() for n in self.not_applied],
                "ignored": list(self.ignored),
                "notes": [n.to_json() for n in self.notes]}


# (commit, function, where) -> files: a commit's content never changes, so this is kept per process
_LOCATED: dict[tuple, list[str]] = {}
# (commit, function) -> files with a line that may define it, under mm/, kernel/ and lib/
_CANDIDATES: dict[tuple, list[str]] = {}
# the functions rules locate: found by one search on the first locate() of a revision
LOCATED_TOGETHER = ("dup_mmap", "exit_mmap", "mas_store", "vm_area_free")


class RuleContext(DefinitionLookup):
    """What a check sees: the series' changes per patch, the trees at base and after each patch."""

    def __init__(self, series, checkout, changes: list[PatchChange]):
        self.series = series
        self.checkout = checkout
        self.patches = changes
        # The series' patches from the first that did not apply: a rule that needs only the patch
        # text (NEEDS = "diff") checks them too, on the diff alone.
        self.unapplied = list(series.patches[len(changes):])
        self.base_rev = checkout.base_sha
        self.tip_rev = changes[-1].rev_after if changes else checkout.base_sha
        self.rule: Rule | None = None
        self.not_applied: list[NotApplied] = []
        self.notes: list[RuleNote] = []
        self._src: dict[tuple[str, str], bytes | None] = {}
        self._parsed: dict[tuple[str, str], CFile | None] = {}
        self._blobs = BlobReader(checkout.path)
        self._defs: dict[tuple, object] = {}

    def close(self) -> None:
        self._blobs.close()
        _GREP.save()

    # -- trees
    def source(self, rev: str, path: str) -> bytes | None:
        key = (rev, path)
        if key not in self._src:
            self._src[key] = self._blobs.read(rev, path)
        return self._src[key]

    def cfile(self, rev: str, path: str) -> CFile | None:
        key = (rev, path)
        if key not in self._parsed:
            src = self.source(rev, path)
            self._parsed[key] = parse(src) if src is not None else None
        return self._parsed[key]

    def exists(self, rev: str, path: str) -> bool:
        """A file or directory at `rev`."""
        p = subprocess.run(["git", "-C", str(self.checkout.path), "cat-file", "-e",
                            f"{rev}:{path.rstrip('/')}"], capture_output=True, env=git_env())
        return p.returncode == 0

    def locate(self, function: str, rev: str | None = None,
               where: tuple[str, ...] = ("mm", "kernel", "lib")) -> list[str]:
        """The C files under `where` that define `function` at `rev` (default: the base), found with
        `git grep` and confirmed by parsing: where this kernel keeps it (dup_mmap() is in
        kernel/fork.c on 6.1/6.12 and in mm/mmap.c on 7.x).  The longest definition first (a nommu
        twin comes after)."""
        rev = rev or self.base_rev
        key = (rev, function, where)
        if key not in _LOCATED:
            if (rev, function) not in _CANDIDATES:
                self._grep(rev, {function, *LOCATED_TOGETHER})
            found = []
            for path in _CANDIDATES[(rev, function)]:
                if not path.startswith(tuple(f"{w}/" for w in where)):
                    continue
                cf = self.cfile(rev, path)
                fn = cf.function_named(function) if cf else None
                if fn is not None:
                    found.append((fn.end - fn.start, path))
            _LOCATED[key] = [p for _, p in sorted(found, key=lambda t: (-t[0], t[1]))]
        return list(_LOCATED[key])

    def _grep(self, rev: str, names: set[str]) -> None:
        """One `git grep -F` for every name (a fixed-string search is several times faster than
        the definition regex over 700 files); the definition lines are picked out here."""
        names = {n for n in names if (rev, n) not in _CANDIDATES}
        defs = {n: re.compile(rf"^([A-Za-z_].*[^A-Za-z0-9_])?{re.escape(n)}\(") for n in names}
        got: dict[str, set[str]] = {n: set() for n in names}
        for path, text in grep_lines(self.checkout.path, rev, [f"{n}(" for n in sorted(names)],
                                     [f"{w}/*.c" for w in ("mm", "kernel", "lib")]):
            if not text[:1].isalpha() and text[:1] != "_":
                continue            # indented: a call, not a definition
            for n, rx in defs.items():
                if rx.match(text):
                    got[n].add(path)
        for n in names:
            _CANDIDATES[(rev, n)] = sorted(got[n])

    def series_touches(self, prefixes: tuple[str, ...]) -> bool:
        return any(f.path.startswith(prefixes) or (f.old_path or "").startswith(prefixes)
                   for pc in self.patches for f in pc.files)

    # -- what the series adds
    def c_changes(self) -> Iterator[tuple[PatchChange, FileChange, CFile]]:
        """C files with added lines, parsed at the patch's post-image.  A file tree-sitter cannot
        make sense of is reported as not applied for the running rule, and skipped."""
        for pc in self.patches:
            for fc in pc.files:
                if not fc.is_c or not fc.added:
                    continue
                cf = self.cfile(pc.rev_after, fc.path)
                if cf is None:
                    continue
                if cf.error_ratio > 0.5:
                    self.skip(fc.path, f"patch {pc.number}: tree-sitter-c could not parse {fc.path} "
                                       f"({cf.error_ratio:.0%} of its lines are in parse errors)")
                    continue
                bad = [ln.no for ln in fc.added if ln.text.strip() and cf.unparsed_at(ln.no)]
                if bad:
                    # the rest of the file is checked; these lines are not
                    self.skip(fc.path, f"patch {pc.number}: tree-sitter-c could not parse {fc.path} "
                                       f"around line{'s' if len(bad) > 1 else ''} {_ranges(bad)}; "
                                       "not checked there")
                yield pc, fc, cf

    def added_in(self, fc: FileChange, fn: Function) -> list[Line]:
        return [ln for ln in fc.added if fn.start <= ln.no <= fn.end]

    def prior_lines(self, pc: PatchChange, path: str, function: str | None) -> set[str]:
        """Stripped lines of `function` in `path` at the series' base and just before patch `pc`:
        an added line found there was not introduced by the series (moved or re-added code)."""
        out: set[str] = set()
        if not function:
            return out
        for rev in {self.base_rev, pc.rev_before}:
            cf = self.cfile(rev, path)
            fn = cf.function_named(function) if cf else None
            if fn:
                out.update(" ".join(l.split()) for l in fn.lines(cf.text_lines))
        return out

    def prior_function(self, pc: PatchChange, path: str, function: str) -> list[tuple[CFile, Function]]:
        out = []
        for rev in dict.fromkeys([self.base_rev, pc.rev_before]):
            cf = self.cfile(rev, path)
            fn = cf.function_named(function) if cf else None
            if fn:
                out.append((cf, fn))
        return out

    # -- reporting
    def finding(self, pc: PatchChange, path: str, line: int, message: str, function: str | None = None,
                excerpt: list[str] | None = None, rule: str | None = None,
                severity: str | None = None) -> Finding:
        assert self.rule is not None
        return Finding(rule=rule or self.rule.id, severity=severity or self.rule.info.severity,
                       patch=pc.number, patch_subject=pc.subject, file=path, line=line,
                       function=function, message=message, excerpt=list(excerpt or []))

    def diff_finding(self, patch, path: str, line: int, message: str, excerpt: list[str] | None = None,
                     rule: str | None = None, severity: str | None = None) -> Finding:
        """A finding on a patch that did not apply, read from its text alone (line: the mail's)."""
        assert self.rule is not None
        return Finding(rule=rule or self.rule.id, severity=severity or self.rule.info.severity,
                       patch=patch.number, patch_subject=patch.subject, file=path, line=line,
                       function=None, message=message, excerpt=list(excerpt or []), checked_on="diff")

    def skip(self, path: str | None, reason: str) -> None:
        assert self.rule is not None
        self.not_applied.append(NotApplied(rule=self.rule.id, file=path, reason=reason))

    def note(self, message: str, path: str | None = None, line: int = 0) -> None:
        """Tell the reader something that is not a finding (carried to the Review's notes)."""
        assert self.rule is not None
        n = RuleNote(rule=self.rule.id, message=message, file=path, line=line)
        if n not in self.notes:
            self.notes.append(n)


class BlobReader:
    """Files at any revision through one `git cat-file --batch` (a rule run reads dozens)."""

    def __init__(self, repo):
        self.proc = subprocess.Popen(["git", "-C", str(repo), "cat-file", "--batch"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=git_env())

    def read(self, rev: str, path: str) -> bytes | None:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(f"{rev}:{path}\n".encode())
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().decode().split()
        if len(header) != 3 or header[1] != "blob":
            return None             # "<name> missing", or a tree
        data = self.proc.stdout.read(int(header[2]))
        self.proc.stdout.read(1)    # the newline after the content
        return data

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin
            self.proc.stdin.close()
            self.proc.wait()


def _ranges(nums: list[int]) -> str:
    """[3,4,5,9] -> "3-5, 9"."""
    out: list[list[int]] = []
    for n in sorted(nums):
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    parts = [f"{a}-{b}" if a != b else str(a) for a, b in out]
    more = f" and {len(parts) - 4} more ranges" if len(parts) > 4 else ""
    return ", ".join(parts[:4]) + more


def tree_ignores(checkout, rev: str) -> list[str]:
    """Rule ids the tree itself asks to skip: `.mmreview.toml` (ignore = [...]) and
    `[tool.mmreview] ignore = [...]` in its pyproject.toml, at `rev` (run_rules passes the base:
    a series that adds or edits them does not change its own review)."""
    out: list[str] = []
    for path, pick in ((".mmreview.toml", lambda d: d), ("pyproject.toml",
                                                         lambda d: d.get("tool", {}).get("mmreview", {}))):
        raw = checkout.show(rev, path)
        if raw is None:
            continue
        try:
            data = pick(tomllib.loads(raw.decode("utf-8", "replace")))
        except tomllib.TOMLDecodeError as exc:
            raise BadInput(f"{path} in the tree", f"not valid TOML: {exc}")
        ids = data.get("ignore", []) if isinstance(data, dict) else []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise BadInput(f"{path} in the tree", "ignore must be a list of rule ids")
        out += ids
    return out


def run_rules(series, checkout, ignore=(), only=None, rules: list[Rule] | None = None) -> RulesResult:
    """Run every rule (or those in `only`) except the ignored ones on the applied part of `series`."""
    rules = rules if rules is not None else load_rules()
    changes = patch_changes(series, checkout)
    ignored = list(dict.fromkeys([*ignore, *tree_ignores(checkout, checkout.base_sha)]))
    ctx = RuleContext(series, checkout, changes)
    touched = [p for p in (".mmreview.toml", "pyproject.toml") if any(
        f.path == p or f.old_path == p for pc in changes for f in pc.files)]
    findings: list[Finding] = []
    ran: list[RuleInfo] = []
    seconds: dict[str, float] = {}
    index = {pc.number: i for i, pc in enumerate(changes)}
    try:
        _run_each(rules, ctx, only, ignored, findings, ran, seconds, changes, index)
    finally:
        ctx.close()
    findings.sort(key=lambda f: (f.patch, f.file, f.line, f.rule))
    notes = [RuleNote(rule="rules", file=p, message="the series changes this review policy file; the "
                      "base's version was used (a series does not configure its own review)")
             for p in touched] + ctx.notes
    return RulesResult(findings=findings, rules=ran, not_applied=ctx.not_applied, ignored=ignored,
                       seconds=seconds, notes=notes)


def needs_diff_only(rule: Rule) -> bool:
    """A rule that reads only the patch text (checkpatch) runs on patches that did not apply too."""
    return getattr(rule.module, "NEEDS", "applied") == "diff"


def _numbers(patches) -> str:
    nums = [p.number for p in patches]
    return f"patch {nums[0]}" if len(nums) == 1 else f"patches {nums[0]}-{nums[-1]}"


def _run_each(rules, ctx, only, ignored, findings, ran, seconds, changes, index) -> None:
    for rule in rules:
        if only is not None and not _matches(rule.id, only):
            continue
        if _matches(rule.id, ignored):
            continue
        ctx.rule = rule
        if ctx.unapplied and not needs_diff_only(rule):
            # Said, never a silent gap: which patches the rule could not read, and why.
            ctx.skip(None, f"not run on {_numbers(ctx.unapplied)}: patch {ctx.unapplied[0].number} "
                           "did not apply, and the rule reads the code as applied")
            if not changes:
                continue            # it has nothing to read at all: it did not run
        t0 = time.monotonic()
        got = rule.module.check(ctx) or []
        seconds[rule.id] = time.monotonic() - t0
        ran.append(rule.info)
        for f in got:
            if _matches(f.rule, ignored):
                continue
            if f.fixed_by is None and f.patch in index and f.line > 0:
                f.fixed_by = follow_line(changes, index[f.patch], f.file, f.line)
            findings.append(f)
