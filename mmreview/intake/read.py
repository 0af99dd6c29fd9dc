"""Intake: whatever the user names as SERIES, made into one Series.

SERIES is an mbox file (format-patch --stdout, `b4 am` output, a whole thread
export), a directory of .patch/.eml files, a maildir, "-" for stdin, a git
range A..B of the tree, or a Message-ID / lore link (the thread, fetched by b4:
see lore.py).  A path that exists wins over the other readings.

Subjects are read with b4's LoreSubject (the [PATCH vN m/n] grammar kernel
people trust: RFC, RESEND, [PATCHv3], extra prefixes like mm-unstable), and
trailers with b4's trailer parser, including the ones reviewers give in
replies.  Grouping and choosing a version is done here, simply, because
b4's LoreMailbox logs, guesses partial rerolls and reads git config.

Choosing a version: the newest COMPLETE version wins.  When the newest is
incomplete (a patch missing, a duplicate, totals that disagree) and an older
one is complete, the older one is taken and `notes` says why; when no version
is complete the input is bad and the error names what is wrong with the newest.
"""

from __future__ import annotations

import codecs
import logging
import mailbox
import re
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import b4

from mmreview.common.errors import BadInput
from mmreview.intake.inputs import max_input, read_limited, read_path, read_stdin, too_big
from mmreview.common.git import rev_parse, run_git
from mmreview.intake.lore import LoreOptions, fetch_thread, parse_ref
from mmreview.intake.diffs import DiffError, check_diff, has_diff, split_diff
from mmreview.intake.mail import BadMail, Mail, NotMail, am_bytes, parse_message, split_mbox
from mmreview.intake.series import CoverLetter, Patch, Series, Trailer
from mmreview.kernel.trees import Tree, open_tree

PATCH_SUFFIXES = (".patch", ".eml", ".mbox")
_BASE_COMMIT = re.compile(r"^base-commit:\s*([0-9a-f]{7,40})\s*$", re.M)
_INBODY_HEADER = re.compile(r"^(From|Date|Subject): \S", re.I)
_DIFF_FOOTER = re.compile(r"^(?=(?:base-commit|prerequisite-patch-id|change-id): )", re.M)
_RANGE = re.compile(r"^[^\s.][^\s]*?\.\.\.?[^\s]+$")
_PREFIX = re.compile(r"^\s*\[([^\]]*)\]")
_COUNTER = re.compile(r"^\d+/\d+$")
# b4 reads counters of up to four digits; one longer is not read at all, and the patch would
# pass as a lone [PATCH] (1/1).
MAX_COUNTER = 9999
# How many numbers an error lists before it says "and N more".
_SHOW = 5


