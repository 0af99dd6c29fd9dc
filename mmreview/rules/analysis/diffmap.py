"""What each patch of an applied series changed, line by line.

The diff is taken from the Checkout's commits (`git diff <after k-1> <after k>`),
not from the mail: `git am` may have applied a hunk at an offset or through a
3-way merge, and rules must point at the line as it really is in the tree
after patch k.  Zero context (-U0) keeps every hunk line a changed line, which
makes following a line through later patches (`follow_line`) exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from unidiff import PatchSet

from mmreview.rules.analysis.cparse import is_c_path
from mmreview.common.git import run_git


@dataclass
class Line:
    no: int                     # post-image line for added, pre-image line for removed
    text: str                   # without the leading +/- and newline


@dataclass
class FileChange:
    path: str                   # post-image path (pre-image path for a deleted file)
    old_path: str | None        # pre-image path (None for a new file)
    status: str                 # "added" | "removed" | "modified" | "renamed"
    binary: bool
    added: list[Line] = field(default_factory=list)
    removed: list[Line] = field(default_factory=list)
    hunks: list[tuple[int, int, int, int]] = field(default_factory=list)   # (src start, src len, tgt start, tgt len)

    @property
    def is_c(self) -> bool:
        return not self.binary and is_c_path(self.path)

    def added_at(self, no: int) -> Line | None:
        for ln in self.added:
            if ln.no == no:
                return ln
        return None

    @property
    def added_numbers(self) -> set[int]:
        return {ln.no for ln in self.added}


@dataclass
class PatchChange:
    number: int                 # 1-based, as in the series
    subject: str
    rev_before: str
    rev_after: str
    files: list[FileChange]

    def file(self, path: str) -> FileChange | None:
        return next((f for f in self.files if f.path == path), None)


def _strip(path: str | None) -> str | None:
    if path is None or path == "/dev/null":
        return None
    return path[2:] if path.startswith(("a/", "b/")) else path


def parse_diff(text: str) -> list[FileChange]:
    out = []
    for pf in PatchSet(text):
        src, tgt = _strip(pf.source_file), _strip(pf.target_file)
        if pf.is_added_file:
            status = "added"
        elif pf.is_removed_file:
            status = "removed"
        elif src and tgt and src != tgt:
            status = "renamed"
        else:
            status = "modified"
        fc = FileChange(path=tgt or src or pf.path, old_path=src if status != "added" else None,
                        status=status, binary=pf.is_binary_file)
        for h in pf:
            fc.hunks.append((h.source_start, h.source_length, h.target_start, h.target_length))
            for ln in h:
                text_ = ln.value.rstrip("\n")
                if ln.is_added:
                    fc.added.append(Line(ln.target_line_no, text_))
                elif ln.is_removed:
                    fc.removed.append(Line(ln.source_line_no, text_))
        out.append(fc)
    return out


def diff_between(repo, before: str, after: str) -> list[FileChange]:
    proc = run_git(repo, "diff", "--no-color", "--no-ext-diff", "-U0", "-M", before, after)
    return parse_diff(proc.stdout.decode("utf-8", "replace"))


def patch_changes(series, checkout) -> list[PatchChange]:
    """One PatchChange per applied patch (a patch that did not apply has no post-image to check).
    All diffs come from one `git log -p` (one process instead of one per patch)."""
    commits = checkout.commits
    if not commits:
        return []
    sep = "@@mmreview-commit@@ "
    proc = run_git(checkout.path, "log", "--reverse", "--no-color", "--no-ext-diff", "-p", "-U0", "-M",
                   "--first-parent", f"--format={sep}%H", f"{checkout.base_sha}..{commits[-1]}")
    text = proc.stdout.decode("utf-8", "replace")
    diffs: dict[str, str] = {}
    for chunk in ("\n" + text).split("\n" + sep)[1:]:
        sha, _, body = chunk.partition("\n")
        diffs[sha.strip()] = body
    out = []
    for i, patch in enumerate(series.patches[:len(commits)]):
        before, after = checkout.rev_after(i), checkout.rev_after(i + 1)
        files = parse_diff(diffs[after]) if after in diffs else diff_between(checkout.path, before, after)
        out.append(PatchChange(number=patch.number, subject=patch.subject, rev_before=before,
                               rev_after=after, files=files))
    return out


def follow_line(changes: list[PatchChange], k: int, path: str, line: int) -> int | None:
    """The later patch (number) that removes line `line` of `path` as it stood after patch index k
    (0-based index into `changes`), or None if the line survives to the tip."""
    for pc in changes[k + 1:]:
        fc = next((f for f in pc.files if (f.old_path or f.path) == path), None)
        if fc is None:
            continue
        if fc.status == "removed":
            return pc.number
        delta = 0
        for s, ls, _t, lt in fc.hunks:
            if ls == 0:
                if line > s:
                    delta += lt
            elif s <= line < s + ls:
                return pc.number
            elif line >= s + ls:
                delta += lt - ls
        line += delta
        path = fc.path
    return None
