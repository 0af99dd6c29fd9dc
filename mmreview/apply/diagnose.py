"""Why a patch did not apply, in kind, and what the base has where the patch expected its lines.

`git am --3way` says "sha1 information is lacking or useless" when it cannot build a fake
ancestor: the base lacks the blobs (and mostly the lines) the patch was made on.  A reader wants
the kind of failure, not git's words:

- BASE_LACKS: the lines the patch changes are not in the base (made on another tree, mm-unstable
  say): the first hunk that does not match, and the base's lines nearest to where it should go;
- ALREADY: the change is in the tree already (the patch applies in reverse);
- MISSING_FILE: a file the patch changes is not in the tree at all;
- CONFLICT: a real 3-way conflict (git found the ancestor and the merge conflicted).

Read against the tree after the patches before it (the Checkout's HEAD), never the user's tree.
"""

from __future__ import annotations

from pathlib import Path

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

from mmreview.common.git import run_git, show_file

BASE_LACKS = "base-lacks-lines"
ALREADY = "already-applied"
MISSING_FILE = "file-missing"
CONFLICT = "conflict"

DESCRIBE = {
    BASE_LACKS: "the base lacks the lines the patch changes",
    ALREADY: "the change is already in the tree (the patch applies in reverse)",
    MISSING_FILE: "a file the patch changes is not in the tree",
    CONFLICT: "a 3-way merge conflict",
}

_MAX_DETAIL = 24     # lines of hunk and base shown: enough to see the mismatch, not a page


def _applies(wt: Path, diff: bytes, *flags: str) -> bool:
    return run_git(wt, "apply", "--check", *flags, "-", input=diff, check=False).returncode == 0


def diagnose(wt: Path, rev: str, diff: str, am_output: str) -> tuple[str, list[str]]:
    """(kind, detail lines) of a patch (`diff`, its text) that did not apply on `rev` in `wt`."""
    try:
        files = list(PatchSet(diff.splitlines(keepends=True)))
    except (UnidiffParseError, ValueError):
        files = []
    for pf in files:
        if pf.is_added_file:
            continue
        path = (pf.source_file or "").removeprefix("a/")
        if run_git(wt, "cat-file", "-e", f"{rev}:{path}", check=False).returncode != 0:
            return MISSING_FILE, [f"{path} is not in the tree at {rev[:12]}"]
    data = diff.encode()
    if _applies(wt, data, "--cached", "--reverse") or _applies(wt, data, "--reverse"):
        return ALREADY, []
    if "CONFLICT (" in am_output and "could not build fake ancestor" not in am_output:
        return CONFLICT, [l for l in am_output.splitlines() if l.startswith("CONFLICT")][:_MAX_DETAIL]
    return BASE_LACKS, _first_failing_hunk(wt, rev, files)


def _first_failing_hunk(wt: Path, rev: str, files) -> list[str]:
    """The first hunk whose old lines are not in the file, and the base's lines nearest to it."""
    for pf in files:
        if pf.is_added_file:
            continue
        path = (pf.source_file or "").removeprefix("a/")
        raw = show_file(wt, rev, path)
        if raw is None:
            continue
        base = raw.decode("utf-8", "replace").splitlines()
        for hunk in pf:
            old = [l.value.rstrip("\n") for l in hunk if l.is_context or l.is_removed]
            if _find_block(base, old) is not None:
                continue
            header = f"@@ -{hunk.source_start},{hunk.source_length} +{hunk.target_start}," \
                     f"{hunk.target_length} @@"
            out = [f"first failing hunk, {path}:", header]
            out += [f"{l.line_type}{l.value.rstrip(chr(10))}" for l in hunk][:_MAX_DETAIL // 2]
            start = _nearest(base, old, hunk.source_start)
            end = min(len(base), start + max(len(old), 3))
            out.append(f"the base at {path}:{start + 1}-{end}:")
            out += [f" {l}" for l in base[start:end]][:_MAX_DETAIL // 2]
            return out
    return []


def _find_block(lines: list[str], block: list[str]) -> int | None:
    if not block:
        return 0
    first = block[0]
    for i in range(len(lines) - len(block) + 1):
        if lines[i] == first and lines[i:i + len(block)] == block:
            return i
    return None


def _nearest(base: list[str], old: list[str], at: int) -> int:
    """Where in `base` the hunk's old lines best fit: the window sharing the most of them
    (stripped, so re-indented code still counts), nearest the hunk's own line number."""
    want = {l.strip() for l in old if l.strip()}
    n = max(len(old), 1)
    best, best_score = max(0, min(at - 1, len(base) - n)), 0
    for i in range(0, max(1, len(base) - n + 1)):
        score = sum(1 for l in base[i:i + n] if l.strip() in want)
        if score > best_score or (score == best_score and score and abs(i - at) < abs(best - at)):
            best, best_score = i, score
    return best


def failed_on(diagnosis: str, files: list[str]) -> str:
    """A failed patch's files as the report names them: "conflicts in" only for a real conflict."""
    names = ", ".join(files) or "(git named no file)"
    return f"conflicts in {names}" if diagnosis in (CONFLICT, "") else f"does not apply to {names}"
