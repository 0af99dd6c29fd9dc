"""A mailing-list reply to the series, RFC 5322, ready for `git send-email`/`mutt -H` (never sent).

Kernel-test-robot style: verdict first, then per patch the findings quoted
against the patch's own lines in `> ` reply style (a line each), then the failing
matrix cells with their whole log excerpt and the command that reproduces each,
then a line each for what ran, what failed before the series and the `info`
findings (counted, never quoted: a public mail carries what the author must act
on), then why each cited rule exists, once, and — only when something at or
above --fail-on is reported — `Reported-by:` immediately followed by `Closes:`
(checkpatch wants that pairing).  Addresses go through the standard library's
header registry, so "Doe, Jane" stays one address.  A clean series' reply is a
short note.  Prose is wrapped at 72 columns, nothing the renderer writes
passes 80; quoted patch lines are the patch's own.

Identities come from `[email]` in ~/.config/mmreview/config.toml:

    [email]
    from = "Ada Reviewer <ada@example.org>"     # the From: of the reply
    reported_by = "mmreview <mmreview@localhost>"  # defaults to `from`
    closes_url = "https://lore.kernel.org/r/"      # Closes: <closes_url><reply's Message-ID>
"""

from __future__ import annotations

import secrets
import shlex
import textwrap
from datetime import datetime
import tomllib
import re
from email import errors
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime, getaddresses

from mmreview.common.config import config_path
from mmreview.review.model import DID_NOT_APPLY, Review
from mmreview.render import (VERDICT_LABEL, cell_detail, clean_log, failing_cells, hidden_info,
                             one_paragraph, plural, preexisting_lines, quote_patch, ran_line,
                             rules_to_explain, shown_findings)

WIDTH = 72
DEFAULT_FROM = "mmreview <mmreview@localhost>"
DEFAULT_CLOSES_URL = "https://lore.kernel.org/r/"


def identities(sender: str | None = None) -> dict[str, str]:
    """from / reported_by / closes_url: --from, then the config file, then defaults."""
    conf: dict = {}
    path = config_path()
    if path.is_file():
        try:
            conf = tomllib.loads(path.read_text()).get("email", {})
        except (tomllib.TOMLDecodeError, OSError):
            conf = {}
    frm = sender or conf.get("from") or DEFAULT_FROM
    return {"from": frm, "reported_by": conf.get("reported_by") or frm,
            "closes_url": conf.get("closes_url") or DEFAULT_CLOSES_URL}


def is_default_identity(sender: str | None = None) -> bool:
    """The reply would go out as the built-in `mmreview@localhost`: nobody configured who sends
    it.  `report` warns about it; a bot must refuse to send with it (nobody could answer)."""
    ids = identities(sender)
    return any(address(ids[k]).domain == "localhost" for k in ("from", "reported_by"))


def address(text: str) -> Address:
    """One address as the Review keeps it ("Doe, Jane <jane@example.org>": human-readable, not
    quoted) made an Address, so the header registry writes it back with RFC 5322 quoting
    ("Doe, Jane" <...>) and RFC 2047 for a non-ASCII name.  Each list item is one address: a
    comma in the name is the name's."""
    m = re.fullmatch(r"\s*(.*?)\s*<([^<>]*)>\s*", text, re.S)
    name, spec = (m.group(1), m.group(2)) if m else ("", text.strip())
    if len(name) >= 2 and name[0] == name[-1] == '"':      # already quoted (a config file's)
        name = re.sub(r'\\(.)', r"\1", name[1:-1])
    user, _, domain = spec.strip().rpartition("@")
    return Address(display_name=name, username=user or spec.strip(), domain=domain)


def _addresses(texts: list[str]) -> list[Address]:
    out = []
    for t in texts:
        try:
            out.append(address(t))
        except (ValueError, IndexError, errors.HeaderParseError):
            continue                # not an address at all: the review keeps it, the reply cannot
    return out


def _wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False) or [""]


