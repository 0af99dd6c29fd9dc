"""0-day's rule: after `summary_after` series were mailed for one error, the rest wait for ONE mail.

Fengguang Wu (0-day, LKML 2016-10-31): "when we find >= 3 errors in a tree, only the first 2 will
be reported in the regular way ... The more errors will be sent in a summary 'BUILD REGRESSION'
email listing all the triggered errors": a broken tree does not flood the list with the same
report, and no distinct error is hidden.

Here an *error* is a matrix new failure of a review (the kind that can be the base's or the test
machine's, not the author's), known by its signature: target, suite/binary and its first failing
line without paths, line numbers, addresses or pids.  Rule findings and a series that did not
apply are the series' own: always mailed in its thread, never held.

Counted per base (the commit the review applied on) and per list policy, not per time window:
a broken head fails every series on it the same way until the head moves, and a window would
both split one broken head's series and join two heads'.  A review whose new failures are ALL
signatures already mailed `summary_after` times on its base is *held* (a row in `held`, in the
transaction that records the review: store.py).  The reviews held under one policy and base
leave as one mail `summary_wait` after the first was held (a fixed delay, not the next fetch:
the branch may not move for days, and a delay bounds how late the authors hear).  The summary
goes through the outbox like any mail, and its row and the held reviews' link to it are one
transaction: a kill at any moment leaves each held review either waiting or in exactly one
summary, never also mailed in its thread.  A held series superseded or stopped before its summary
leaves is dropped from it.

The summary lists, per error, the held series (answered by it) and the series already answered
in their threads (so the reader sees how far the error reaches).
"""

from __future__ import annotations

import json
import os
import re
import textwrap
import time
from collections import defaultdict
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate

from mmreview.bot.config import Config, ListPolicy, addr_spec
from mmreview.bot.store import Row, Store
from mmreview.matrix.parse import build_error_line
from mmreview.matrix.results import BUILD_FAILED, TIMEOUT, Cell
from mmreview.review.model import REGRESSIONS, Review

WIDTH = 72
DROPPED = 0                      # held.summary of a series superseded/stopped while held
_PATH = re.compile(r"(?<![\w<])(?:\.{0,2}/|[\w.+-]+/)(?:[\w.+-]*/)*(?=[\w.+-])")
_POS = re.compile(r":\d+(?::\d+)?\b")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_PID = re.compile(r"==\d+==|\b(pid|PID|line) \d+")
_FAILING_LINE = re.compile(r"BUG at |Assertion [`'].*failed|ERROR: \w*Sanitizer|runtime error:|^FAIL: "
                           r"|\bkernel BUG\b|\berror\b|undefined reference")


def normalise(line: str) -> str:
    """A failing line as any machine and any base-relative shift prints it: directories dropped
    (file names kept), line:column, addresses and pids blanked, white space folded."""
    line = _PATH.sub("", line)
    line = _POS.sub("", line)
    line = _HEX.sub("0x", line)
    line = _PID.sub(lambda m: "==PID==" if m.group(0).startswith("==") else f"{m.group(1)} N", line)
    return " ".join(line.split())[:300]


def first_failing_line(cell: Cell) -> str:
    r = cell.tip
    if r.state == TIMEOUT:
        return ""
    if r.state == BUILD_FAILED:
        return build_error_line(r.excerpt) or r.reason
    return next((l for l in r.excerpt if _FAILING_LINE.search(l)), r.reason or (r.excerpt or [""])[0])


def cell_signature(cell: Cell) -> str:
    line = normalise(first_failing_line(cell))
    what = f"{cell.tip.state}: {line}" if line else cell.tip.state
    return f"{cell.target} {cell.suite}/{cell.binary}: {what}"


def error_signatures(review: Review) -> list[str]:
    """The review's new failures as signatures (distinct, in the matrix's order)."""
    return list(dict.fromkeys(cell_signature(c) for c in review.new_failures()))


def policy_key(pol: ListPolicy) -> str:
    return ",".join(pol.match) or "default"


def _policy_of(cfg: Config, key: str) -> ListPolicy:
    return next((p for p in cfg.lists if policy_key(p) == key), cfg.default_policy)


