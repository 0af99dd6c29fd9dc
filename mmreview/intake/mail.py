"""Mail as it arrives: mbox files split into messages, messages decoded, and
one patch re-emitted as the plain 8-bit mail `git am` takes.

Python's email package (policy.default) does the decoding: quoted-printable,
base64, RFC 2047 headers, folded headers, any charset.  CRLF line endings are
dropped from bodies the way `git am` does by default (no --keep-cr).
"""

from __future__ import annotations

import base64
import email.policy
import email.utils
import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser

# An mbox From_ line: "From <sha> Mon Sep 17 00:00:00 2001" (format-patch),
# "From mboxrd@z Thu Jan  1 00:00:00 1970" (lore), "From a@b Tue May 27 08:12:00 2025".
# Requiring the asctime date keeps "From now on..." in a body from splitting.
_FROM_LINE = re.compile(rb"^From \S+ +[A-Z][a-z]{2} [A-Z][a-z]{2} +\d{1,2} \d\d:\d\d(?::\d\d)?"
                        rb"(?: [+-]?\d{4})? \d{4}\r?$", re.M)
_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:[ \t]")
_MBOXRD_ESCAPE = re.compile(rb"^>(>*From )", re.M)
_FORMAT_PATCH_SHA = re.compile(rb"^From ([0-9a-f]{40}) ")

_PARSER = BytesParser(policy=email.policy.default)


class NotMail(ValueError):
    pass


class BadMail(ValueError):
    """Mail that is mail but cannot be read (MIME nested past any sense): unlike NotMail it is
    not skipped as noise, the input is refused."""


# Real patch mail nests two or three levels (a signed message with an attachment); the stdlib
# parser recurses once per level and would hit Python's recursion limit near 1000.
MAX_MIME_DEPTH = 20


@dataclass
class Mail:
    """One decoded message, with what intake needs and nothing else."""

    msg: EmailMessage
    subject: str                 # unfolded, RFC 2047 decoded
    from_: str                   # "Name <email>"
    date: str
    message_id: str              # without <>; "" if absent
    in_reply_to: str | None
    references: list[str]
    to: list[str]
    cc: list[str]
    body: str                    # the text/plain (or x-patch) part, decoded, LF line ends
    body_bytes: bytes            # the same part after transfer decoding, in its own charset
    charset: str
    commit_sha: str | None = None    # from a format-patch From_ line
    origin: str = ""             # file it came from, for messages
    extra: dict = field(default_factory=dict)


def split_mbox(data: bytes) -> list[tuple[bytes, bytes | None]]:
    """Split an mbox (or a lone message) into (message bytes, From_ line) pairs."""
    starts = [m.start() for m in _FROM_LINE.finditer(data)]
    if not starts:
        head = data.lstrip()[:2000]
        if not _HEADER_LINE.match(head):
            raise NotMail("no mbox From_ line and no mail headers")
        return [(data.lstrip(), None)]
    if data[:starts[0]].strip():
        raise NotMail("text before the first message")
    rd = b"mboxrd" in data[starts[0]:starts[0] + 80]
    out = []
    for a, b in zip(starts, starts[1:] + [len(data)]):
        chunk = data[a:b]
        nl = chunk.find(b"\n")
        from_line, rest = (chunk[:nl].rstrip(b"\r"), chunk[nl + 1:]) if nl >= 0 else (chunk, b"")
        if rd:
            rest = _MBOXRD_ESCAPE.sub(rb"\1", rest)
        out.append((rest, from_line))
    return out


def _get_all(msg: EmailMessage, name: str) -> list[str]:
    """The values of a header, decoded; as written where Python's header parser fails on them
    (it raises IndexError on a Message-ID like "<)@x>", among others)."""
    try:
        return [str(v) for v in msg.get_all(name, [])]
    except Exception:   # noqa: BLE001 -- the stdlib's header parser, on hostile input
        return [str(v) for k, v in msg.raw_items() if k.lower() == name.lower()]


def _get(msg: EmailMessage, name: str) -> str | None:
    vals = _get_all(msg, name)
    return vals[0] if vals else None


def _addrs(msg: EmailMessage, name: str) -> list[str]:
    vals = _get_all(msg, name)
    # Human-readable, not header-encoded: "Zoë Lefèvre <zoe@example.org>".
    return [f"{a[0]} <{a[1]}>" if a[0] else a[1]
            for a in email.utils.getaddresses(vals) if a[1]]


def _msgid(val: str | None) -> str | None:
    if val is None:
        return None
    m = re.search(r"<([^>]+)>", str(val))
    if m:
        return m.group(1).strip()
    v = str(val).strip()
    return v or None


def _text_part(msg: EmailMessage) -> tuple[bytes, str]:
    """The first text/plain or text/x-patch part, preferring one with a diff
    (a patch sent as an attachment), after transfer decoding."""
    chosen: tuple[bytes, str] | None = None
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = _safe(part.get_content_type, "text/plain")
        if ctype not in ("text/plain", "text/x-patch", "text/x-diff") and not (
                ctype == "application/octet-stream" and chosen is None):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        charset = (_safe(part.get_content_charset, None) or _safe(msg.get_content_charset, None)
                   or "utf-8")
        if chosen is None or (b"\ndiff --git " in b"\n" + payload and
                              b"\ndiff --git " not in b"\n" + chosen[0]):
            chosen = (payload, charset)
    return chosen or (b"", "utf-8")