def _some(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (f" and {len(items) - _SHOW} more" if len(items) > _SHOW else "")


@contextmanager
def _quiet_b4() -> Iterator[None]:
    # b4 logs warnings (no Message-ID, unparsable dates) we report our own way.
    log = logging.getLogger("b4")
    old = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        log.setLevel(old)


def load_series(source: str, tree: Tree | None = None, stdin: BinaryIO | None = None,
                lore: LoreOptions | None = None) -> Series:
    """Read SOURCE into a Series; BadInput (one line, naming SOURCE) if it is not one."""
    with _quiet_b4():
        kind, mails, base = _read_source(source, tree, stdin, lore or LoreOptions())
        series = _build(source, kind, mails, base)
    if kind == "lore":
        # Where it came from, as a link a reader can follow: the version reviewed (its cover
        # letter, else patch 1), which --newest may have found in a later thread.
        mid = urllib.parse.quote(series.message_id or "", safe="@+")
        series.source = f"lore {mails[0].extra['lore']}{mid}/"
    return series


# ---------------------------------------------------------------- reading

def _read_source(source: str, tree: Tree | None, stdin: BinaryIO | None,
                 lore: LoreOptions) -> tuple[str, list[Mail], str | None]:
    if source == "-":
        data = read_limited(source, stdin) if stdin is not None else read_stdin(source)
        return "stdin", _mails_from_bytes(source, data, "stdin"), None
    path = Path(source).expanduser()
    if path.exists():
        if path.is_dir():
            if (path / "cur").is_dir() or (path / "new").is_dir():
                return "maildir", _read_maildir(source, path), None
            return "directory", _read_directory(source, path), None
        return "mbox", _mails_from_bytes(source, _read_file(source, path), "mbox"), None
    ref = parse_ref(source)
    if ref is not None:
        url, data = fetch_thread(source, ref, lore)
        mails = _mails_from_bytes(source, data, "thread", f"fetched from {url}")
        mails[0].extra["lore"] = url
        return "lore", mails, None
    if _RANGE.match(source) and "/" not in source.split("..")[0][:1]:
        return _read_range(source, tree)
    raise BadInput(source, "no such file or directory (and not a git range A..B or a Message-ID)")


def _read_file(source: str, path: Path) -> bytes:
    return read_path(source, path)


def _mails_from_bytes(source: str, data: bytes, what: str, origin: str = "") -> list[Mail]:
    if not data.strip():
        raise BadInput(source, f"empty {'file' if what == 'file' else what}"
                               f"{' (' + origin + ')' if origin else ''}")
    if b"\x00" in data[:65536]:
        raise BadInput(source, f"binary data, not mail{' (' + origin + ')' if origin else ''}")
    try:
        chunks = split_mbox(data)
    except NotMail as exc:
        raise BadInput(source, f"not mail: {exc}{' (' + origin + ')' if origin else ''}") from None
    mails = []
    bad = 0
    for i, (raw, from_line) in enumerate(chunks, 1):
        try:
            mails.append(parse_message(raw, from_line, origin))
        except NotMail:
            bad += 1
        except BadMail as exc:
            where = f"message {i} of {len(chunks)}" if len(chunks) > 1 else "the message"
            raise BadInput(source, f"{where}{' in ' + origin if origin else ''}: {exc}") from None
    if not mails:
        raise BadInput(source, f"not mail: no message has mail headers"
                               f"{' (' + origin + ')' if origin else ''}")
    if bad:
        mails[0].extra["unparsed"] = bad
    return mails


def _read_directory(source: str, path: Path) -> list[Mail]:
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in PATCH_SUFFIXES)
    if not files:
        raise BadInput(source, "no .patch or .eml files in the directory")
    mails: list[Mail] = []
    total = 0
    for f in files:
        data = _read_file(f"{source}/{f.name}", f)
        total += len(data)
        if total > max_input():
            raise too_big(source)
        mails += _mails_from_bytes(source, data, "file", f.name)
    return mails


def _read_maildir(source: str, path: Path) -> list[Mail]:
    md = mailbox.Maildir(str(path), factory=None, create=False)
    mails: list[Mail] = []
    try:
        keys = sorted(md.keys())
        for key in keys:
            raw = md.get_bytes(key)
            try:
                mails.append(parse_message(raw, None, key))
            except NotMail:
                continue
    except OSError as exc:
        raise BadInput(source, f"cannot read the maildir: {exc.strerror or exc}") from None
    if not mails:
        raise BadInput(source, "empty maildir (no messages in cur/ or new/)")
    return mails


def _read_range(source: str, tree: Tree | None) -> tuple[str, list[Mail], str | None]:
    tree = tree or open_tree(None)
    a, _, b = source.partition("..")
    b = b.lstrip(".")   # A...B: take it as A..B
    a_sha = rev_parse(tree.path, a or "HEAD")
    b_sha = rev_parse(tree.path, b or "HEAD")
    # Which repository a range was read in is half the answer when it is wrong: say it, and how
    # to name another.
    hint = ("; run it in your kernel checkout or give --tree PATH" if tree.how != "--tree"
            else "; --tree names another repository")
    for name, sha in ((a, a_sha), (b, b_sha)):
        if sha is None:
            raise BadInput(source, f"not a file, and {name or 'HEAD'!r} is no revision of "
                                   f"{tree.name}{hint}")
    # The pathspec makes format-patch leave out empty commits (b4 prep's cover letter) before it
    # numbers the rest; without it they are dropped after numbering and [PATCH 1/n] goes missing.
    proc = run_git(tree.path, "format-patch", "--stdout", "--no-signature", "--no-color",
                   f"{a_sha}..{b_sha}", "--", ".", check=False)
    if proc.returncode != 0:
        msg = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["failed"])[-1]
        raise BadInput(source, f"git format-patch failed: {msg}")
    if not proc.stdout.strip():
        raise BadInput(source, f"the range has no commits in {tree.name} (merges and empty "
                               f"commits are left out){hint}")
    return "range", _mails_from_bytes(source, proc.stdout, "range"), a_sha


