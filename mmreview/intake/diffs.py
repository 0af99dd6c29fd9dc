"""Unified diffs inside patch mail: where the diff starts, which files it
touches, and whether every hunk holds the lines its header promises.

`git am` would find a corrupt hunk too, but only once the series is being
applied; intake names the broken patch before anything touches a tree.
A hand-edited hunk whose counts no longer match is the usual culprit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
# Either side may be C-quoted by git ("a/mm/zo\303\253.c") when the name is not plain ASCII.
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_DIFF_GIT = re.compile(rf"^diff --git ({_QUOTED}|\S+) ({_QUOTED}|\S+)$")
_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
# Where a diff starts in a mail body: a git header, or a bare ---/+++ pair.
_DIFF_START = re.compile(r"^(diff --git |--- \S.*\n\+\+\+ \S)", re.M)


class DiffError(ValueError):
    """A diff that `git apply` would reject; the message says where."""


@dataclass
class _FileDiff:
    old: str | None = None
    new: str | None = None
    deleted: bool = False
    hunks: int = 0
    binary: bool = False
    meta: bool = False      # mode change, rename, copy: a change without hunks


def split_diff(body: str) -> tuple[str, str]:
    """(text before the diff, the diff) of a mail body; the diff is '' if none."""
    m = _DIFF_START.search(body)
    if not m:
        return body, ""
    return body[:m.start()], body[m.start():]


def has_diff(body: str) -> bool:
    return _DIFF_START.search(body) is not None


def unquote_path(path: str) -> str:
    """A path as git wrote it, C-quoted or not, as the name it stands for.  git quotes the
    UTF-8 *bytes* of a name in octal, so they are gathered as bytes and decoded once: reading
    each escape as a character gives mojibake ("zoÃ«" for "zoë")."""
    if len(path) < 2 or not (path.startswith('"') and path.endswith('"')):
        return path
    out = bytearray()
    body = path[1:-1]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            octal = re.match(r"[0-3][0-7]{2}", body[i + 1:i + 4])
            if octal:
                out.append(int(octal.group(0), 8))
                i += 4
                continue
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
        out += ch.encode("utf-8")
        i += 1
    # A name that is not UTF-8 stays visible as escapes rather than becoming U+FFFD.
    return out.decode("utf-8", "backslashreplace")


def _strip_prefix(path: str) -> str:
    path = unquote_path(path)
    if path == "/dev/null":
        return path
    return path.split("/", 1)[1] if "/" in path else path


def check_diff(diff: str) -> list[str]:
    """Validate `diff`; return the paths it touches (post-image names, pre-image
    for deletions).  Raises DiffError naming the file and hunk that is corrupt."""
    files: list[_FileDiff] = []
    cur: _FileDiff | None = None
    lines = diff.split("\n")
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        m = _DIFF_GIT.match(line)
        if m or (line.startswith("--- ") and i + 1 < n and lines[i + 1].startswith("+++ ")
                 and (cur is None or cur.hunks)):
            cur = _FileDiff()
            files.append(cur)
            if m:
                cur.old, cur.new = _strip_prefix(m.group(1)), _strip_prefix(m.group(2))
                i += 1
                continue
        if cur is None:
            i += 1
            continue
        if line.startswith("--- "):
            old = _strip_prefix(line[4:].split("\t")[0])
            cur.old = old if old != "/dev/null" else cur.old
        elif line.startswith("+++ "):
            new = _strip_prefix(line[4:].split("\t")[0])
            if new == "/dev/null":
                cur.deleted = True
            else:
                cur.new = new
        elif line.startswith("deleted file mode"):
            cur.deleted = True
        elif line.startswith(("rename to ", "copy to ")):
            cur.new = unquote_path(line.split(" ", 2)[2])
            cur.meta = True
        elif line.startswith(("rename from ", "copy from ")):
            cur.old = unquote_path(line.split(" ", 2)[2])
            cur.meta = True
        elif line.startswith(("old mode", "new mode", "new file mode", "similarity index")):
            cur.meta = True
        elif line.startswith(("Binary files ", "GIT binary patch")):
            cur.binary = True
        elif line.startswith("@@"):
            i = _check_hunk(lines, i, cur)
            cur.hunks += 1
            continue
        i += 1
    if not files:
        raise DiffError("no diff")
    paths: dict[str, None] = {}
    for f in files:
        name = f.old if f.deleted else (f.new or f.old)
        if not f.hunks and not f.binary and not f.meta and not (f.new and f.old is None):
            # A header with no change under it: `git apply` stops on it as well.
            raise DiffError(f"{name}: file header without hunks")
        if name:
            paths.setdefault(name, None)
    return list(paths)


def _check_hunk(lines: list[str], i: int, f: _FileDiff) -> int:
    """Walk one hunk from its @@ line; return the index after it."""
    name = f.new or f.old or "?"
    header = lines[i]
    m = _HUNK.match(header)
    if not m:
        raise DiffError(f"{name}: malformed hunk header {header[:60]!r}")
    old_left = int(m.group(2)) if m.group(2) is not None else 1
    new_left = int(m.group(4)) if m.group(4) is not None else 1
    where = f"{name}: hunk {header.split(' @@')[0]} @@"
    i += 1
    while old_left > 0 or new_left > 0:
        if i >= len(lines):
            break
        line = lines[i]
        tag = line[:1]
        if line == "" and i == len(lines) - 1:
            break               # the end of the text, not an empty context line
        if tag == " " or line == "":
            # git takes an empty line for a context line whose blank a mailer ate
            old_left -= 1
            new_left -= 1
        elif tag == "-":
            old_left -= 1
        elif tag == "+":
            new_left -= 1
        elif tag == "\\":
            pass                # "\ No newline at end of file"
        else:
            break
        i += 1
    if old_left != 0 or new_left != 0:
        if old_left < 0 or new_left < 0:
            raise DiffError(f"{where} has more lines than its header says")
        got = lines[i][:40] if i < len(lines) else "the end of the patch"
        raise DiffError(f"{where} is short of {max(old_left, new_left)} line(s) "
                        f"(stopped at {got!r})")
    while i < len(lines) and lines[i].startswith("\\"):
        i += 1
    if i < len(lines):
        nxt = lines[i]
        # More added/removed lines than counted: git would drop them silently.
        if nxt[:1] == "+" or (nxt[:1] == "-" and nxt != "-- " and not nxt.startswith("--- ")):
            raise DiffError(f"{where} has more lines than its header says")
    return i
