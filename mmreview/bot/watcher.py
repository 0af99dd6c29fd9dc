"""Where new mail comes from: a public-inbox over HTTP, a newsgroup (newsgroup.py), a public-inbox
on disk (archive.py), or a maildir.

A public-inbox is asked with its search endpoint for everything received since the cursor, less
a re-scan window (NIPA's lesson: mail is indexed late and out of order), as one gzipped mbox
(`POST /<inbox>/?q=rt:<since>..&x=m`).  An inbox without a search index falls back to its
`new.atom` feed and each entry's `/raw`.  Duplicates are cheap: the store keeps one row per
Message-ID, so the overlap of two polls is skipped, not reviewed twice.

A maildir is read file by file; the names already taken are the cursor.
"""

from __future__ import annotations

import gzip
import json
import mailbox
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

from mmreview.bot import archive, newsgroup
from mmreview.bot.config import Inbox
from mmreview.bot.store import Store
from mmreview.common.errors import InfraError
from mmreview.intake.mail import NotMail, split_mbox

RESCAN = 3600.0          # seconds of overlap between two polls of a public-inbox
TIMEOUT = 60
_ATOM = "{http://www.w3.org/2005/Atom}"


def _since(inbox: Inbox, store: Store, now: float) -> float:
    cur = store.cursor(inbox.name)
    return float(cur) - RESCAN if cur is not None else inbox.first_look(now)


def _get(url: str, post: bool = False) -> bytes:
    req = urllib.request.Request(url, data=b"" if post else None, method="POST" if post else "GET",
                                 headers={"User-Agent": "mmreview-bot"})
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
        return resp.read()


def poll(inbox: Inbox, store: Store) -> Iterator[bytes]:
    """New raw messages of one inbox (some may be known: the caller keeps one per Message-ID).
    The cursor moves only after the caller has taken them all (`commit_poll`)."""
    if inbox.maildir:
        yield from _maildir(inbox, store)
    elif inbox.nntp:
        yield from newsgroup.poll(inbox, store)
    elif inbox.path:
        yield from archive.poll(inbox, store)
    else:
        yield from _public_inbox(inbox, store)


def _public_inbox(inbox: Inbox, store: Store) -> Iterator[bytes]:
    now = time.time()
    base = inbox.url.rstrip("/") + "/"
    since = int(_since(inbox, store, now))
    try:
        data = _get(base + "?" + urllib.parse.urlencode({"q": f"rt:{since}..", "x": "m"}), post=True)
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        chunks = split_mbox(raw) if raw.strip() else []
    except urllib.error.HTTPError as exc:
        if exc.code == 404:          # 404: no match in the range (public-inbox says so)
            chunks = []
        elif exc.code in (400, 501, 503):
            chunks = None            # no search index: the feed
        else:
            raise InfraError(f"inbox {inbox.name}", f"{base}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise InfraError(f"inbox {inbox.name}", f"{base}: {getattr(exc, 'reason', exc)}") from None
    except NotMail as exc:
        raise InfraError(f"inbox {inbox.name}", f"{base}: the search answer is not an mbox: {exc}") from None
    if chunks is None:
        yield from _atom(inbox, store, base)
    else:
        for raw_msg, _from in reversed(chunks):      # public-inbox answers newest first
            yield raw_msg
    store.pending_cursor = (inbox.name, str(now))


def _atom(inbox: Inbox, store: Store, base: str) -> Iterator[bytes]:
    try:
        feed = ET.fromstring(_get(base + "new.atom"))
        for entry in feed.iter(_ATOM + "entry"):
            link = entry.find(_ATOM + "link")
            href = link.get("href") if link is not None else None
            if not href:
                continue
            msgid = urllib.parse.unquote(href.rstrip("/").rsplit("/", 1)[-1])
            if store.has_message(msgid):
                continue
            yield _get(href.rstrip("/") + "/raw")
    except (urllib.error.URLError, OSError, ET.ParseError) as exc:
        raise InfraError(f"inbox {inbox.name}", f"{base}new.atom: {getattr(exc, 'reason', exc)}") from None


def _maildir(inbox: Inbox, store: Store) -> Iterator[bytes]:
    path = Path(inbox.maildir)
    if not (path / "new").is_dir() and not (path / "cur").is_dir():
        raise InfraError(f"inbox {inbox.name}", f"{path}: not a maildir (no new/ or cur/)")
    md = mailbox.Maildir(str(path), factory=None, create=False)
    taken = set(json.loads(store.cursor(inbox.name) or "[]"))
    keys = sorted(md.keys())
    for key in keys:
        if key not in taken:
            yield md.get_bytes(key)
    # A message moved from new/ to cur/ keeps its key (the part before ':').
    store.pending_cursor = (inbox.name, json.dumps(sorted(set(keys))))


def commit_poll(store: Store) -> None:
    pending = getattr(store, "pending_cursor", None)
    if pending:
        store.set_cursor(*pending)
        store.pending_cursor = None


def fetch_message(inbox: Inbox, msgid: str) -> bytes | None:
    """One message by Message-ID from a public-inbox or newsgroup (None if it does not have it): how a mail
    left in doubt by a crash is looked for on the list before it is sent again."""
    if inbox.nntp:
        return newsgroup.fetch_message(inbox, msgid)
    if not inbox.url:
        return None
    url = inbox.url.rstrip("/") + "/" + urllib.parse.quote(msgid, safe="@") + "/raw"
    try:
        return _get(url)
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 300):
            return None
        raise InfraError(f"inbox {inbox.name}", f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise InfraError(f"inbox {inbox.name}", f"{url}: {getattr(exc, 'reason', exc)}") from None
