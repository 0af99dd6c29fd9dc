"""The Series: what intake makes of a patch series, parsed once.

Nothing downstream re-reads the mbox; every later stage (apply, rules,
matrix, renderers) works from these objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Trailer:
    name: str          # e.g. "Signed-off-by", "Reviewed-by"
    value: str         # e.g. "Jane Doe <jane@example.org>"


@dataclass
class Patch:
    number: int                 # 1-based position in the series (1 for a lone patch)
    total: int                  # n of [PATCH m/n] (1 for a lone patch)
    version: int                # N of vN (1 when absent)
    subject: str                # subject without the [PATCH ...] prefix
    full_subject: str           # the Subject header as sent (unfolded)
    author: str                 # "Name <email>"
    date: str                   # the Date header
    message_id: str             # without angle brackets
    in_reply_to: str | None     # without angle brackets
    body: str                   # commit message: after the headers, before '---'
    diff: str                   # the unified diff ("diff --git ..." onwards)
    files: list[str]            # paths the diff touches (post-image names; pre-image for deletions)
    trailers: list[Trailer] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)   # e.g. ["RFC", "mm-unstable"]
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    mbox: bytes = b""           # one message, as `git am` wants it (decoded, From_ line first)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("mbox")
        return d


@dataclass
class CoverLetter:
    subject: str                # subject without the [PATCH ...] prefix
    full_subject: str
    author: str
    date: str
    message_id: str
    body: str
    base_commit: str | None     # from a "base-commit: <sha>" line
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Series:
    source: str                 # what the user named: a path, "-", a range A..B, or "lore <url>"
    kind: str                   # "mbox" | "directory" | "maildir" | "stdin" | "range" | "lore"
    version: int
    patches: list[Patch]
    cover: CoverLetter | None = None
    base_commit: str | None = None   # cover letter's base-commit:, else a patch's
    notes: list[str] = field(default_factory=list)   # e.g. "v1 superseded by v2", "3 replies ignored"
    replies: int = 0            # messages in the thread that were not patches

    @property
    def title(self) -> str:
        if self.cover:
            return self.cover.subject
        return self.patches[0].subject if self.patches else ""

    @property
    def message_id(self) -> str | None:
        """What a reply to the series threads under: the cover letter, else patch 1."""
        if self.cover:
            return self.cover.message_id
        return self.patches[0].message_id if self.patches else None

    def mbox_bytes(self) -> bytes:
        """The patches in order as one mbox, ready for `git am`."""
        return b"".join(p.mbox if p.mbox.endswith(b"\n") else p.mbox + b"\n" for p in self.patches)

    def files(self) -> list[str]:
        seen: dict[str, None] = {}
        for p in self.patches:
            for f in p.files:
                seen.setdefault(f, None)
        return list(seen)

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "kind": self.kind,
            "version": self.version,
            "base_commit": self.base_commit,
            "cover": self.cover.to_json() if self.cover else None,
            "patches": [p.to_json() for p in self.patches],
            "notes": list(self.notes),
            "replies": self.replies,
        }
