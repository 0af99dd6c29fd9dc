"""Who hears about a review, and when: muted unless a list asked.

The policy for a series is the first `[[policy.lists]]` whose `match` names an address the series
was sent To or Cc (a list, or a maintainer); otherwise `[policy]`, which is `dry-run` unless the
operator says otherwise.  What the modes send:

- `dry-run`: nothing; the mail is written to `dry_run_dir` for the operator to read;
- `author`: To the author, Cc only the policy's `cc`;
- `author+list`: To the author, Cc everyone the series went to, and the policy's `cc`.

What is never sent: a review that is incomplete (infrastructure: mmreview could not test what it
should have; the operator's log has it and it is retried), a series that did not apply when
`did_not_apply = false`, a partial series unless `incomplete = true`, anything of a thread a
listed maintainer stopped, any older version.  A reply waits out the `embargo` after the series
arrived, and an author gets at most `rate` mails an hour (the rest wait their turn).  A review
whose only errors are matrix failures already mailed `summary_after` times on its base is held
for one summary mail instead (summary.py).
"""

from __future__ import annotations

import json
import secrets
import time
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, parseaddr

from mmreview.bot.config import Config, ListPolicy, addr_spec
from mmreview.bot.store import Row, Store
from mmreview.review.model import DID_NOT_APPLY, INCOMPLETE, Review


def policy_for(cfg: Config, recipients: list[str]) -> ListPolicy:
    addrs = {a.lower() for a in recipients}
    for pol in cfg.lists:
        if addrs & set(pol.match):
            return pol
    return cfg.default_policy


def addressed(to: list[str], cc: list[str], own: str) -> tuple[list[str], list[str]]:
    """To and Cc as a mail carries them: no blank, no repeat, not the bot's own address (`own`),
    no Cc already in To."""
    to = [a for a in dict.fromkeys(to) if addr_spec(a) and addr_spec(a) != own]
    skip = {own, *map(addr_spec, to)}
    return to, [a for a in dict.fromkeys(cc) if addr_spec(a) and addr_spec(a) not in skip]


def recipients(cfg: Config, pol: ListPolicy, posting: Row) -> tuple[list[str], list[str], bool]:
    """(To, Cc, whether a list is among them) for a reply to this posting."""
    cc = list(pol.cc)
    if pol.reply == "author+list" or pol.reply == "dry-run":
        cc = [*json.loads(posting.recipients), *cc]
    to, cc = addressed([posting.author], cc, cfg.sender_address)
    to_list = bool(set(map(addr_spec, cc)) & set(pol.match)) or pol.reply == "author+list"
    return to, cc, to_list


def new_msgid(cfg: Config, posting: int, kind: str) -> str:
    domain = cfg.sender_address.rpartition("@")[2]
    return f"<mmreview-bot-{posting}-{kind}-{secrets.token_hex(4)}@{domain}>"


def _queue(store: Store, cfg: Config, pol: ListPolicy, posting: Row, kind: str, msg: EmailMessage,
           msgid: str) -> int:
    to, cc, to_list = recipients(cfg, pol, posting)
    return enqueue(store, pol, msg, msgid, kind, to, cc, posting=posting.id,
                   author=addr_spec(posting.author), to_list=to_list,
                   not_before=posting.first_seen + pol.embargo)


def enqueue(store: Store, pol: ListPolicy, msg: EmailMessage, msgid: str, kind: str, to: list[str],
            cc: list[str], posting: int, author: str, to_list: bool, not_before: float) -> int:
    """One mail into the outbox, addressed (inside the caller's transaction): its id.  The
    policy's mode says whether it is sent or written for the operator."""
    del msg["To"], msg["Cc"]
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    envelope = [a for a in dict.fromkeys(addr_spec(x) for x in [*to, *cc]) if a]
    mode = "dry-run" if pol.reply == "dry-run" else "send"
    return store.db.execute(
        "INSERT INTO outbox(posting, msgid, kind, mode, author, recipients, to_list, rate, message, "
        "state, not_before, created_at) VALUES(?,?,?,?,?,?,?,?,?, 'pending', ?, ?)",
        (posting, msgid, kind, mode, author, json.dumps(envelope), int(to_list and mode == "send"),
         pol.rate, msg.as_bytes(policy=SMTP), not_before, time.time())).lastrowid


def should_mail(pol: ListPolicy, review: Review) -> tuple[bool, str]:
    if review.verdict == INCOMPLETE:
        return False, "incomplete (infrastructure): never mailed"
    if review.verdict == DID_NOT_APPLY and not pol.did_not_apply:
        return False, "did not apply, and the policy does not answer that"
    return True, ""


def queue_review(store: Store, cfg: Config, posting: Row, review: Review, link: str | None,
                 review_id: int) -> int | None:
    """The review's mail into the outbox (inside the caller's transaction); None if the policy
    says no mail, or holds it for a summary (summary.py: 0-day's rule)."""
    from mmreview.bot import summary
    from mmreview.render.email import render_email
    pol = policy_for(cfg, json.loads(posting.recipients))
    ok, _why = should_mail(pol, review)
    if not ok:
        return None
    sigs = summary.error_signatures(review)
    if summary.should_hold(store, pol, review, sigs):
        summary.record(store, pol, posting, review, review_id, sigs, None, time.time())
        return None
    msgid = new_msgid(cfg, posting.id, "review")
    text = render_email(review, sender=cfg.sender, msgid=msgid, link=link,
                        date=formatdate(localtime=False, usegmt=True))
    from email import message_from_bytes
    # As bytes: the body is 8-bit UTF-8 (a "×" in a matrix line), kept as it is.
    msg = message_from_bytes(text.encode("utf-8"), _class=EmailMessage, policy=SMTP)
    mail = _queue(store, cfg, pol, posting, "review", msg, msgid)
    summary.record(store, pol, posting, review, review_id, sigs, mail, time.time())
    return mail


def queue_incomplete(store: Store, cfg: Config, posting: Row, head: Row | None,
                     missing: list[int]) -> int | None:
    """A short note that the series is partial, if the policy answers that."""
    pol = policy_for(cfg, json.loads(posting.recipients))
    if not pol.incomplete:
        return None
    msgid = new_msgid(cfg, posting.id, "incomplete")
    name = parseaddr(posting.author)[0].split()
    hours = cfg.grace / 3600
    lack = ", ".join(f"{n}/{posting.total}" for n in missing)
    body = (f"{'Hi ' + name[0] + ',' if name else 'Hello,'}\n\n"
            f"mmreview has not reviewed this series (v{posting.version}): after "
            f"{hours:g} hour{'s' if hours != 1 else ''} patch{'es' if len(missing) > 1 else ''} "
            f"{lack} {'have' if len(missing) > 1 else 'has'} not reached the list.\n"
            f"It will be reviewed when the rest arrives.\n\n-- \nmmreview bot\n")
    msg = EmailMessage(policy=SMTP.clone(max_line_length=998))
    msg["From"] = cfg.sender
    subject = head.subject if head is not None else posting.title
    msg["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = msgid
    if head is not None:
        msg["In-Reply-To"] = f"<{head.msgid}>"
        msg["References"] = f"<{head.msgid}>"
    msg.set_content(body, charset="utf-8", cte="8bit")
    return _queue(store, cfg, pol, posting, "incomplete", msg, msgid)