def mailed_count(store: Store, base: str, pol_key: str, sig: str) -> int:
    """Series mailed in their own thread for this error on this base (a cancelled mail is not)."""
    return store.value("SELECT count(DISTINCT e.posting) FROM errors e JOIN outbox o ON o.id=e.mail "
                       "WHERE e.base=? AND e.policy=? AND e.signature=? AND o.state!='cancelled'",
                       base, pol_key, sig)


def should_hold(store: Store, pol: ListPolicy, review: Review, sigs: list[str]) -> bool:
    if not pol.summary_after or review.verdict != REGRESSIONS or not sigs:
        return False
    if any(f.severity != "info" for f in review.findings) or review.per_patch:
        return False                   # the series' own findings: its thread
    base, key = review.tree.base_sha, policy_key(pol)
    return all(mailed_count(store, base, key, s) >= pol.summary_after for s in sigs)


def record(store: Store, pol: ListPolicy, posting: Row, review: Review, review_id: int,
           sigs: list[str], mail: int | None, now: float) -> None:
    """The review's errors, and whether its mail went (`mail`) or it is held (None); inside the
    caller's transaction (the one that records the review)."""
    base, key = review.tree.base_sha, policy_key(pol)
    for s in sigs:
        store.db.execute("INSERT OR REPLACE INTO errors(review, posting, base, policy, signature, mail) "
                         "VALUES(?,?,?,?,?,?)", (review_id, posting.id, base, key, s, mail))
    if mail is None:
        due = store.value("SELECT min(due) FROM held WHERE base=? AND policy=? AND summary IS NULL",
                          base, key) or now + pol.summary_wait
        store.db.execute("INSERT OR REPLACE INTO held(review, posting, base, policy, held_at, due) "
                         "VALUES(?,?,?,?,?,?)", (review_id, posting.id, base, key, now, due))
        store.oplog(f"series {posting.id} ({posting.title}): held for a summary: "
                    f"{len(sigs)} error(s) already mailed {pol.summary_after} time(s) on "
                    f"{base[:12]}", posting.id)


# ---------------------------------------------------------------- the summary mail

def queue_due(store: Store, cfg: Config, now: float | None = None) -> list[int]:
    """Summaries whose wait is over, into the outbox (one transaction each); their outbox ids."""
    now = time.time() if now is None else now
    out = []
    for g in store.all("SELECT base, policy FROM held WHERE summary IS NULL GROUP BY base, policy "
                       "HAVING min(due)<=?", now):
        pol = _policy_of(cfg, g.policy)
        with store.tx():
            mid = _queue_group(store, cfg, pol, g.base, g.policy, now)
        if mid:
            out.append(mid)
    return out


def _command(store: Store, review_id: int, sig: str) -> str:
    """The command that reproduces this error, from the held review's cell (tree-relative)."""
    text = store.value("SELECT review_json FROM reviews WHERE id=?", review_id)
    if not text:
        return ""
    review = Review.loads(text, f"review {review_id}")
    return next((c.tip.command for c in review.new_failures() if cell_signature(c) == sig), "")


def _links(cfg: Config, store: Store, posting: int, review: int) -> list[str]:
    from mmreview.bot.site import review_url, thread_link
    links = []
    thread = thread_link(cfg, store, posting)
    if thread:
        links.append(thread)
    if cfg.site_url:
        links.append(review_url(cfg, review))
    return links


