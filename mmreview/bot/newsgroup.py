"""New mail from a newsgroup: lore's NNTP (`nntp://nntp.lore.kernel.org/org.kvack.linux-mm`).

The cursor is the last article number taken, as the review bots that read lore over NNTP keep it:
article numbers only grow, so a poll asks the group's overview from the cursor on and fetches the
articles whose Message-ID the store does not have.  A first poll starts at `since` (a binary
search over the numbers by date) or one day back.  A poll takes at most BATCH articles; the rest
come next poll, so a bot that was down for a week catches up without holding a week in memory.

Python 3.11's `nntplib` (deprecated in 3.11, gone in 3.13, where `standard-nntplib` from PyPI
is the same module) speaks the protocol.
"""

from __future__ import annotations

import time
import urllib.parse
import warnings
from email.utils import parsedate_to_datetime
from typing import Iterator

from mmreview.bot.config import Inbox
from mmreview.bot.store import Store
from mmreview.common.errors import InfraError

TIMEOUT = 60
BATCH = 2000


def _nntplib():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import nntplib
    return nntplib


def _connect(inbox: Inbox):
    lib = _nntplib()
    u = urllib.parse.urlsplit(inbox.nntp)
    tls = u.scheme == "nntps"
    cls = lib.NNTP_SSL if tls else lib.NNTP
    try:
        return cls(u.hostname, u.port or (563 if tls else 119), timeout=TIMEOUT, readermode=True)
    except (lib.NNTPError, OSError, EOFError) as exc:
        raise InfraError(f"inbox {inbox.name}", f"{_where(inbox)}: {exc}") from None


def _where(inbox: Inbox) -> str:
    u = urllib.parse.urlsplit(inbox.nntp)
    return f"{u.scheme}://{u.netloc}/{u.path.strip('/')}"


def _group(inbox: Inbox) -> str:
    return urllib.parse.urlsplit(inbox.nntp).path.strip("/")


def _date(over: dict) -> float | None:
    try:
        return parsedate_to_datetime(over.get("date", "")).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _over(srv, lo: int, hi: int) -> list:
    """The overview of articles lo..hi; [] for a range with none left (420/423: purged)."""
    try:
        return srv.over((lo, hi))[1]
    except _nntplib().NNTPTemporaryError as exc:
        if str(exc)[:3] in ("420", "423"):
            return []
        raise


def _first_at(srv, first: int, last: int, since: float) -> int:
    """The first article number dated at or after `since` (dates are nearly monotonic in
    the numbers; the dates of the articles taken are checked again)."""
    lo, hi = first, last + 1
    while lo < hi:
        mid = (lo + hi) // 2
        near = _over(srv, mid, min(hi - 1, mid + 20))
        if not near:          # a purged stretch: look earlier (what is too old is filtered out)
            hi = mid
            continue
        num, ov = near[0]
        when = _date(ov)
        if when is None or when >= since:
            hi = mid
        else:
            lo = num + 1
    return lo


def poll(inbox: Inbox, store: Store) -> Iterator[bytes]:
    lib = _nntplib()
    srv = _connect(inbox)
    try:
        try:
            _resp, _count, first, last, _name = srv.group(_group(inbox))
            cur = store.cursor(inbox.name)
            since = None
            if cur is None or int(cur) > last:       # a first poll, or a group numbered anew
                since = inbox.first_look(time.time())
                start = _first_at(srv, first, last, since) if last >= first else last + 1
            else:
                start = max(int(cur) + 1, first)
            end = min(last, start + BATCH - 1)
            overview = _over(srv, start, end) if start <= end else []
            for num, ov in overview:
                mid = ov.get("message-id", "").strip().strip("<>")
                if mid and store.has_message(mid):
                    continue
                if since is not None and (_date(ov) or since) < since:
                    continue
                try:
                    _resp, info = srv.article(num)
                except lib.NNTPTemporaryError:       # 423: expunged since the overview
                    continue
                yield b"\n".join(info.lines) + b"\n"
        except (lib.NNTPError, OSError, EOFError) as exc:      # 411: no such group, too
            raise InfraError(f"inbox {inbox.name}", f"{_where(inbox)}: {exc}") from None
        store.pending_cursor = (inbox.name, str(max(end, start - 1)))
    finally:
        try:
            srv.quit()
        except (lib.NNTPError, OSError, EOFError):
            pass


def fetch_message(inbox: Inbox, msgid: str) -> bytes | None:
    """One article by Message-ID, None if the group's server does not have it."""
    lib = _nntplib()
    srv = _connect(inbox)
    try:
        _resp, info = srv.article(f"<{msgid.strip('<>')}>")
        return b"\n".join(info.lines) + b"\n"
    except lib.NNTPTemporaryError:               # 430: no such article
        return None
    except (lib.NNTPError, OSError, EOFError) as exc:
        raise InfraError(f"inbox {inbox.name}", f"{_where(inbox)}: {exc}") from None
    finally:
        try:
            srv.quit()
        except (lib.NNTPError, OSError, EOFError):
            pass