# ---------------------------------------------------------------- sorting mail

@dataclass
class _Candidate:
    mail: Mail
    lsubj: b4.LoreSubject
    number: int
    total: int
    numbered: bool


@dataclass
class _Version:
    version: int
    cover: _Candidate | None = None
    patches: list[_Candidate] = field(default_factory=list)

    def problems(self) -> list[str]:
        """What keeps this version from being a whole series ('' list if none)."""
        out = []
        totals = sorted({c.total for c in self.patches if c.numbered} |
                        ({self.cover.total} if self.cover else set()))
        if len(totals) > 1:
            seen = ", ".join(f"{c.number}/{c.total}" for c in self.patches if c.numbered)
            out.append(f"mixes totals {' and '.join(map(str, totals))} ({seen})")
            return out
        by_num: dict[int, list[_Candidate]] = {}
        for c in self.patches:
            by_num.setdefault(c.number, []).append(c)
        total = self.total
        dups = [n for n, cs in sorted(by_num.items()) if len(cs) > 1]
        if dups:
            out.append("has duplicate " + _some([
                f"{n}/{total} ({' and '.join(repr(c.mail.message_id or c.mail.subject) for c in by_num[n][:2])})"
                for n in dups]))
        beyond = [n for n in sorted(by_num) if n > total]
        if beyond:
            out.append("has patch " + _some([f"{n}/{total}" for n in beyond]) + " beyond its total")
        # Counted, not listed: [PATCH 1/9999] alone would otherwise name 9998 patches.
        missing = [n for n in range(1, total + 1) if n not in by_num]
        if len(missing) > _SHOW:
            out.append(f"is missing {len(missing)} of its {total} patches: "
                       + _some([f"{n}/{total}" for n in missing]))
        elif missing:
            out.append("is missing patch" + ("es " if len(missing) > 1 else " ")
                       + ", ".join(f"{n}/{total}" for n in missing))
        return out

    @property
    def total(self) -> int:
        numbered = [c.total for c in self.patches if c.numbered]
        if numbered:
            return max(numbered)
        if self.cover:
            return self.cover.total
        return len(self.patches)

    def label(self) -> str:
        return f"v{self.version}"


def _unread_counter(subject: str, lsubj: b4.LoreSubject) -> str | None:
    """A counter b4 did not read ([PATCH 1/99999]): the chunk, else None."""
    if not lsubj.counters_inferred:
        return None
    m = _PREFIX.match(subject)
    if not m:
        return None
    return next((c for c in m.group(1).split() if _COUNTER.match(c)), None)


def _classify(source: str, mails: list[Mail]) -> tuple[dict[int, _Version], list[Mail]]:
    versions: dict[int, _Version] = {}
    others: list[Mail] = []
    seen_ids: set[str] = set()
    unnumbered: dict[int, list[_Candidate]] = {}
    for m in mails:
        if m.message_id:
            if m.message_id in seen_ids:
                continue   # the same message twice (lore exports do that)
            seen_ids.add(m.message_id)
        ls = b4.LoreSubject(m.subject)
        diff = has_diff(m.body)
        if ls.reply or m.subject.lower().startswith(("re:", "aw:", "fwd:", "fw:")):
            others.append(m)
            continue
        bad = _unread_counter(m.subject, ls) if (diff or ls.patch) else None
        if bad:
            raise BadInput(source, f"{m.subject!r}: patch counter {bad} is out of range "
                                   f"(at most {MAX_COUNTER}/{MAX_COUNTER})")
        numbered = not ls.counters_inferred
        is_cover = numbered and ls.counter == 0
        if not (diff or ls.patch or numbered):
            others.append(m)
            continue
        if not diff and not is_cover and not numbered:
            others.append(m)   # "[PATCH] ..." talk without a diff: not a patch
            continue
        cand = _Candidate(m, ls, ls.counter, ls.expected, numbered)
        v = versions.setdefault(ls.revision, _Version(ls.revision))
        if is_cover:
            if v.cover is None:
                v.cover = cand
            else:
                others.append(m)   # a second cover for one version: keep the first
            continue
        if numbered:
            v.patches.append(cand)
        else:
            unnumbered.setdefault(ls.revision, []).append(cand)
    # Unnumbered patches ([PATCH] subject): a lone one is 1/1; several of
    # one version (format-patch -N) are taken in the order they came.
    for rev, cands in unnumbered.items():
        v = versions[rev]
        if v.patches:   # numbered ones exist: the unnumbered are strays
            others += [c.mail for c in cands]
            continue
        for i, c in enumerate(cands, 1):
            c.number, c.total = i, len(cands)
            v.patches.append(c)
    for rev in [r for r, v in versions.items() if not v.patches]:
        del versions[rev]   # a cover letter with no patch of its own
    return versions, others


