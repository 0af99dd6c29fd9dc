"""From messages to series worth reviewing: complete, newest, not seen before, not stopped.

- Each message is classified once, as it is stored: a patch ([PATCH m/n] with a diff), a cover
  letter (0/n), a reply (Re:, or talk without a diff), a stop (a reply with the marker line), or
  bot mail (the bot's own, other bots', anything carrying X-Mmreview-Verdict).  Subjects are read
  with b4's LoreSubject, as intake does.
- A posting is one version as sent: the patches threaded under one cover letter (or patch 1),
  of one version.
- Versions of one series are linked by b4's rules: the `change-id:` line, else the sender and
  the subject.  The newest version supersedes every older one that is not answered yet.
- A posting is complete when it has patches 1..n; it is then read by mmreview's intake (the same
  `load_series` every command uses), and its diffs hashed: a resend with the same content is a
  duplicate, not a new series.  One still partial after the grace period is told to the policy.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import b4

from mmreview.bot.config import Config, addr_spec
from mmreview.bot.store import Store
from mmreview.common.errors import MmreviewError
from mmreview.intake.diffs import has_diff
from mmreview.intake.mail import BadMail, NotMail, parse_message

STOP_MARKER = re.compile(r"^[ \t]*mmreview-bot:[ \t]*stop[ \t]*$", re.I | re.M)
_CHANGE_ID = re.compile(r"^change-id:\s*(\S+)\s*$", re.M)
OPEN = ("collecting", "queued", "running")


def classify(raw: bytes, inbox: str, cfg: Config, store: Store, now: float) -> dict | None:
    """What the store keeps of one message; None for what is not mail or has no Message-ID."""
    try:
        m = parse_message(raw)
    except (NotMail, BadMail):
        return None
    if not m.message_id:
        return None
    sender = addr_spec(m.from_)
    ls = b4.LoreSubject(m.subject)
    refs = list(dict.fromkeys([*m.references, *([m.in_reply_to] if m.in_reply_to else [])]))
    try:
        sent = parsedate_to_datetime(m.date).timestamp()
    except (TypeError, ValueError, IndexError):
        sent = now
    row = {"msgid": m.message_id, "inbox": inbox, "seen_at": now, "sent": sent, "subject": m.subject,
           "sender": sender, "in_reply_to": m.in_reply_to, "refs": refs, "raw": raw}
    own = store.value("SELECT 1 FROM outbox WHERE msgid=?", f"<{m.message_id}>")
    if (sender == cfg.sender_address or sender in cfg.other_bots or own
            or m.msg.get("X-Mmreview-Verdict") is not None):
        return {**row, "kind": "bot"}
    if ls.reply or m.subject.lower().startswith(("re:", "aw:", "fwd:", "fw:")) or not has_diff(m.body):
        numbered = not ls.counters_inferred
        if numbered and ls.counter == 0 and not ls.reply:
            return {**row, "kind": "cover", "version": ls.revision, "number": 0,
                    "total": ls.expected}
        kind = "stop" if STOP_MARKER.search(m.body) else "reply"
        return {**row, "kind": kind}
    number, total = (ls.counter, ls.expected) if not ls.counters_inferred else (1, 1)
    return {**row, "kind": "patch", "version": ls.revision, "number": number, "total": total}


@dataclass
class Event:
    kind: str            # "incomplete" (missing: the patches) | "cancel" (a running review)
    posting: int
    missing: list[int] | None = None


class Assembler:
    def __init__(self, cfg: Config, store: Store, series_dir: Path):
        self.cfg = cfg
        self.store = store
        self.series_dir = series_dir

    def step(self, now: float | None = None) -> list[Event]:
        now = time.time() if now is None else now
        events: list[Event] = []
        with self.store.tx():
            self._group(now)
            self._complete(now, events)
            self._supersede(events)
            self._stops(events)
        return events

    # ------------------------------------------------------------ postings

    def _root(self, msg, depth: int = 0) -> str:
        if msg.kind == "cover" or not msg.in_reply_to:
            return msg.msgid
        parent = self.store.one("SELECT * FROM messages WHERE msgid=?", msg.in_reply_to)
        if parent is None:
            # Patch k/n under a message not here yet: its cover letter, which will have this id.
            # A lone patch answering some other thread is a posting of its own.
            return msg.msgid if msg.total == 1 else msg.in_reply_to
        # Not the sender: a maintainer may send a series whose patches have other authors.
        if parent.kind in ("patch", "cover") and parent.version == msg.version and depth < 50:
            return self._root(parent, depth + 1)
        return msg.msgid

    def _group(self, now: float) -> None:
        for msg in self.store.all("SELECT * FROM messages WHERE posting IS NULL AND kind IN "
                                  "('patch', 'cover') ORDER BY seen_at, rowid"):
            root = f"{self._root(msg)} v{msg.version}"
            pid = self.store.value("SELECT id FROM postings WHERE root=?", root)
            if pid is None:
                pid = self.store.db.execute(
                    "INSERT INTO postings(root, lineage, version, total, author, title, recipients, "
                    "first_seen, state) VALUES(?, '', ?, ?, ?, '', '[]', ?, 'collecting')",
                    (root, msg.version, msg.total, msg.sender, now)).lastrowid
            self.store.db.execute("UPDATE messages SET posting=? WHERE msgid=?", (pid, msg.msgid))
            self._describe(pid)

    def _describe(self, pid: int) -> None:
        """Lineage, title, total and recipients from what the posting has so far."""
        msgs = self.store.all("SELECT * FROM messages WHERE posting=? ORDER BY number, seen_at", pid)
        head = next((m for m in msgs if m.kind == "cover"), None) or msgs[0]
        mail = parse_message(head.raw)
        ls = b4.LoreSubject(mail.subject)
        change = None
        for m in msgs:
            found = _CHANGE_ID.search(parse_message(m.raw).body)
            if found:
                change = found.group(1)
                break
        lineage = (f"change-id {change}" if change else
                   f"{head.sender} {' '.join(ls.subject.lower().split())}")
        total = max(m.total or 1 for m in msgs)
        recipients = list(dict.fromkeys(addr_spec(a) for a in mail.to + mail.cc if addr_spec(a)))
        self.store.db.execute("UPDATE postings SET lineage=?, title=?, total=?, recipients=?, "
                              "author=? WHERE id=?",
                              (lineage, ls.subject, total, json.dumps(recipients), mail.from_, pid))

    def _complete(self, now: float, events: list[Event]) -> None:
        for p in self.store.all("SELECT * FROM postings WHERE state='collecting'"):
            msgs = self.store.all("SELECT * FROM messages WHERE posting=? AND kind='patch' "
                                  "ORDER BY number, seen_at", p.id)
            have = {m.number for m in msgs}
            missing = [n for n in range(1, p.total + 1) if n not in have]
            if missing:
                if now - p.first_seen >= self.cfg.grace and not p.told_incomplete:
                    self.store.db.execute("UPDATE postings SET told_incomplete=1 WHERE id=?", (p.id,))
                    self.store.oplog(f"series {p.id} ({p.title}) incomplete after the grace "
                                     f"period: missing {', '.join(f'{n}/{p.total}' for n in missing)}",
                                     p.id)
                    events.append(Event("incomplete", p.id, missing))
                continue
            path = self.mbox(p.id)
            try:
                from mmreview.intake.read import load_series
                series = load_series(str(path))
            except MmreviewError as exc:
                self.store.db.execute("UPDATE postings SET state='bad-input', note=? WHERE id=?",
                                      (exc.reason, p.id))
                self.store.oplog(f"series {p.id} ({p.title}) is not a series mmreview reads: "
                                 f"{exc.reason}", p.id)
                continue
            content = hashlib.sha256("\0".join(pt.diff for pt in series.patches).encode()).hexdigest()
            twin = self.store.value("SELECT id FROM postings WHERE content=? AND id<>? AND state NOT IN "
                                    "('bad-input') LIMIT 1", content, p.id)
            if twin is not None:
                self.store.db.execute("UPDATE postings SET state='duplicate', content=?, note=? "
                                      "WHERE id=?", (content, f"the same patches as series {twin}", p.id))
                continue
            self.store.db.execute("UPDATE postings SET state='queued', content=? WHERE id=?",
                                  (content, p.id))

    def mbox(self, pid: int) -> Path:
        """The posting as one mbox: the cover letter, then each patch once, in order."""
        msgs = self.store.all("SELECT * FROM messages WHERE posting=? ORDER BY number, seen_at", pid)
        seen: set[int] = set()
        out = []
        for m in msgs:
            if m.number in seen:
                continue
            seen.add(m.number)
            raw = bytes(m.raw).replace(b"\r\n", b"\n")
            raw = re.sub(rb"^(>*From )", rb">\1", raw, flags=re.M)     # mboxrd
            out.append(b"From mboxrd@z Thu Jan  1 00:00:00 1970\n" + raw.rstrip(b"\n") + b"\n\n")
        self.series_dir.mkdir(parents=True, exist_ok=True)
        path = self.series_dir / f"{pid}.mbox"
        path.write_bytes(b"".join(out))
        return path

    def _supersede(self, events: list[Event]) -> None:
        rows = self.store.all("SELECT id, lineage, version, state FROM postings WHERE state NOT IN "
                              "('duplicate', 'bad-input')")
        newest: dict[str, int] = {}
        for r in rows:
            newest[r.lineage] = max(newest.get(r.lineage, 0), r.version)
        for r in rows:
            if r.version < newest[r.lineage] and r.state in OPEN:
                note = f"superseded by v{newest[r.lineage]}"
                self._close(r.id, r.state, "superseded", note, events)

    def _close(self, pid: int, state: str, new: str, note: str, events: list[Event]) -> None:
        self.store.db.execute("UPDATE postings SET state=?, note=? WHERE id=?", (new, note, pid))
        self.store.db.execute("UPDATE outbox SET state='cancelled', last_error=? WHERE posting=? "
                              "AND state='pending'", (note, pid))
        if state == "running":
            events.append(Event("cancel", pid))

    def _stops(self, events: list[Event]) -> None:
        from mmreview.bot.policy import policy_for
        for s in self.store.all("SELECT * FROM messages WHERE kind='stop' AND posting IS NULL"):
            refs = json.loads(s.refs)
            marks = ",".join("?" * len(refs)) or "''"
            target = self.store.one(f"SELECT p.* FROM messages m JOIN postings p ON p.id=m.posting "
                                    f"WHERE m.msgid IN ({marks}) AND m.kind IN ('patch', 'cover') "
                                    f"ORDER BY p.version DESC LIMIT 1", *refs)
            if target is None:
                continue                 # its thread is not here (yet)
            pol = policy_for(self.cfg, json.loads(target.recipients))
            if s.sender not in pol.stop_from:
                self.store.db.execute("UPDATE messages SET posting=-1 WHERE msgid=?", (s.msgid,))
                self.store.oplog(f"stop from {s.sender} on series {target.id} ignored: not an "
                                 f"address the policy lists", target.id)
                continue
            self.store.db.execute("UPDATE messages SET posting=? WHERE msgid=?", (target.id, s.msgid))
            self._close(target.id, target.state, "stopped", f"stopped by {s.sender}", events)
            self.store.oplog(f"series {target.id} ({target.title}) stopped by {s.sender}", target.id)
