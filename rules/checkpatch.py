"""checkpatch: the base tree's scripts/checkpatch.pl on each patch of the series.

The reviewer's point: a series is checkpatch-clean before it is posted, by the rules of the kernel it
targets.  Forms it takes: checkpatch's own ERROR/WARNING lines, each a finding named after its type.
Where reviewers read it differently: in userland test code (tools/testing/) BUG_ON() is the test's
assertion, not a kernel crash, so AVOID_BUG there is info, with the reason.

The script is the BASE's, exported with its data files into a temporary directory: a series that
edits scripts/checkpatch.pl does not get its own code run (nor switch its own check off).  A run
that does not finish in TIMEOUT seconds is one finding on that patch, never a hang or a traceback.
"""

import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from unidiff import PatchSet

from mmreview.common.errors import InfraError
from mmreview.common.git import git_out, run_git

ID = "checkpatch"
# It reads only the patch text (and the base's script): a patch that did not apply is checked too.
NEEDS = "diff"
SEVERITY = "warning"       # each finding keeps checkpatch's own level (ERROR -> error, WARNING -> warning)
TITLE = "scripts/checkpatch.pl of the tree under review"
RATIONALE = """
Every mm series is expected to be checkpatch-clean before it is posted
(Documentation/process/submitting-patches.rst), and maintainers bounce series that are not.  The checkpatch.pl of the tree the
series is based on is run, so its rules are those of the kernel version the series targets; its ERROR
and WARNING lines become findings named after their types (checkpatch:LONG_LINE, ...), so they can be
ignored one by one.  In userland test code (tools/testing/) the kernel-only advice is info: a test's
BUG_ON() is its assertion.
"""
SOURCE = "Documentation/process/submitting-patches.rst and scripts/checkpatch.pl of the tree"

FILES = ["scripts/checkpatch.pl", "scripts/spelling.txt", "scripts/const_structs.checkpatch"]
# seconds per patch: checkpatch takes well under a second on an ordinary patch; a pathological one
# (a 50 MB line) is reported, not waited for
TIMEOUT = 60
_HEAD = re.compile(r"^(ERROR|WARNING):([A-Z0-9_]+): (.*)$")
_WHERE = re.compile(r"^#\d+: FILE: (.+?):(\d+):")

# Kernel-only advice that reviewers of userland test code do not ask for: (type, why it is info there)
USERLAND_TESTS = ("tools/testing/",)
NOT_FOR_TESTS = {
    "AVOID_BUG": "in a userland test BUG_ON()/MT_BUG_ON() is the test's assertion, not a kernel crash",
}
# checkpatch's checks that look a cited commit up with `git log` (it runs them in $GIT_DIR)
NEEDS_HISTORY = ("UNKNOWN_COMMIT_ID", "GIT_COMMIT_ID")


def history_gap(repo: Path, base: str) -> str | None:
    """Why commit ids cannot be looked up in `repo` at `base`, or None when its history is there."""
    if git_out(repo, "rev-parse", "--is-shallow-repository", check=False) == "true":
        return "the tree is a shallow clone"
    parents = run_git(repo, "rev-list", "--parents", "-n", "1", base, check=False)
    if parents.returncode == 0 and len(parents.stdout.split()) == 1:
        return "the tree has no history before its base, as an imported release has none"
    return None


def _without_history(typ: str, severity: str, msg: str, gap: str) -> tuple[str, str]:
    """(severity, message) of a commit-id check on a tree that cannot look commits up."""
    if typ == "UNKNOWN_COMMIT_ID":
        cited = re.search(r"'([0-9a-fA-F]+)'", msg)
        what = f"commit id '{cited.group(1)}'" if cited else "the commit id"
        return "info", (f"{what[:1].upper() + what[1:]} not checked: {gap} (info; a --tree "
                        "checkout with the history checks it)")
    # GIT_COMMIT_ID without git: the form is checked, the title is not, and the suggested id is
    # checkpatch's placeholder
    msg = re.sub(r" - ie: .*$", "", msg)
    return severity, f"{msg} (the title is not checked: {gap})"


def _initializer_table(lines: list[str], line: int) -> bool:
    """The macro defined at `line` is a list of brace initializers (`{ VM_FAULT_OOM, "OOM" }, ...`,
    the tables __print_symbolic() takes): it cannot be parenthesised, whatever COMPLEX_MACRO says."""
    body = []
    i = line - 1
    while 0 <= i < len(lines):
        text = lines[i].rstrip()
        body.append(text)
        if not text.endswith("\\"):
            break
        i += 1
    rest = [b.rstrip("\\").strip() for b in body[1:]]
    rest = [r for r in rest if r]
    return bool(rest) and all(r.startswith("{") and r.rstrip(",").endswith("}") for r in rest)


def parse_output(text: str):
    """[(level, type, message, file|None, line|0, excerpt)] from checkpatch --show-types output."""
    out = []
    cur = None
    for line in text.splitlines():
        m = _HEAD.match(line)
        if m:
            cur = [m.group(1), m.group(2), m.group(3), None, 0, []]
            out.append(cur)
            continue
        if cur is None:
            continue
        if not line.strip():
            cur = None
            continue
        w = _WHERE.match(line)
        if w and cur[3] is None:
            cur[3], cur[4] = w.group(1), int(w.group(2))
        elif line.startswith("+") and not cur[5]:
            cur[5].append(line[1:].rstrip())
    return [tuple(c) for c in out]