def _choose(source: str, versions: dict[int, _Version]) -> tuple[_Version, list[str]]:
    notes: list[str] = []
    order = sorted(versions, reverse=True)
    newest = versions[order[0]]
    broken = {r: versions[r].problems() for r in order}
    chosen = next((versions[r] for r in order if not broken[r]), None)
    if chosen is None:
        why = "; ".join(broken[newest.version])
        name = newest.label() if len(order) > 1 or newest.version > 1 else "the series"
        raise BadInput(source, f"{name} {why}")
    if chosen is not newest:
        skipped = [versions[r] for r in order if r > chosen.version]
        for v in skipped:
            notes.append(f"{v.label()} skipped: it {'; '.join(broken[v.version])}")
    older = [versions[r] for r in order if r < chosen.version]
    if older or chosen is not newest:
        sup = ", ".join(f"{v.label()} ({len(v.patches)} patch{'es' if len(v.patches) != 1 else ''})"
                        for v in older)
        notes.insert(0, f"{chosen.label()} chosen" + (f"; {sup} superseded" if sup else ""))
    return chosen, notes


# ---------------------------------------------------------------- building

def _trailers(ltrailers) -> list[Trailer]:
    return [Trailer(t.name, t.value) for t in ltrailers]


_ADDRESS = re.compile(r"<[^<>\s]+>|\S+@\S+")
# No source line in a kernel is near this; a line of megabytes is not a patch, and
# checkpatch.pl's regexes would spend minutes on it.
MAX_LINE = 1 << 20


def _unusable(m: Mail, author: str) -> str | None:
    """Why `git am` would refuse this mail, found here so that it is bad input naming the
    patch instead of a "did not apply" that blames the tree."""
    if "\x00" in m.body or "\x00" in m.subject:
        return "it contains a NUL byte (binary data, not a patch)"
    if len(m.body) > MAX_LINE:
        longest = max(len(line) for line in m.body.split("\n"))
        if longest > MAX_LINE:
            return f"it has a line of {longest} characters (the limit is {MAX_LINE >> 20} MiB)"
    try:
        codecs.lookup(m.charset)
    except LookupError:
        return f"unknown charset {m.charset!r}"
    if not _ADDRESS.search(author):
        shown = m.extra.get("raw_from", author)
        return f"its author (From: {shown!r}) has no e-mail address" if shown else "it has no From:"
    return None


def _patch(source: str, cand: _Candidate) -> Patch:
    m = cand.mail
    label = f"patch {cand.number}/{cand.total}"
    _githeaders, _message, ltrailers, _basement, _sig = b4.LoreMessage.get_body_parts(m.body)
    # An in-body header block: send-email's "From:" when the sender is not the author.
    first = m.body.lstrip("\n").split("\n\n", 1)[0]
    githeaders = [ln.split(":", 1) for ln in first.splitlines()]
    if not githeaders or not all(_INBODY_HEADER.match(ln) for ln in first.splitlines()):
        githeaders = []
    author = m.from_
    for name, value in githeaders:
        if name.lower() == "from":
            author = value.strip()
    why = _unusable(m, author)
    if why:
        raise BadInput(source, f"{label} ({cand.lsubj.subject}): {why}")
    head, diff = split_diff(m.body)
    if not diff:
        raise BadInput(source, f"{label} ({m.subject}) has no diff")
    diff = diff.split("\n-- \n", 1)[0]
    diff = _DIFF_FOOTER.split(diff, maxsplit=1)[0]   # base-commit: etc. under the last diff
    if not diff.endswith("\n"):
        diff += "\n"
    try:
        files = check_diff(diff)
    except DiffError as exc:
        raise BadInput(source, f"{label} ({cand.lsubj.subject}): corrupt diff: {exc}") from None
    # The commit message: what comes before the '---' line (or before the diff).
    msg_text = re.split(r"^---\s*$", head, maxsplit=1, flags=re.M)[0]
    if githeaders:   # drop the in-body headers from the commit message
        msg_text = msg_text.strip("\n").split("\n\n", 1)[1] if "\n\n" in msg_text.strip("\n") else ""
    prefixes = cand.lsubj.get_extra_prefixes(exclude=["patch"])
    return Patch(
        number=cand.number,
        total=cand.total,
        version=cand.lsubj.revision,
        subject=cand.lsubj.subject,
        full_subject=m.subject,
        author=author,
        date=m.date,
        message_id=m.message_id,
        in_reply_to=m.in_reply_to,
        body=msg_text.strip("\n") + "\n",
        diff=diff,
        files=files,
        trailers=_trailers(ltrailers),
        prefixes=prefixes,
        to=m.to,
        cc=m.cc,
        mbox=am_bytes(m, _am_subject(cand), author, _am_body(m, githeaders)),
    )


