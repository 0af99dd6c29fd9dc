"""Intake on generated mail (hypothesis): whatever arrives, intake returns a Series or raises
an MmreviewError (one line, exit 2/3 at the CLI), never anything else (issue 11, item 5).

The mail is built from the parts real series have (From_ lines, [PATCH vN m/n] subjects,
MIME types, charsets and transfer encodings, commit messages, unified diffs) and bent the ways
real mail is bent (counters past 9999, unknown charsets, addresses that are not addresses,
nested multiparts, NUL bytes, corrupt hunks, raw bytes), so that most examples get far into
intake instead of stopping at "not mail".  A few hundred examples run with the suite; the
`slow` variant runs 10,000.
"""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import SERIES
from mmreview.common.errors import MmreviewError
from mmreview.intake.read import load_series
from mmreview.common.textsafe import visible

# ---------------------------------------------------------------- the parts of a mail


def rarely(draw, one_in: int) -> bool:
    """True about once in `one_in` draws.  (Not `integers(0, n) == 0`: hypothesis draws the
    bounds of a range far more often than the middle, so that would be true half the time.)"""
    return draw(st.sampled_from([False] * (one_in - 1) + [True]))


# Any text but NUL: a NUL anywhere early makes the whole input "binary data", which stops
# intake at its first check; NULs are put in on purpose below.
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"),
                max_size=40)
_words = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "Zs")), max_size=20)
_ascii_word = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12)