def run_checkpatch(script: Path, mbox: bytes, cwd: Path, timeout: float | None = None,
                   git_dir: Path | None = None) -> str | None:
    """checkpatch's output, or None when it did not finish within `timeout` (it is killed).
    With `git_dir`, checkpatch looks cited commits up there (read-only `git log`)."""
    perl = shutil.which("perl")
    if perl is None:
        raise InfraError("perl", "not installed; checkpatch.pl needs it (apt-get install perl)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    if git_dir is not None:
        env["GIT_DIR"] = str(git_dir)
    try:
        proc = subprocess.run([perl, str(script), "--no-tree", "--show-types", "--no-summary",
                               "--color=never", "-"], input=mbox, capture_output=True, cwd=cwd,
                              timeout=timeout if timeout is not None else TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        return None
    return proc.stdout.decode("utf-8", "replace")


def applied_line(mail_diff: str, applied, path: str, line: int) -> int:
    """checkpatch numbers lines as the mail's hunks do; `git am` may have applied them at an offset
    (or through a 3-way merge).  The same added text in the applied commit, the one nearest the
    mail's number, is the line to report; a line that cannot be matched keeps the mail's number."""
    if applied is None:
        return line
    try:
        mail = next((pf for pf in PatchSet(mail_diff) if (pf.target_file or "")[2:] == path), None)
    except Exception:       # unidiff on a diff git accepted but it cannot read: keep the number
        return line
    if mail is None:
        return line

    def nearest(text: str, near: int) -> int | None:
        same = [a.no for a in applied.added if a.text == text]
        return min(same, key=lambda n: abs(n - near)) if same else None

    for h in mail:
        if not h.target_start <= line < h.target_start + max(1, h.target_length):
            continue
        added = [(ln.target_line_no, ln.value.rstrip("\n")) for ln in h if ln.is_added]
        for no, text in added:
            if no == line:
                found = nearest(text, line)
                return found if found is not None else line
        # a context line of the hunk: shifted as the hunk's added lines were
        for no, text in added:
            found = nearest(text, no)
            if found is not None:
                return line + found - no
    return line


def check(ctx):
    if not ctx.patches and not ctx.unapplied:
        return []
    with tempfile.TemporaryDirectory(prefix="mmreview-checkpatch-") as tmp:
        # the BASE's script: a series must not run code it brings, nor change its own check
        ctx.checkout.export(ctx.base_rev, tmp, FILES)
        script = Path(tmp) / "scripts" / "checkpatch.pl"
        if not script.exists():
            ctx.skip(None, "the tree has no scripts/checkpatch.pl at the base")
            return []
        patches = {p.number: p for p in ctx.series.patches}
        todo = [(pc, patches[pc.number]) for pc in ctx.patches]
        todo += [(None, p) for p in ctx.unapplied]     # did not apply: the patch text alone
        # the checkout's repository: the series' commits, and the tree's objects and history
        gap = history_gap(ctx.checkout.tree.path, ctx.base_rev)
        git_dir = None if gap else Path(ctx.checkout.path) / ".git"
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            outputs = list(pool.map(lambda t: run_checkpatch(script, t[1].mbox, Path(tmp),
                                                             git_dir=git_dir), todo))
    out = []
    for (pc, patch), text in zip(todo, outputs):
        if pc is None:
            out += _on_diff(ctx, patch, text, gap)
            continue
        if text is None:
            out.append(ctx.finding(pc, "", 0, f"checkpatch.pl did not finish within {TIMEOUT} s on this "
                                   "patch and was stopped; the patch is not checkpatch-checked",
                                   rule="checkpatch:TIMEOUT", severity="warning"))
            continue
        for level, typ, msg, path, line, excerpt in parse_output(text):
            fn = None
            severity = level.lower()
            if path and line:
                line = applied_line(patch.diff, pc.file(path), path, line)
            if path and line and path.endswith((".c", ".h")):
                cf = ctx.cfile(pc.rev_after, path)
                found = cf.function_at(line) if cf else None
                fn = found.name if found else None
            if gap and typ in NEEDS_HISTORY:
                severity, msg = _without_history(typ, severity, msg, gap)
            elif path and path.startswith(USERLAND_TESTS) and typ in NOT_FOR_TESTS:
                severity = "info"
                msg = f"{msg} (info: {NOT_FOR_TESTS[typ]})"
            elif typ == "COMPLEX_MACRO" and path and line:
                src = ctx.source(pc.rev_after, path)
                if src is not None and _initializer_table(src.decode("utf-8", "replace").splitlines(), line):
                    severity = "info"
                    msg = (f"{msg} (info: the macro is a table of {{ value, \"name\" }} initializers, "
                           "as __print_symbolic() takes; it cannot be parenthesised)")
            out.append(ctx.finding(pc, path or "", line, msg, function=fn, excerpt=excerpt,
                                   rule=f"checkpatch:{typ}", severity=severity))
    return out


def _on_diff(ctx, patch, text, gap):
    """Findings on a patch that did not apply: checkpatch's own lines and levels, as the mail
    numbers them (no applied code to map them to, nor to find the function in)."""
    if text is None:
        return [ctx.diff_finding(patch, "", 0, f"checkpatch.pl did not finish within {TIMEOUT} s on "
                                 "this patch and was stopped; the patch is not checkpatch-checked",
                                 rule="checkpatch:TIMEOUT", severity="warning")]
    out = []
    for level, typ, msg, path, line, excerpt in parse_output(text):
        severity = level.lower()
        if gap and typ in NEEDS_HISTORY:
            severity, msg = _without_history(typ, severity, msg, gap)
        elif path and path.startswith(USERLAND_TESTS) and typ in NOT_FOR_TESTS:
            severity = "info"
            msg = f"{msg} (info: {NOT_FOR_TESTS[typ]})"
        out.append(ctx.diff_finding(patch, path or "", line, msg, excerpt=excerpt,
                                    rule=f"checkpatch:{typ}", severity=severity))
    return out
