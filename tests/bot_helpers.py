"""Real parts for the bot's tests (a plain module): an SMTP server that records what it is given
and relays list mail into the public-inbox, as a list would; sample series turned into fresh
mail (new Message-IDs, dates, recipients); the bot as a process; the kernel remote.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate, getaddresses
from pathlib import Path

from aiosmtpd.controller import Controller

from conftest import MMREVIEW, SERIES, git

LIST = "linux-mm@kvack.org"
MAINTAINER = "Andrew Morton <akpm@linux-foundation.org>"
BOT_FROM = "mmreview bot <mmreview-bot@example.org>"


# ---------------------------------------------------------------- SMTP

@dataclass
class Received:
    envelope_from: str
    rcpt: list[str]
    msg: email.message.EmailMessage
    raw: bytes


class _Handler:
    def __init__(self, server: "SmtpRecorder"):
        self.server = server

    async def handle_RCPT(self, _srv, _session, envelope, address, _opts):
        if self.server.rcpt_delay:
            await asyncio.sleep(self.server.rcpt_delay)   # a slow server: nothing accepted yet
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _srv, _session, envelope):
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.server.record(Received(envelope.mail_from, list(envelope.rcpt_tos), msg, raw))
        if self.server.accept_delay:
            await asyncio.sleep(self.server.accept_delay)  # accepted, the 250 not yet said
        return "250 Message accepted"


class SmtpRecorder:
    """aiosmtpd on 127.0.0.1; mail to the list is also delivered into the list's archive."""

    def __init__(self, deliver=None):
        self.mails: list[Received] = []
        self.lock = threading.Lock()
        self.deliver = deliver          # deliver(raw) into the public-inbox, for list mail
        self.rcpt_delay = 0.0
        self.accept_delay = 0.0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> "SmtpRecorder":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def record(self, r: Received) -> None:
        with self.lock:
            self.mails.append(r)
        if self.deliver and LIST in [a.lower() for a in r.rcpt]:
            self.deliver(r.raw)

    def wait_for(self, n: int, timeout: float, proc=None) -> list[Received]:
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if len(self.mails) >= n:
                    return list(self.mails)
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.3)
        with self.lock:
            return list(self.mails)


# ---------------------------------------------------------------- mail

_SPLIT = re.compile(rb"^From \S+ +\w{3} \w{3} +\d+ [\d:]+ \d{4}\n", re.M)


def messages(mbox: str | Path) -> list[bytes]:
    data = Path(SERIES / mbox if not Path(mbox).is_absolute() else mbox).read_bytes()
    return [m for m in _SPLIT.split(data) if m.strip()]


def fresh(raws: list[bytes], tag: str, to: str | None = None, sender: str | None = None,
          subject_prefix: str | None = None) -> list[bytes]:
    """The same mail as new: Message-IDs (and the threading that names them) made unique with
    `tag`, today's date, optionally another To:, another From:, a subject prefix (RESEND)."""
    out = []
    for raw in raws:
        head, sep, body = raw.partition(b"\n\n")

        def ids(m: re.Match) -> bytes:
            local, _, dom = m.group(1).partition(b"@")
            return b"<" + local + b"." + tag.encode() + b"@" + dom + b">"
        lines = []
        for line in re.split(rb"\n(?![ \t])", head):
            name = line.split(b":", 1)[0].lower()
            if name in (b"message-id", b"in-reply-to", b"references"):
                line = re.sub(rb"<([^>]+)>", ids, line)
            elif name == b"date":
                line = b"Date: " + formatdate(usegmt=True).encode()
            elif name == b"to" and to:
                line = b"To: " + to.encode()
            elif name == b"from" and sender:
                line = b"From: " + sender.encode()
            elif name == b"subject" and subject_prefix:
                line = re.sub(rb"\[PATCH", b"[PATCH " + subject_prefix.encode(), line, count=1)
            lines.append(line)
        if to and not any(l.lower().startswith(b"to:") for l in lines):
            lines.append(b"To: " + to.encode())
        out.append(b"\n".join(lines) + sep + body)
    return out


def msgid_of(raw: bytes) -> str:
    return re.search(rb"^Message-ID:\s*<([^>]+)>", raw, re.M | re.I).group(1).decode()


