"""`mmreview bot status`: what the bot is doing, for a person (read-only on the state file)."""

from __future__ import annotations

import json
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
    pending = store.all("SELECT o.msgid, o.not_before, o.attempts, o.last_error, o.state, p.title "
                        "FROM outbox o JOIN postings p ON p.id=o.posting WHERE o.state IN "
                        "('pending', 'sending') ORDER BY o.not_before")
    out.append(f"mails pending ({len(pending)}):")
    for r in pending[:20]:
        err = f"; last error: {r.last_error}" if r.last_error else ""
        out.append(f"  {r.title!r} ({r.state}, due {_ago(r.not_before, now)}{err})")
    if not pending:
        out.append("  none")
    errs = store.all("SELECT at, what FROM oplog WHERE what LIKE 'infrastructure:%' OR what LIKE "
                     "'mail %' ORDER BY id DESC LIMIT ?", errors)
    out.append(f"last errors ({len(errs)}):")
    out += [f"  {_ago(r.at, now)}: {r.what}" for r in errs] or ["  none"]
    return "\n".join(out) + "\n"