def _command_lines(cmd: str, indent: str = "    ", width: int = 78) -> list[str]:
    """A shell command over several lines, none past 80 columns, that a shell reads back as the
    same command: words are re-quoted, lines end in a backslash continuation, and a word too
    long for a line is cut into adjacent quoted pieces (`'ab'\\` + newline + `'cd'` is `abcd`)."""
    lex = shlex.shlex(cmd, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    try:
        tokens = list(lex)
    except ValueError:                  # unbalanced quotes: show it as it is
        return [indent + cmd]
    ops = set("();<>|&")
    words = [t if set(t) <= ops else shlex.quote(t) for t in tokens]
    lines: list[str] = []
    cur = indent
    for raw, w in zip(tokens, words):
        sep = "" if cur.strip() == "" else " "
        if len(cur) + len(sep) + len(w) + 2 <= width:
            cur += sep + w
            continue
        if cur.strip():
            lines.append(cur + " \\")
            cur = indent + "  "
        if len(cur) + len(w) + 2 <= width:
            cur += w
            continue
        # Too long for any line: adjacent quoted pieces joined by line continuations.
        room = width - len(cur) - 4
        piece, rest = raw[:room], raw[room:]
        cur += shlex.quote(piece)
        while rest:
            lines.append(cur + "\\")
            piece, rest = rest[:width - 4], rest[width - 4:]
            cur = shlex.quote(piece)
    lines.append(cur)
    return lines


def _log_lines(line: str, indent: str = "    ", width: int = 80) -> list[str]:
    """A log line within `width` columns: a longer one goes on over further-indented lines,
    wrapped at spaces, never cut short (the reader needs all of it)."""
    if len(indent) + len(line) <= width:
        return [indent + line]
    return textwrap.wrap(line, width, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_on_hyphens=False, replace_whitespace=False) or [indent]


def _first_name(author: str) -> str:
    name = getaddresses([author])[0][0]
    return name.split()[0] if name else ""


def render_body(review: Review, ids: dict[str, str], msgid: str, link: str | None = None) -> str:
    s = review.series
    out: list[str] = []
    hi = _first_name(s.author)
    out += [f"Hi {hi}," if hi else "Hello,", ""]
    out += _wrap(f"mmreview {review.tool_version} reviewed this series "
                 f"(v{s.version}, {plural(len(s.patches), 'patch', 'es')}) on {review.tree.base_sha[:12]} "
                 f"({review.tree.base_reason}), profile {review.profile}.")
    out += [""] + _wrap(f"Verdict: {review.summary()}") + [""]

    if review.verdict == DID_NOT_APPLY:
        p = review.failed_patch
        assert p is not None
        out += _wrap(f"[PATCH {p.number}/{len(review.apply)}] {p.subject}")
        from mmreview.apply.diagnose import DESCRIBE, failed_on
        out += _wrap("does not apply with git am --3way"
                     + (f"; {failed_on(p.diagnosis, p.conflict_files)}" if p.conflict_files
                        else "")
                     + (f" ({DESCRIBE[p.diagnosis]})" if p.diagnosis in DESCRIBE else "") + ":", "  ")
        for line in p.message.splitlines()[:8]:
            out += _wrap(clean_log(line), "    ")
        out.append("")

    shown = shown_findings(review)
    for p in s.patches:
        fs = [f for f in shown if f.patch == p.number]
        if not fs:
            continue
        out += _wrap(f"[PATCH {p.number}/{len(s.patches)}] {p.subject}") + [""]
        for f in fs:
            quoted = quote_patch(p.diff, f.file, f.line, f.excerpt)
            if quoted:
                out.append(f"> diff --git a/{f.file} b/{f.file}")
                out += [f"> {q}".rstrip() for q in quoted] + [""]
            elif f.excerpt:
                out += [f"> +{e}".rstrip() for e in f.excerpt] + [""]
            fixed = (f" (patch {f.fixed_by} removes it again, but this patch breaks bisection.)"
                     if f.fixed_by else "")
            out += _wrap(f"{f.severity}: {f.rule}: {f.message}{fixed}")
            out.append("")

    bad = failing_cells(review)
    if bad:
        out += _wrap("Userland suites (tools/testing) after the series:") + [""]
        for c in bad:
            out += _wrap(f"{c.target} {c.suite}/{c.binary}: {VERDICT_LABEL[c.verdict]} "
                         f"({cell_detail(c)})", "  ")
            for line in c.tip.excerpt:        # the whole excerpt: it is what the author debugs
                out += _log_lines(clean_log(line).rstrip())
            if c.tip.command:
                out.append("  To reproduce:")
                out += _command_lines(c.tip.command)
            out.append("")

    # What ran, what failed before the series, what is not quoted: a line each.
    summary: list[str] = []
    ran = ran_line(review)
    if ran:
        sb = review.sandbox
        how = (f"series code confined by {sb.tool}" if sb and sb.confined and sb.tool
               else review.confinement())
        summary += _wrap(f"Ran: {ran}; {how}.")
    pre = preexisting_lines(review)
    if pre:
        summary += _wrap("Pre-existing (fails at the base too): " + "; ".join(pre) + ".")
    info = hidden_info(review)
    if info:
        summary += _wrap(f"Not quoted: {info}.")
    for n in review.not_applied:
        summary += _wrap(f"Not applied: {n.rule}" + (f" on {n.file}" if n.file else "")
                         + f": {n.reason}")
    if summary:
        out += summary + [""]

    why = rules_to_explain(review, shown)
    if why:
        out += ["Why these rules:"]
        for r in why:
            out += _wrap(f"{r.id}: {one_paragraph(r.rationale)}"
                         + (f" ({r.source})" if r.source else ""), "  ")
        out.append("")

    # Tags only for what the series causes and the review fails on (--fail-on): a pre-existing
    # failure, a finding below the threshold or a series that does not apply is nothing to credit.
    if reports_something(review):
        out += _wrap("If you fix the issue in a separate patch/commit (i.e. not just a new "
                     "version of the same patch/commit), kindly add following tags")
        out += [f"Reported-by: {address(ids['reported_by'])}",
                f"Closes: {ids['closes_url']}{msgid.strip('<>')}/", ""]
    if link:     # the bot's results page for this review (site_url)
        out += [f"Details: {link}", ""]
    out = [l.rstrip() for l in out]
    out += ["-- ", f"mmreview {review.tool_version}"]     # the signature separator keeps its space
    return "\n".join(out) + "\n"


def reports_something(review: Review) -> bool:
    """Something at or above --fail-on that the series causes: what Reported-by:/Closes: credit."""
    return bool(review.failing_findings() or review.new_failures())


def render_email(review: Review, sender: str | None = None, msgid: str | None = None,
                 date: str | None = None, link: str | None = None, **_opts) -> str:
    ids = identities(sender)
    s = review.series
    frm = ids["from"]
    try:
        domain = address(frm).domain or "localhost"
    except (ValueError, IndexError, errors.HeaderParseError):
        domain = "localhost"
    # Short enough that the Closes: link stays within 80 columns.
    msgid = msgid or f"<mmreview-{review.tree.tip_sha[:12]}-{secrets.token_hex(4)}@{domain}>"
    subject = s.reply_subject or s.cover_subject or s.title
    to = _addresses([s.author] if s.author else [])
    seen = {a.addr_spec.lower() for a in to}
    cc = []
    for a in _addresses(s.to + s.cc):
        if a.addr_spec.lower() not in seen:
            seen.add(a.addr_spec.lower())
            cc.append(a)
    # An internationalised address (a non-ASCII local part) cannot be RFC 2047-encoded: the
    # reply is then an SMTPUTF8 message, as the series' own was.
    utf8 = not all(a.addr_spec.isascii() for a in [*to, *cc, *_addresses([frm])])
    msg = EmailMessage(policy=(SMTPUTF8 if utf8 else SMTP).clone(max_line_length=998))
    msg["From"] = _addresses([frm]) or frm
    msg["To"] = to if to else "undisclosed-recipients:;"
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    msg["Date"] = date or format_datetime(datetime.fromisoformat(review.created))
    msg["Message-ID"] = msgid
    if s.reply_to_id:
        ref = f"<{s.reply_to_id.strip('<>')}>"
        msg["In-Reply-To"] = ref
        msg["References"] = ref
    msg["X-Mmreview-Verdict"] = review.verdict
    msg.set_content(render_body(review, ids, msgid, link), charset="utf-8", cte="8bit")
    return msg.as_string()

