"""A Message-ID or a lore link as SERIES: the thread, fetched by b4 from one public-inbox.

SERIES names a thread as `<msgid@host>`, `msgid@host`, `id:msgid@host`, or a public-inbox
link `https://lore.kernel.org/linux-mm/msgid@host/` (any page of the message).  The thread is
fetched by b4 itself (`b4 mbox -o -`, with `-c` for --newest: b4's own search for newer
revisions, as `b4 am -c` does); nothing here speaks HTTP.

Where from, in this order: --lore URL; the inbox of a link given as SERIES; `url` in [lore] of
~/.config/mmreview/config.toml; the user's own `b4.midmask` (else `b4.searchmask`) from their
git config; https://lore.kernel.org/all/.  b4 runs in an empty directory outside any work
tree, with git's system and global config hidden from it and every setting it uses given on its
command line: a series' `.b4-config` (or anything else) cannot send the fetch elsewhere, add
mirrors, or make b4 run anything.

A fetched thread is kept under ~/.cache/mmreview/lore/: threads/<sha256 of the mbox>.mbox, and
ids/<sha256 of inbox + Message-ID> naming it, so a second review of the same thread does not
fetch it again (--newest always asks the server).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from mmreview.common.errors import BadInput, InfraError

DEFAULT_URL = "https://lore.kernel.org/all/"
DEFAULT_TIMEOUT = 60.0      # seconds for the whole fetch (liblore's own read timeout is 30 s)

_MSGID = re.compile(r"^[^\s<>/@]+@[^\s<>/@]+$")
_LINK = re.compile(r"^(https?://[^/\s]+/[^/\s]+/)([^/\s]+@[^/\s]+)(?:/.*)?$", re.I)


@dataclass(frozen=True)
class LoreOptions:
    url: str | None = None      # --lore: the inbox to fetch from (overrides everything else)
    newest: bool = False        # --newest: also look for newer revisions (b4 am -c)


@dataclass(frozen=True)
class Ref:
    msgid: str                  # without <>
    inbox: str | None           # the inbox of a link given as SERIES, ending in "/"


def parse_ref(source: str) -> Ref | None:
    """The Message-ID SOURCE names, or None if it names none (then it is a path or a range)."""
    s = source.strip()
    m = _LINK.match(s)
    if m:
        return Ref(urllib.parse.unquote(m.group(2)), m.group(1))
    if s.lower().startswith("id:"):
        s = s[3:]
    if s.startswith("<") and s.endswith(">"):
        s = s[1:-1]
    return Ref(s, None) if _MSGID.match(s) else None


# ---------------------------------------------------------------- where from

def _config() -> dict:
    from mmreview.common.config import load_config
    return load_config().get("lore", {})


def _user_b4(key: str) -> str | None:
    """The user's own b4.<key> (system and global git config; read outside any work tree)."""
    proc = subprocess.run(["git", "config", "--get", f"b4.{key}"], capture_output=True, text=True,
                          cwd=tempfile.gettempdir(), env={**os.environ, "GIT_DIR": "/nonexistent"})
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _inbox_of_mask(mask: str) -> str:
    """'https://host/list/%s' or 'https://host/list/?x=m&q=%s' -> 'https://host/list/'."""
    base = mask.split("%s", 1)[0].split("?", 1)[0]
    return base if base.endswith("/") else base + "/"


def inbox_url(ref: Ref, opts: LoreOptions) -> str:
    """The inbox the thread is fetched from, ending in '/'."""
    if opts.url:
        url = opts.url
    elif ref.inbox:
        url = ref.inbox
    else:
        url = _config().get("url")
        if not url:
            mask = _user_b4("midmask") or _user_b4("searchmask")
            url = _inbox_of_mask(mask) if mask else DEFAULT_URL
    if not re.match(r"^https?://[^/\s]+", url):
        where = f"--lore {url}" if opts.url else f"[lore] url = {url!r}"
        raise BadInput(where, "not an http(s) URL of a public-inbox")
    url = url if url.endswith("/") else url + "/"
    if urllib.parse.urlparse(url).path in ("", "/"):
        url += "all/"            # as b4 does: a bare origin means its /all/ inbox
    return url


def timeout() -> float:
    value = _config().get("timeout", DEFAULT_TIMEOUT)
    if not isinstance(value, (int, float)) or value <= 0:
        raise BadInput("[lore] timeout", f"{value!r}: not a positive number of seconds")
    return float(value)


# ---------------------------------------------------------------- cache

def _cache() -> Path:
    from mmreview.common.paths import lore_dir
    return lore_dir()


def _id_file(url: str, msgid: str) -> Path:
    return _cache() / "ids" / hashlib.sha256(f"{url}\0{msgid}".encode()).hexdigest()


def cached_thread(url: str, msgid: str) -> bytes | None:
    try:
        entry = json.loads(_id_file(url, msgid).read_text())
        return (_cache() / "threads" / f"{entry['thread']}.mbox").read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(url: str, msgid: str, data: bytes) -> None:
    digest = hashlib.sha256(data).hexdigest()
    for path, content in ((_cache() / "threads" / f"{digest}.mbox", data),
                          (_id_file(url, msgid), json.dumps({"url": url, "msgid": msgid,
                                                             "thread": digest}).encode())):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(content)
        os.replace(tmp, path)