counters = st.one_of(
    st.tuples(st.integers(0, 6), st.integers(0, 6)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.sampled_from(["01/03", "1/", "/3", "a/b", ""]),
)
prefixes = st.lists(st.sampled_from(["PATCH", "RFC", "RESEND", "v2", "v3", "V10", "mm-unstable",
                                      "PATCHv2", "net-next", "[", "]", "x"]), max_size=3)


@st.composite
def subjects(draw) -> str:
    parts = draw(prefixes) + [draw(counters)]
    body = draw(st.one_of(st.just("mm/vma: fix the thing"), _text))
    reply = draw(st.sampled_from(["", "", "", "Re: ", "Fwd: ", "AW: "]))
    return f"{reply}[{' '.join(p for p in parts if p)}] {body}"


addresses = st.one_of(
    st.just("Ada Reviewer <ada@example.org>"),
    st.just("=?iso-8859-1?q?Zo=EB_Lef=E8vre?= <zoe@example.net>"),
    st.sampled_from(["<<<not an address", "Just A Name", "", "<>", "a@b", "\"Quote <q@x.y>",
                     "=?x-unknown?q?Ada?= <a@b.c>", "=?utf-8?b?!!!?= <x@y.z>"]),
    _text.map(lambda t: f"{t} <{t}@example.org>"),
)
charsets = st.sampled_from(["utf-8", "UTF-8", "us-ascii", "iso-8859-1", "x-no-such-charset", "",
                            "utf-16", "\"utf-8\"", "unknown-8bit"])
encodings = st.sampled_from(["8bit", "7bit", "base64", "quoted-printable", "x-uuencode", "garbage", ""])
files = st.sampled_from(["mm/vma.c", "lib/maple_tree.c", '"mm/zo\\303\\253.c"', "a b.c", "mm/"])


@st.composite
def hunks(draw, sane: bool = False) -> str:
    old = draw(st.integers(1, 4))
    new = draw(st.integers(1, 4))
    common = min(old, new)
    lines = [" ctx"] * common + ["-gone"] * (old - common) + ["+added"] * (new - common)
    head = f"@@ -1,{old} +1,{new} @@"
    if sane or not rarely(draw, 4):
        return "\n".join([head, *lines])
    # A hand-edited hunk whose counts no longer match, or a header nobody wrote.
    lines = draw(st.lists(st.sampled_from([" ctx", "-gone", "+added", "", "\\ No newline at end of file",
                                           "garbage"]), max_size=6))
    head = draw(st.sampled_from([head, "@@ -1 +1 @@", "@@ -x +y @@", f"@@ -{10**30},1 +1,1 @@"]))
    return "\n".join([head, *lines])


@st.composite
def diffs(draw, sane: bool = False) -> str:
    out = []
    for _ in range(draw(st.integers(1, 3) if sane else st.integers(0, 3))):
        f = draw(files) if not sane or draw(st.booleans()) else "mm/vma.c"
        a, b = (f"\"a/{f[1:]}", f"\"b/{f[1:]}") if f.startswith('"') else (f"a/{f}", f"b/{f}")
        out.append(f"diff --git {a} {b}")
        out.append("index 1111111..2222222 100644")
        if not sane:
            out += draw(st.lists(st.sampled_from(["new file mode 100644", "deleted file mode 100644",
                                                  "rename from x", "rename to y",
                                                  "Binary files a/x and b/x differ"]), max_size=2))
        if sane or draw(st.booleans()):
            out += [f"--- {a}", f"+++ {b}"]
        out += [draw(hunks(sane)) for _ in range(draw(st.integers(1, 2)))]
    return "\n".join(out)


@st.composite
def bodies(draw, sane: bool = False) -> str:
    msg = draw(st.one_of(st.just("Fix the thing.\n\nSigned-off-by: Ada Reviewer <ada@example.org>"),
                         _words if sane else _text))
    tail = draw(st.sampled_from(["", "\n-- \n2.39.5\n", "\nbase-commit: 95ba86de1f0d16a60e2fb689cf5ce4a786bad879\n"]))
    return f"{msg}\n---\n{draw(diffs(sane))}\n{tail}"


def _encode(body: str, charset: str, cte: str) -> bytes:
    import base64
    import quopri
    try:
        raw = body.encode(charset.strip('"') or "utf-8", "replace")
    except (LookupError, UnicodeError):
        raw = body.encode("utf-8", "surrogatepass")
    if cte == "base64" or charset == "utf-16":     # UTF-16 is all NULs on the wire otherwise
        return base64.encodebytes(raw)
    if cte == "quoted-printable":
        return quopri.encodestring(raw)
    return raw


@st.composite
def messages(draw, subject: str | None = None, body: str | None = None, sane: bool = False) -> bytes:
    """One message; with `sane`, bent only now and then (so that most get through intake)."""
    def bent(strategy, good):
        return draw(strategy) if not sane or rarely(draw, 8) else good
    headers = []
    if not rarely(draw, 3 if not sane else 16):
        headers.append(f"From: {bent(addresses, 'Ada Reviewer <ada@example.org>')}")
    headers.append(f"Subject: {subject if subject is not None else draw(subjects())}")
    if sane or draw(st.booleans()):
        headers.append(f"Message-ID: <{draw(_ascii_word)}@example.org>")
    if not sane and rarely(draw, 4):
        headers.append(f"In-Reply-To: <{draw(_ascii_word)}@example.org>")
    headers.append(bent(st.sampled_from(["Date: Mon, 02 Jun 2025 09:55:00 +0200", "Date: yesterday", ""]),
                        "Date: Mon, 02 Jun 2025 09:55:00 +0200"))
    charset, cte = bent(charsets, "utf-8"), draw(encodings) if not sane else bent(encodings, "8bit")
    payload = _encode(body if body is not None else draw(bodies(sane)), charset, cte)
    if rarely(draw, 30 if sane else 10):
        payload = payload.replace(b"---", b"---\x00", 1)          # a NUL in the middle
    depth = draw(st.sampled_from([0, 0, 0, 1, 2, 25])) if not sane else bent(st.sampled_from([1, 2, 25]), 0)
    cte = "base64" if charset == "utf-16" else cte
    part = f"Content-Type: text/plain; charset={charset}\nContent-Transfer-Encoding: {cte}\n".encode()
    head = "\n".join(h for h in headers if h).encode("utf-8", "surrogatepass")
    if depth == 0:
        return head + b"\nMIME-Version: 1.0\n" + part + b"\n" + payload
    out = head + b'\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b0"\n\n'
    for i in range(depth - 1):
        out += b'--b%d\nContent-Type: multipart/mixed; boundary="b%d"\n\n' % (i, i + 1)
    out += b"--b%d\n" % (depth - 1) + part + b"\n" + payload + b"\n"
    for i in range(depth - 1, -1, -1):
        out += b"--b%d--\n" % i
    return out


@st.composite
def series_mail(draw) -> list[bytes]:
    """A series as format-patch writes it (cover letter or not, vN, m/n), then perhaps bent: a
    patch dropped or repeated, a counter changed, a reply or an older version mixed in."""
    n = draw(st.integers(1, 4))
    v = draw(st.sampled_from(["", "v2 ", "v3 "]))
    msgs = []
    if draw(st.booleans()):
        msgs.append(draw(messages(f"[PATCH {v}0/{n}] the series", "The cover.\n\nbase-commit: "
                                  "95ba86de1f0d16a60e2fb689cf5ce4a786bad879\n", sane=True)))
    for i in range(1, n + 1):
        msgs.append(draw(messages(f"[PATCH {v}{i}/{n}] mm: patch {i} " + draw(_words), sane=True)))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        what = draw(st.sampled_from(["drop", "repeat", "renumber", "reply", "other", "older"]))
        k = draw(st.integers(0, len(msgs) - 1)) if msgs else 0
        if what == "drop" and msgs:
            del msgs[k]
        elif what == "repeat" and msgs:
            msgs.insert(k, msgs[k])
        elif what == "renumber" and msgs:
            msgs[k] = msgs[k].replace(f"/{n}]".encode(), f"/{draw(counters)}]".encode(), 1)
        elif what == "reply":
            msgs.append(draw(messages(f"Re: [PATCH {v}1/{n}] mm: patch 1", "Reviewed-by: Bea <b@x.y>\n")))
        elif what == "older":
            msgs.insert(0, draw(messages(f"[PATCH 1/{n}] mm: the first try", sane=True)))
        else:
            msgs.append(draw(messages()))
    return msgs


_MBOX_FROM = [b"From 0123456789abcdef0123456789abcdef01234567 Mon Sep 17 00:00:00 2001",
              b"From mboxrd@z Thu Jan  1 00:00:00 1970"]
_FROM_LINES = st.sampled_from(_MBOX_FROM + [b""])     # b"": a message glued on without one


@st.composite
def mailboxes(draw) -> bytes:
    kind = draw(st.sampled_from(["series"] * 15 + ["messages"] * 4 + ["bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))                       # anything at all
    if kind == "messages":
        msgs = draw(st.lists(messages(), min_size=1, max_size=5))
        return b"".join(draw(_FROM_LINES) + b"\n" + msg + b"\n" for msg in msgs).lstrip(b"\n")
    from_line = draw(st.sampled_from(_MBOX_FROM))
    return b"".join(from_line + b"\n" + msg + b"\n" for msg in draw(series_mail()))


# ---------------------------------------------------------------- the property

def _check(data: bytes) -> None:
    try:
        s = load_series("-", stdin=io.BytesIO(data))
    except MmreviewError as exc:
        # What the CLI prints: one line, whatever the mail held.
        assert "\n" not in visible(str(exc))
        event(f"refused: {exc.reason.split(':')[0][:30]}")   # --hypothesis-show-statistics
        return
    event("a series")
    # What intake hands on is a whole series, in order, that every later stage can take.
    assert [p.number for p in s.patches] == list(range(1, len(s.patches) + 1))
    assert all(p.files for p in s.patches)
    json.dumps(s.to_json(), ensure_ascii=False).encode("utf-8")    # `series --json` can print it
    s.mbox_bytes()


_FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.data_too_large])


@_FAST
@given(mailboxes())
def test_intake_never_raises_anything_else(data: bytes):
    _check(data)


@pytest.mark.slow
@settings(_FAST, max_examples=10_000)
@given(mailboxes())
def test_intake_never_raises_anything_else_10000(data: bytes):
    _check(data)


def test_an_internationalised_address_is_taken_as_written():
    """Found by the 10,000-example run: a From: whose address itself is not ASCII (SMTPUTF8) made
    Python's formataddr raise while the mail was turned back into what git am reads."""
    mail = (SERIES / "clean-3.mbox").read_bytes().replace(
        b"From: Ada Reviewer <ada@example.org>", "From: Zoë <zoë@exämple.org>".encode())
    s = load_series("-", stdin=io.BytesIO(mail))
    assert "zoë@exämple.org" in s.mbox_bytes().decode("utf-8", "replace")