def reply(to_raw: bytes, sender: str, body: str, tag: str) -> bytes:
    """A reply to one message, as a maintainer's mail client writes it."""
    parent = msgid_of(to_raw)
    subj = re.search(rb"^Subject:\s*(.*)$", to_raw, re.M).group(1).decode()
    return (f"From: {sender}\nTo: {LIST}\nSubject: Re: {subj}\nDate: {formatdate(usegmt=True)}\n"
            f"Message-ID: <reply.{tag}.{secrets.token_hex(3)}@example.org>\n"
            f"In-Reply-To: <{parent}>\nReferences: <{parent}>\n\n{body}\n").encode()


# ---------------------------------------------------------------- the tree and the bot

def kernel_remote(kernel_tree: Path, d: Path) -> tuple[Path, Path]:
    """A bare 'upstream' sharing the kernel's objects, and the bot's own clone of it (shared too,
    so the bot's `git fetch` moves only what is new)."""
    remote = d / "mm.git"
    git(d, "clone", "--quiet", "--bare", "--shared", str(kernel_tree), str(remote))
    mine = d / "bot-tree.git"
    git(d, "clone", "--quiet", "--bare", "--shared", str(remote), str(mine))
    return remote, mine


def write_config(d: Path, smtp_port: int, inbox_url: str, tree: Path, remote: Path, **over) -> Path:
    grace = over.get("grace", 3600)
    lst = over.get("list_policy", {})
    pol = {"reply": "author+list", "rate": 20, "stop_from": ["akpm@linux-foundation.org"],
           "incomplete": True, "did_not_apply": True, **lst}

    def toml(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(toml(x) for x in v) + "]"
        return '"' + str(v) + '"'
    text = f"""
[bot]
state = "state/bot.sqlite"
from = "{over.get('sender', BOT_FROM)}"
profile = "{over.get('profile', 'rules')}"
in_flight = {over.get('in_flight', 2)}
poll = {over.get('poll', 1)}
grace = {grace}
retry = 1
dry_run_dir = "dry-run"
{'site_dir = "site"' if over.get('site') else ''}
{('site_url = "' + over['site_url'] + '"') if over.get('site_url') else ''}
{('arch = "' + over['arch'] + '"') if over.get('arch') else ''}

[tree]
path = "{tree}"
remote = "{remote}"
branch = "master"
fetch = {over.get('fetch', 3600)}

[smtp]
host = "127.0.0.1"
port = {smtp_port}

[[inbox]]
name = "linux-mm"
{over.get("inbox_kind", "url")} = "{inbox_url}"
since = "2000-01-01"

[policy]
reply = "dry-run"

[[policy.lists]]
match = ["{LIST}"]
""" + "".join(f"{k} = {toml(v)}\n" for k, v in pol.items())
    path = d / "bot.toml"
    path.write_text(text)
    return path


def start_bot(config: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([MMREVIEW, "bot", "--config", str(config), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=config.parent)


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def db(config: Path) -> sqlite3.Connection:
    c = sqlite3.connect(config.parent / "state" / "bot.sqlite", timeout=30)
    c.row_factory = sqlite3.Row
    return c


def wait_until(cond, timeout: float, what: str, proc=None):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the bot exited ({proc.returncode}) waiting for {what}: "
                                 f"{err.decode()[-2000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def query(config: Path, sql: str, *args):
    if not (config.parent / "state" / "bot.sqlite").exists():
        return []
    c = db(config)
    try:
        return c.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        c.close()


def synthetic_series(kernel_tree: Path, d: Path, n: int, start: int = 0) -> list[list[bytes]]:
    """n distinct small, clean series (2 patches and a cover letter each: a comment added at the
    end of mm/vma.c and of lib/maple_tree.c), made with git format-patch on the kernel, To the
    list: every one is new content, so none is taken for a resend of another."""
    work = d / "synthetic"
    if not work.exists():
        git(d, "clone", "--quiet", "--shared", "--no-checkout", str(kernel_tree), str(work))
        git(work, "sparse-checkout", "set", "--no-cone", "/mm/vma.c", "/lib/maple_tree.c")
        git(work, "checkout", "--quiet", "master")
    base = git(work, "rev-parse", "master")
    out = []
    for i in range(start, start + n):
        git(work, "checkout", "--quiet", "-B", f"s{i}", base)
        for path, text in (("mm/vma.c", f"vma: note {i}"), ("lib/maple_tree.c", f"maple: note {i}")):
            f = work / path
            # At the end: outside every comment and function, so each series builds and passes
            # (line 7 of lib/maple_tree.c is inside its header comment, which the note would end).
            f.write_text(f.read_text() + f"/* {text}: synthetic series for the bot's tests. */\n")
            git(work, "commit", "--quiet", "-am", f"{path.split('/')[0]}: {text}\n\nA comment.\n\n"
                                                   f"Signed-off-by: Test Author <test@example.org>")
        mbox = git(work, "format-patch", "--stdout", "--cover-letter", "--thread=shallow",
                   f"--base={base}", f"--to={LIST}", f"--subject-prefix=PATCH",
                   "--no-signature", f"{base}..HEAD")
        raws = [m for m in _SPLIT.split(mbox.encode() + b"\n") if m.strip()]
        raws[0] = raws[0].replace(b"*** SUBJECT HERE ***", f"synthetic series {i}".encode())
        out.append(fresh(raws, f"syn{i}"))
    return out


def variant_series(kernel_tree: Path, d: Path, n: int, tag: str, mbox: str | None = None,
                   break_build: bool = False) -> list[list[bytes]]:
    """n distinct series making the same change to the code — `mbox`'s patches, or a line that
    breaks lib/xarray.c's build — plus a line of their own in Documentation/mm/index.rst, which
    no suite builds: each is new content (not a resend of another), all fail the matrix the same
    way, and the results cache runs the failing cell once.  Cover letter, base-commit, To the list."""
    work = d / f"variants-{tag}"
    if not work.exists():
        git(d, "clone", "--quiet", "--shared", "--no-checkout", str(kernel_tree), str(work))
        git(work, "sparse-checkout", "set", "--no-cone", "/lib/xarray.c", "/Documentation/mm/index.rst")
        git(work, "checkout", "--quiet", "master")
    base = git(work, "rev-parse", "master")
    ada = {"GIT_AUTHOR_NAME": "Ada Reviewer", "GIT_AUTHOR_EMAIL": "ada@example.org",
           "GIT_COMMITTER_NAME": "Ada Reviewer", "GIT_COMMITTER_EMAIL": "ada@example.org"}

    def as_ada(*args: str) -> str:          # the whole series by one author, as she sends it
        return subprocess.run(["git", "-C", str(work), *args], check=True, capture_output=True,
                              text=True, env={**os.environ, **ada, "LC_ALL": "C"}).stdout
    out = []
    for i in range(n):
        git(work, "checkout", "--quiet", "-B", f"{tag}{i}", base)
        if mbox:
            as_ada("am", "--quiet", "--empty=drop", str(SERIES / mbox))
        if break_build:
            f = work / "lib/xarray.c"
            f.write_text(f.read_text().replace('#include "radix-tree.h"\n',
                                               '#include "radix-tree.h"\n#include "xarray-internal.h"\n', 1))
            as_ada("commit", "--quiet", "-am", "xarray: include the internal header\n\nThe helpers "
                   "that follow will be declared there.\n\nSigned-off-by: Ada Reviewer <ada@example.org>")
        doc = work / "Documentation/mm/index.rst"
        doc.write_text(doc.read_text() + f"\n.. {tag} note {i}: for the bot's tests.\n")
        as_ada("commit", "--quiet", "-am", f"docs/mm: note {tag} {i}\n\nA note for the tests of "
               f"the review bot.\n\nSigned-off-by: Ada Reviewer <ada@example.org>")
        mbox_text = as_ada("format-patch", "--stdout", "--cover-letter", "--thread=shallow",
                           f"--base={base}", f"--to={LIST}", "--subject-prefix=PATCH",
                           "--no-signature", f"{base}..HEAD")
        raws = [m for m in _SPLIT.split(mbox_text.encode() + b"\n") if m.strip()]
        raws[0] = raws[0].replace(b"*** SUBJECT HERE ***", f"xarray: series {tag} {i}".encode())
        out.append(fresh(raws, f"{tag}{i}"))
    return out