def _am_subject(cand: _Candidate) -> str:
    pfx = " ".join(cand.lsubj.prefixes)
    return f"[{pfx}] {cand.lsubj.subject}" if pfx else cand.lsubj.subject


def _am_body(m: Mail, githeaders) -> bytes:
    body = m.body_bytes
    if githeaders:
        # The author moved into the From header; git am would take the in-body
        # From: anyway, but one source of truth is simpler to reason about.
        text = body.lstrip(b"\n")
        if b"\n\n" in text:
            body = text.split(b"\n\n", 1)[1]
    return body


def _cover(cand: _Candidate) -> CoverLetter:
    m = cand.mail
    bc = _BASE_COMMIT.search(m.body)
    return CoverLetter(
        subject=cand.lsubj.subject,
        full_subject=m.subject,
        author=m.from_,
        date=m.date,
        message_id=m.message_id,
        body=m.body.split("\n-- \n", 1)[0].strip("\n") + "\n",
        base_commit=bc.group(1) if bc else None,
        to=m.to,
        cc=m.cc,
    )


def _followups(others: list[Mail], patches: list[Patch], cover: CoverLetter | None) -> list[str]:
    """Trailers reviewers gave in replies to the chosen version, as notes."""
    by_id = {p.message_id: p for p in patches if p.message_id}
    notes = []
    for m in others:
        if not m.message_id or not m.in_reply_to:
            continue
        target = by_id.get(m.in_reply_to)
        is_cover = cover is not None and m.in_reply_to == cover.message_id
        if target is None and not is_cover:
            continue
        try:
            lmsg = b4.LoreMessage(m.msg)
        except ValueError:
            continue
        for t in lmsg.trailers:
            what = f"patch {target.number}/{target.total}" if target else "the series"
            notes.append(f"{t.name}: {t.value} given for {what} in a reply")
    return notes


def _build(source: str, kind: str, mails: list[Mail], range_base: str | None) -> Series:
    versions, others = _classify(source, mails)
    if not versions:
        what = {"range": "the range"}.get(kind, "no message")
        raise BadInput(source, f"no patch in {len(mails)} message{'s' if len(mails) != 1 else ''}"
                       if what == "no message" else f"{what} yields no patch")
    chosen, notes = _choose(source, versions)
    cands = sorted(chosen.patches, key=lambda c: c.number)
    patches = [_patch(source, c) for c in cands]
    cover = _cover(chosen.cover) if chosen.cover else None
    base = range_base or (cover.base_commit if cover else None)
    if base is None:   # format-patch --base without a cover puts it under the last diff
        for c in reversed(cands):
            bc = _BASE_COMMIT.search(c.mail.body)
            if bc:
                base = bc.group(1)
                break
    unnumbered = [c for c in cands if not c.numbered]
    if len(unnumbered) > 1:
        notes.append(f"{len(unnumbered)} unnumbered patches taken in the order they came")
    notes += _followups(others, patches, cover)
    if others:
        notes.append(f"{len(others)} repl{'ies' if len(others) != 1 else 'y'} and other "
                     f"non-patch message{'s' if len(others) != 1 else ''} ignored")
    unparsed = sum(m.extra.get("unparsed", 0) for m in mails)
    if unparsed:
        notes.append(f"{unparsed} chunk(s) without mail headers ignored")
    return Series(source=source, kind=kind, version=chosen.version, patches=patches,
                  cover=cover, base_commit=base, notes=notes, replies=len(others))