def _mime_depth(msg: EmailMessage) -> int:
    # Iteratively: msg.walk() recurses too.
    deepest, todo = 0, [(msg, 0)]
    while todo:
        part, depth = todo.pop()
        deepest = max(deepest, depth)
        if part.is_multipart() and depth <= MAX_MIME_DEPTH:
            todo += [(p, depth + 1) for p in part.get_payload() if isinstance(p, EmailMessage)]
    return deepest


def _decode(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def _safe(fn, default):
    try:
        return fn()
    except Exception:   # noqa: BLE001 -- Content-Type parsing, on hostile input
        return default


def _header(msg: EmailMessage, name: str) -> str:
    val = _get(msg, name)
    if val is None:
        return ""
    return re.sub(r"\s+", " ", str(val)).strip()


def _raw_header(msg: EmailMessage, name: str) -> str:
    """A header as written, for error messages (the parsed one can read '<<<' as '<>')."""
    for k, v in msg.raw_items():
        if k.lower() == name.lower():
            return re.sub(r"\s+", " ", str(v)).strip()
    return ""


def parse_message(raw: bytes, from_line: bytes | None = None, origin: str = "") -> Mail:
    """Decode one message; NotMail if it has none of the headers mail has."""
    try:
        msg = _PARSER.parsebytes(raw)
    except RecursionError:
        raise BadMail(f"MIME parts nested too deep (at most {MAX_MIME_DEPTH} levels)") from None
    depth = _mime_depth(msg)
    if depth > MAX_MIME_DEPTH:
        raise BadMail(f"MIME parts nested {depth} deep (at most {MAX_MIME_DEPTH} levels)")
    if not any(k.lower() in ("from", "subject", "message-id", "date") for k in msg.keys()):
        raise NotMail("no From, Subject, Message-ID or Date header")
    if msg.defects and not msg.keys():
        raise NotMail("unparseable headers")
    payload, charset = _text_part(msg)
    payload = payload.replace(b"\r\n", b"\n")
    sha = None
    if from_line:
        m = _FORMAT_PATCH_SHA.match(from_line)
        sha = m.group(1).decode() if m else None
    refs: list[str] = []
    for v in _get_all(msg, "References"):
        refs += re.findall(r"<([^>]+)>", str(v))
    return Mail(
        msg=msg,
        subject=_header(msg, "Subject"),
        from_=(_addrs(msg, "From") or [_header(msg, "From")])[0],
        date=_header(msg, "Date"),
        message_id=_msgid(_get(msg, "Message-ID")) or "",
        in_reply_to=_msgid(_get(msg, "In-Reply-To")),
        references=refs,
        to=_addrs(msg, "To"),
        cc=_addrs(msg, "Cc"),
        body=_decode(payload, charset),
        body_bytes=payload,
        charset=charset,
        commit_sha=sha,
        origin=origin,
        extra={"raw_from": _raw_header(msg, "From")},
    )


def _rfc2047(text: str) -> str:
    # By hand: b4 re-registers the utf-8 charset with no header encoding,
    # so email.header would hand the raw bytes back once b4 is imported.
    words, word = [], b""
    for ch in text:   # encoded words of at most 75 chars, never splitting a character
        enc = ch.encode("utf-8")
        if len(word) + len(enc) > 45:
            words.append(word)
            word = b""
        word += enc
    words.append(word)
    return " ".join(f"=?utf-8?b?{base64.b64encode(w).decode()}?=" for w in words)


def _encode_header(value: str) -> str:
    return value if value.isascii() else _rfc2047(value)


def _encode_addr(addr: str) -> str:
    name, mail = email.utils.parseaddr(addr)
    if not name:
        return mail or addr
    if name.isascii() and mail.isascii():
        return email.utils.formataddr((name, mail))
    # An internationalised address (SMTPUTF8) stays as it is: formataddr refuses it.
    return f"{_encode_header(name)} <{mail}>"


def am_bytes(mail: Mail, subject: str, author: str, body_bytes: bytes) -> bytes:
    """One message as `git am` wants it: a format-patch From_ line, the headers
    git reads, and the body after transfer decoding (8bit).  The body keeps its
    charset, which the Content-Type declares: git converts the commit message to
    UTF-8 itself and leaves the diff's bytes alone, as they must be."""
    sha = mail.commit_sha or "0" * 40
    charset = mail.charset if mail.charset.lower() not in ("us-ascii", "ascii") else "utf-8"
    head = [
        f"From {sha} Mon Sep 17 00:00:00 2001",
        f"From: {_encode_addr(author)}",
        f"Date: {mail.date}",
        f"Subject: {_encode_header(subject)}",
    ]
    if mail.message_id:
        head.append(f"Message-ID: <{mail.message_id}>")
    head += ["MIME-Version: 1.0",
             f"Content-Type: text/plain; charset={charset}",
             "Content-Transfer-Encoding: 8bit"]
    if not body_bytes.endswith(b"\n"):
        body_bytes += b"\n"
    # ASCII but for an internationalised address, which has no encoded form: UTF-8, as SMTPUTF8 sends it.
    return ("\n".join(head) + "\n\n").encode("utf-8") + body_bytes
