"""Strings from a series, shown as text: nothing in them may steer the terminal.

A subject, an author, a file name or a note comes from whoever wrote the mail.  An ESC
sequence in it would recolour, retitle or rewrite the user's terminal; a bidi override
would make the shown text differ from what is there (Trojan Source); a newline would make
one error two lines.  `visible()` turns every such character into a visible escape
(`\\x1b`, `\\u202e`), so the text still says what the mail said.
"""

from __future__ import annotations

import os
import re
import unicodedata

# Bidi embeddings, overrides and isolates, and the invisible marks: they reorder or hide text.
_BIDI = {0x200E, 0x200F, 0x061C, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def _escape(ch: str) -> str:
    cp = ord(ch)
    if cp < 0x100:
        return {9: "\\t", 10: "\\n", 13: "\\r"}.get(cp, f"\\x{cp:02x}")
    return f"\\u{cp:04x}"


def visible(text: str, keep: str = "") -> str:
    """`text` with control characters (C0, DEL, C1) and bidi controls made visible escapes;
    those in `keep` (a tab in a line of code) are left as they are."""
    if text.isprintable():     # the common case: nothing to do (isprintable is False for \t too)
        return text
    return "".join(_escape(ch) if ch not in keep and (unicodedata.category(ch) == "Cc"
                                                      or ord(ch) in _BIDI) else ch
                   for ch in text)


def one_line(text: str, limit: int = 2000) -> str:
    """`text` fit for one line of stderr: visible, and no longer than `limit` characters."""
    text = visible(text)
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text) - limit} more characters)"
    return text


def host_paths_hidden(text: str, places: dict[str, str]) -> str:
    """`text` with each absolute path in `places` ({"<tree>": "/home/u/linux", ...}) and what it
    resolves to shown by its name: a report a bot publishes tells nothing of the machine's layout.
    Longest first, so a tree inside the cache is `<tree>`, not `<cache>/trees/...`."""
    paths = {}
    for name, p in places.items():
        for q in (p, os.path.realpath(p)) if p and os.path.isabs(p) and p != "/" else ():
            paths.setdefault(q.rstrip("/"), name)
    for p in sorted(paths, key=len, reverse=True):
        if p in text:
            text = re.sub(re.escape(p) + r"(?![\w.-])", paths[p], text)
    return text