# ---------------------------------------------------------------- fetch

def b4_command(url: str, msgid: str, newest: bool) -> list[str]:
    """b4 with every setting it reads for a fetch given here (b4 -c NAME=VALUE)."""
    b4 = Path(sys.executable).with_name("b4")
    return [str(b4) if b4.exists() else "b4", "--quiet", "--no-interactive", "--no-stdin",
            "-c", f"b4.midmask={url}%s", "-c", f"b4.searchmask={url}?x=m&t=1&q=%s",
            "-c", "b4.listid-preference=", "mbox", "--no-cache", *(["-c"] if newest else []),
            "--outdir", "-", msgid]


def _clean_env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "B4_", "XDG_"))}
    # No system or global git config (b4 and liblore read theirs through git: mirrors,
    # midmask); HOME is the empty directory, so ~/.config/b4 and ~/.cache/b4 are not read.
    env.update({"HOME": home, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_CEILING_DIRECTORIES": str(Path(home).parent), "LC_ALL": "C.UTF-8"})
    return env


def _failure(source: str, url: str, msgid: str, stderr: str) -> Exception:
    text = " ".join(stderr.split())
    code = re.search(r"returned an error: (\d{3})", text)
    if code and code.group(1) in ("404", "410"):
        return BadInput(source, f"no message {msgid} on {url}")
    if "No messages found" in text:
        return BadInput(source, f"no message {msgid} on {url}")
    if code:
        return InfraError(source, f"{url} answered HTTP {code.group(1)} (b4 could not fetch the thread)")
    if "timed out" in text.lower():
        return InfraError(source, f"{url} did not answer in time")
    if re.search(r"connection|resolve|name or service|network", text, re.I):
        return InfraError(source, f"cannot reach {url} (no network, or the server is down)")
    last = (stderr.strip().splitlines() or ["no output"])[-1]
    return InfraError(source, f"b4 could not fetch the thread from {url}: {last[:200]}")


def fetch_thread(source: str, ref: Ref, opts: LoreOptions) -> tuple[str, bytes]:
    """(the inbox URL, the thread as an mbox); from the cache unless --newest."""
    url = inbox_url(ref, opts)
    if not opts.newest:
        data = cached_thread(url, ref.msgid)
        if data is not None:
            return url, data
    limit = timeout()
    with tempfile.TemporaryDirectory(prefix="mmreview-b4-") as home:
        work = Path(home) / "work"
        work.mkdir()
        try:
            proc = subprocess.run(b4_command(url, ref.msgid, opts.newest), cwd=work,
                                  env=_clean_env(home), capture_output=True, timeout=limit,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise InfraError(source, f"{url} did not answer within {limit:g} s "
                                     "([lore] timeout in the config file)") from None
        except FileNotFoundError:
            raise InfraError(source, "b4 is not installed (pip install b4)") from None
    if proc.returncode != 0 or not proc.stdout.strip():
        raise _failure(source, url, ref.msgid, proc.stderr.decode("utf-8", "replace"))
    data = proc.stdout
    parent = _missing_cover(data, ref.msgid)
    if parent:
        try:
            _, whole = fetch_thread(source, Ref(parent, ref.inbox), opts)
        except (BadInput, InfraError):
            whole = b""
        if _is_cover_over(whole, parent, ref.msgid):
            data = whole
    _store(url, ref.msgid, data)
    return url, data


def _messages(data: bytes):
    from mmreview.intake.mail import BadMail, NotMail, parse_message, split_mbox
    try:
        chunks = split_mbox(data)
    except NotMail:
        return
    for raw, from_line in chunks:
        try:
            yield parse_message(raw, from_line, "")
        except (NotMail, BadMail):
            continue


def _is_cover_over(data: bytes, cover: str, msgid: str) -> bool:
    """`data` holds both `msgid` and `cover`, and `cover` is a cover letter ([PATCH 0/n])."""
    import b4
    found = {m.message_id: m for m in _messages(data) if m.message_id in (cover, msgid)}
    if len(found) != 2:
        return False
    ls = b4.LoreSubject(found[cover].subject)
    return not ls.reply and not ls.counters_inferred and ls.counter == 0


def _missing_cover(data: bytes, msgid: str) -> str | None:
    """b4 takes a lone [PATCH 1/1] sent in reply to something as a patch posted in the middle
    of a discussion and leaves its parent out (b4/__init__.py: get_strict_thread()); when that
    parent is the series' own cover letter ([PATCH 0/1]), the cover letter's thread is the one
    to review.  The parent's Message-ID if it is missing here, else None."""
    import b4
    mails = list(_messages(data))
    ids = {m.message_id for m in mails}
    me = next((m for m in mails if m.message_id == msgid), None)
    if me is None or not me.in_reply_to or me.in_reply_to in ids:
        return None
    ls = b4.LoreSubject(me.subject)
    return me.in_reply_to if (ls.counter == 1 and ls.expected == 1 and not ls.reply) else None