def _queue_group(store: Store, cfg: Config, pol: ListPolicy, base: str, key: str, now: float) -> int | None:
    rows = store.all("SELECT h.review, h.posting, p.state, p.title, p.author, p.recipients, p.first_seen "
                     "FROM held h JOIN postings p ON p.id=h.posting WHERE h.base=? AND h.policy=? "
                     "AND h.summary IS NULL ORDER BY h.held_at, h.review", base, key)
    live = [r for r in rows if r.state == "reviewed"]
    for r in rows:
        if r.state != "reviewed":
            store.db.execute("UPDATE held SET summary=? WHERE review=?", (DROPPED, r.review))
            store.oplog(f"series {r.posting} ({r.title}): {r.state} while held: not in the summary",
                        r.posting)
    if not live:
        return None
    from mmreview.bot.policy import addressed, enqueue, new_msgid
    held_ids = [r.review for r in live]
    marks = ",".join("?" * len(held_ids))
    errors: dict[str, list[int]] = defaultdict(list)          # signature -> held reviews
    for e in store.all(f"SELECT review, signature FROM errors WHERE review IN ({marks}) ORDER BY rowid",
                       *held_ids):
        errors[e.signature].append(e.review)
    by_review = {r.review: r for r in live}
    n_series, n_err = len(live), len(errors)
    branch, head = cfg.tree_branch, base[:12]
    subject = (f"[mmreview] BUILD REGRESSION {branch} {head}: {n_series} series, "
               f"{n_err} error{'s' if n_err != 1 else ''}")
    intro = (f"mmreview reviewed {n_series} series on {branch} at {head} whose only new "
             f"failures had each been reported for at least {pol.summary_after} other series on "
             f"the same base already.  Failures that repeat across unrelated series are likely "
             f"the base's or the test machine's rather than one author's, so instead of a reply "
             f"each they are listed here once (0-day's rule); the first reports went to their "
             f"own threads.")
    body = [*textwrap.wrap(intro, WIDTH), ""]
    for i, (sig, reviews) in enumerate(errors.items(), 1):
        body += [f"Error {i}/{n_err}:", f"    {sig}"]
        command = _command(store, reviews[0], sig)
        if command:
            body += [f"  To reproduce (in a kernel tree at {head} with the series applied):",
                     f"    {command}"]
        body += ["", "  Held, answered by this mail:"]
        for rid in reviews:
            r = by_review[rid]
            body.append(f"    {r.title}")
            body.append(f"      by {r.author}")
            body += [f"      {link}" for link in _links(cfg, store, r.posting, rid)]
        before = store.all("SELECT DISTINCT e.posting, e.review, p.title, p.author FROM errors e "
                           "JOIN outbox o ON o.id=e.mail JOIN postings p ON p.id=e.posting WHERE "
                           "e.base=? AND e.policy=? AND e.signature=? AND o.state!='cancelled' "
                           "ORDER BY e.review", base, key, sig)
        if before:
            body.append("  Already answered in their threads:")
            for b in before:
                body.append(f"    {b.title}")
                body.append(f"      by {b.author}")
                body += [f"      {link}" for link in _links(cfg, store, b.posting, b.review)]
        body.append("")
    body += textwrap.wrap("A series with findings of its own, or a failure not listed here, is "
                          "always answered in its own thread.", WIDTH)
    body += ["", "-- ", "mmreview bot"]
    text = "\n".join(body) + "\n"
    from mmreview.common.textsafe import host_paths_hidden
    from mmreview.kernel.trees import cache_dir
    text = host_paths_hidden(text, {"<tree>": str(cfg.tree_path or ""), "<cache>": str(cache_dir()),
                                    "<home>": os.path.expanduser("~"),
                                    "<state>": str(cfg.state.parent)})

    authors = list(dict.fromkeys(r.author for r in live))
    if pol.reply == "author":
        to, cc = authors, list(pol.cc)
    else:        # author+list; dry-run writes what author+list would send
        sent_to = list(dict.fromkeys(addr_spec(a) for r in live for a in json.loads(r.recipients)))
        lists = [m for m in pol.match if m in sent_to] or list(pol.match) or sent_to
        to, cc = lists, [*authors, *pol.cc]
    to, cc = addressed(to, cc, cfg.sender_address)
    msgid = new_msgid(cfg, 0, "summary")
    msg = EmailMessage(policy=SMTP.clone(max_line_length=998))
    msg["From"] = cfg.sender
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = msgid
    msg["X-Mmreview-Summary"] = subject.rpartition(": ")[2]
    msg.set_content(text, charset="utf-8", cte="8bit")
    not_before = max([now, *(r.first_seen + pol.embargo for r in live)])
    mid = enqueue(store, pol, msg, msgid, "summary", to, cc, posting=0, author="",
                  to_list=bool(set(map(addr_spec, to)) & set(pol.match)), not_before=not_before)
    store.db.execute(f"UPDATE held SET summary=? WHERE review IN ({marks})", (mid, *held_ids))
    store.oplog(f"summary {msgid}: {n_series} held series, {n_err} error(s) on {branch} {head}")
    return mid
