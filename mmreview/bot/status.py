"""`mmreview bot status`: what the bot is doing, for a person (read-only on the state file)."""

from __future__ import annotations

import json
import sqlite3
import time

from mmreview.bot.store import Store


def _ago(t: float | None, now: float) -> str:
    if not t:
        return "never"
    d = now - float(t)
    if d < 0:
        return f"in {_span(-d)}"
    return f"{_span(d)} ago"


def _span(d: float) -> str:
    if d < 90:
        return f"{d:.0f} s"
    if d < 5400:
        return f"{d / 60:.0f} min"
    return f"{d / 3600:.1f} h"


def _held(store: Store, now: float) -> list[str]:
    """Reviews held for a summary (0-day's rule, summary.py), by base, and when it leaves."""
    try:
        rows = store.all("SELECT h.base, h.policy, h.held_at, h.due, p.id, p.title, p.version, "
                         "(SELECT count(*) FROM errors e WHERE e.review=h.review) AS errors FROM held h "
                         "JOIN postings p ON p.id=h.posting WHERE h.summary IS NULL ORDER BY h.held_at")
    except sqlite3.OperationalError:          # a state file from before the summary rule
        rows = []
    out = [f"held for a summary ({len(rows)}):"]
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r.base, r.policy), []).append(r)
    for (base, pol), rs in groups.items():
        due = min(r.due for r in rs)
        out.append(f"  on {base[:12]} ({pol}): a summary of {len(rs)} series, due {_ago(due, now)}")
        out += [f"    series {r.id} v{r.version} {r.title!r}: {r.errors} repeated error(s), held "
                f"{_ago(r.held_at, now)}" for r in rs]
    if not rows:
        out.append("  none")
    return out


def _cursor(value: str, now: float) -> str:
    """Where an inbox was read up to, as each watcher keeps it."""
    if value.isdigit():
        return f"at article {value}"                     # a newsgroup
    if value.startswith("{"):                            # a public-inbox on disk: epoch -> commit
        heads = json.loads(value)
        return "at " + ", ".join(f"{e} {c[:12]}" for e, c in sorted(heads.items()))
    if value.startswith("["):                            # a maildir: the files taken
        return f"{len(json.loads(value))} files taken"
    try:
        return f"searched up to {_ago(float(value), now)}"   # a public-inbox over HTTP
    except ValueError:
        return value[:40]


def status_text(store: Store, now: float | None = None, errors: int = 5) -> str:
    now = time.time() if now is None else now
    out = []
    counts = {r.state: r.n for r in store.all("SELECT state, count(*) AS n FROM postings GROUP BY state")}
    mails = {r.state: r.n for r in store.all("SELECT state, count(*) AS n FROM outbox GROUP BY state")}
    seen = store.value("SELECT count(*) FROM messages")
    out.append(f"messages seen: {seen}; tree head {(store.fact('tree_head') or '?')[:12]}, fetched "
               f"{_ago(float(store.fact('tree_fetched_at') or 0), now)}")
    inboxes = store.all("SELECT inbox, value FROM cursors ORDER BY inbox")
    out.append("inboxes: " + ("; ".join(f"{r.inbox} {_cursor(r.value, now)}" for r in inboxes)
                              or "not polled yet"))
    out.append("series: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"))
    out.append("mails: " + (", ".join(f"{n} {s}" for s, n in sorted(mails.items())) or "none"))
    running = store.all("SELECT p.id, p.title, p.version, r.started_at, r.pid FROM reviews r JOIN "
                        "postings p ON p.id=r.posting WHERE r.state='running' ORDER BY r.started_at")
    out.append("")
    out.append(f"in flight ({len(running)}):")
    out += [f"  series {r.id} v{r.version} {r.title!r}: started {_ago(r.started_at, now)} (pid {r.pid})"
            for r in running] or ["  nothing"]
    queued = store.all("SELECT id, title, version, retry_at, attempts FROM postings WHERE state IN "
                       "('queued', 'collecting') ORDER BY first_seen")
    out.append(f"queue ({len(queued)}):")
    for r in queued[:20]:
        when = f", retry {_ago(r.retry_at, now)}" if r.retry_at > now else ""
        out.append(f"  series {r.id} v{r.version} {r.title!r}{when}")
    if not queued:
        out.append("  empty")
    pending = store.all("SELECT o.msgid, o.not_before, o.attempts, o.last_error, o.state, o.kind, "
                        "coalesce(p.title, o.kind) AS title FROM outbox o LEFT JOIN postings p ON "
                        "p.id=o.posting WHERE o.state IN ('pending', 'sending') ORDER BY o.not_before")
    out.append(f"mails pending ({len(pending)}):")
    for r in pending[:20]:
        err = f"; last error: {r.last_error}" if r.last_error else ""
        what = "the summary of held reviews" if r.kind == "summary" else repr(r.title)
        out.append(f"  {what} ({r.state}, due {_ago(r.not_before, now)}{err})")
    if not pending:
        out.append("  none")
    out += _held(store, now)
    errs = store.all("SELECT at, what FROM oplog WHERE what LIKE 'infrastructure:%' OR what LIKE "
                     "'mail %' ORDER BY id DESC LIMIT ?", errors)
    out.append(f"last errors ({len(errs)}):")
    out += [f"  {_ago(r.at, now)}: {r.what}" for r in errs] or ["  none"]
    return "\n".join(out) + "\n"
