"""The transactional outbox: pending -> sending -> sent, each step committed before the next.

A mail is `sending` (committed) before the SMTP conversation starts and `sent` (committed) after
the server's 250.  A bot killed in between finds it `sending` at start (`settle`): a mail that
went to a watched list is looked for there by its Message-ID (found: it was sent); any other
is sent again under the same Message-ID, which a list archive and most mail stores take as the
same mail.  The window in which a mail can reach a person twice is the moment between the
server's 250 and the commit after it; nothing is ever lost.

`dry-run` mails are written to the dry-run folder (one file per Message-ID, written atomically),
never sent.  An author gets at most the policy's `rate` mails an hour; the rest wait.
"""

from __future__ import annotations

import json
import smtplib
import time
from pathlib import Path

from mmreview.bot import watcher
from mmreview.bot.config import Config
from mmreview.bot.store import Row, Store
from mmreview.common.errors import InfraError

SMTP_TIMEOUT = 60
RETRY = 120.0


class Outbox:
    def __init__(self, cfg: Config, store: Store):
        self.cfg = cfg
        self.store = store

    def settle(self) -> None:
        """Mails a killed bot left `sending`: sent, or pending again (same Message-ID)."""
        for row in self.store.all("SELECT * FROM outbox WHERE state='sending'"):
            found = self._on_a_list(row) if row.to_list else None
            with self.store.tx() as db:
                if found:
                    db.execute("UPDATE outbox SET state='sent', sent_at=? WHERE id=?", (time.time(), row.id))
                    self.store.oplog(f"mail {row.msgid} was being sent when the bot stopped: "
                                     f"it is on {found}, so it went", row.posting)
                else:
                    db.execute("UPDATE outbox SET state='pending' WHERE id=?", (row.id,))
                    self.store.oplog(f"mail {row.msgid} was being sent when the bot stopped: not "
                                     f"found sent, sending it again under the same Message-ID",
                                     row.posting)

    def _on_a_list(self, row: Row) -> str | None:
        msgid = row.msgid.strip("<>")
        for inbox in self.cfg.inboxes:
            try:
                if watcher.fetch_message(inbox, msgid) is not None:
                    return inbox.name
            except InfraError:
                continue
        return None

    def send_due(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        done = 0
        for row in self.store.all("SELECT * FROM outbox WHERE state='pending' AND not_before<=? "
                                  "ORDER BY not_before, id", now):
            wait = self._rate_wait(row, now)
            if wait:
                self.store.db.execute("UPDATE outbox SET not_before=? WHERE id=?", (wait, row.id))
                continue
            if row.mode == "dry-run":
                self._write(row)
            elif not self._send(row):
                continue
            done += 1
        return done

    def _rate_wait(self, row: Row, now: float) -> float | None:
        """When this author may next get a mail, if not now (None)."""
        if row.mode == "dry-run":
            return None
        times = [r.sent_at for r in self.store.all(
            "SELECT sent_at FROM outbox WHERE author=? AND state IN ('sent', 'sending') AND "
            "mode='send' AND sent_at>? ORDER BY sent_at", row.author, now - 3600)]
        if len(times) < row.rate:
            return None
        return times[len(times) - row.rate] + 3600

    def _write(self, row: Row) -> None:
        d = self.cfg.dry_run_dir
        d.mkdir(parents=True, exist_ok=True)
        name = row.msgid.strip("<>").replace("/", "_") + ".eml"
        tmp = d / (name + ".tmp")
        tmp.write_bytes(bytes(row.message))
        tmp.replace(d / name)
        with self.store.tx() as db:
            db.execute("UPDATE outbox SET state='written', sent_at=? WHERE id=?", (time.time(), row.id))

    def _send(self, row: Row) -> bool:
        with self.store.tx() as db:
            took = db.execute("UPDATE outbox SET state='sending', attempts=attempts+1, sent_at=? "
                              "WHERE id=? AND state='pending'", (time.time(), row.id)).rowcount
        if not took:
            return False
        try:
            cfg = self.cfg
            with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=SMTP_TIMEOUT) as smtp:
                if cfg.smtp_starttls:
                    smtp.starttls()
                if cfg.smtp_user:
                    smtp.login(cfg.smtp_user, cfg.smtp_password or "")
                refused = smtp.sendmail(cfg.sender_address, json.loads(row.recipients), bytes(row.message))
        except (smtplib.SMTPException, OSError) as exc:
            with self.store.tx() as db:
                db.execute("UPDATE outbox SET state='pending', not_before=?, last_error=? WHERE id=?",
                           (time.time() + RETRY * row.attempts, f"{type(exc).__name__}: {exc}", row.id))
                self.store.oplog(f"mail {row.msgid}: SMTP {cfg.smtp_host}:{cfg.smtp_port} failed "
                                 f"({type(exc).__name__}: {exc}); retried", row.posting)
            return False
        with self.store.tx() as db:
            db.execute("UPDATE outbox SET state='sent', sent_at=?, last_error=? WHERE id=?",
                       (time.time(), json.dumps(refused) if refused else None, row.id))
        return True

    def mark_seen_on_list(self, msgid: str) -> None:
        """The bot's own mail came back from a list: it was sent, whatever the row says."""
        self.store.db.execute("UPDATE outbox SET state='sent', sent_at=coalesce(sent_at, ?) "
                              "WHERE msgid=? AND state IN ('sending', 'pending')",
                              (time.time(), f"<{msgid.strip('<>')}>"))


def dry_run_files(d: Path) -> list[Path]:
    return sorted(d.glob("*.eml")) if d.is_dir() else []
