"""The bot's state: one SQLite file (WAL), everything a restart needs.

One row per Message-ID seen, one per posting of a series (a version as it was sent), one per
review attempt, one per outgoing mail.  Every state change is one short transaction, so a
`kill -9` at any instant leaves the file at a state boundary:

- a review that was running when the bot died is found as `running` at start and queued again
  (reviewed twice only because it was interrupted);
- a review held for a summary (0-day's rule, summary.py) is a `held` row written with the
  review; its summary's outbox row and the `held` rows naming it are one transaction;
- an outgoing mail moves pending -> sending (committed before the SMTP conversation starts) ->
  sent (committed after the server's 250).  A mail found `sending` at start is looked for
  (Outbox.settle) before it is sent again, under the same Message-ID.

The writer is one bot process (BotLock); `mmreview bot status` reads alongside it (WAL).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from mmreview.common.errors import InfraError

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    msgid       TEXT PRIMARY KEY,
    inbox       TEXT NOT NULL,
    seen_at     REAL NOT NULL,
    kind        TEXT NOT NULL,          -- patch | cover | reply | stop | bot | other
    subject     TEXT NOT NULL,
    sender      TEXT NOT NULL,          -- the address only, lower case
    in_reply_to TEXT,
    refs        TEXT NOT NULL,          -- JSON list of Message-IDs (References + In-Reply-To)
    version     INTEGER,
    number      INTEGER,
    total       INTEGER,
    posting     INTEGER,                -- postings.id once assembled
    raw         BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_posting ON messages(posting);
CREATE TABLE IF NOT EXISTS postings (
    id          INTEGER PRIMARY KEY,
    root        TEXT UNIQUE NOT NULL,   -- the Message-ID the posting's patches thread under
    lineage     TEXT NOT NULL,          -- change-id, else sender + subject (b4's rules)
    version     INTEGER NOT NULL,
    total       INTEGER NOT NULL,
    author      TEXT NOT NULL,
    title       TEXT NOT NULL,
    recipients  TEXT NOT NULL,          -- JSON list: the To and Cc the series went to
    first_seen  REAL NOT NULL,
    content     TEXT,                   -- hash of the diffs, once complete (a resend has the same)
    state       TEXT NOT NULL,          -- collecting | queued | running | reviewed | incomplete
                                        -- | superseded | duplicate | stopped | bad-input | failed
    note        TEXT NOT NULL DEFAULT '',
    attempts    INTEGER NOT NULL DEFAULT 0,
    retry_at    REAL NOT NULL DEFAULT 0,
    told_incomplete INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS postings_lineage ON postings(lineage);
CREATE TABLE IF NOT EXISTS reviews (
    id          INTEGER PRIMARY KEY,
    posting     INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    state       TEXT NOT NULL,          -- running | done | interrupted | infra | bad-input | cancelled
    pid         INTEGER,
    exit_code   INTEGER,
    verdict     TEXT,
    summary     TEXT,
    base        TEXT,                   -- what the review was based on, in words
    review_json TEXT,
    error       TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY,
    posting     INTEGER NOT NULL,
    msgid       TEXT UNIQUE NOT NULL,
    kind        TEXT NOT NULL,          -- review | incomplete | summary (posting 0)
    mode        TEXT NOT NULL,          -- send | dry-run
    author      TEXT NOT NULL,
    recipients  TEXT NOT NULL,          -- JSON list of envelope recipients
    to_list     INTEGER NOT NULL DEFAULT 0,
    rate        INTEGER NOT NULL DEFAULT 4,   -- the policy's mails per author per hour
    message     BLOB NOT NULL,
    state       TEXT NOT NULL,          -- pending | sending | sent | cancelled | written
    not_before  REAL NOT NULL,
    created_at  REAL NOT NULL,
    sent_at     REAL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT
);
CREATE TABLE IF NOT EXISTS errors (     -- a done review's matrix new failures (summary.py)
    review      INTEGER NOT NULL,
    posting     INTEGER NOT NULL,
    base        TEXT NOT NULL,          -- the commit the review applied on
    policy      TEXT NOT NULL,          -- the list policy (its match addresses)
    signature   TEXT NOT NULL,
    mail        INTEGER,                -- outbox.id of the review's own mail; NULL: held
    PRIMARY KEY (review, signature)
);
CREATE INDEX IF NOT EXISTS errors_count ON errors(base, policy, signature);
CREATE TABLE IF NOT EXISTS held (       -- reviews waiting for a summary instead of their own mail
    review      INTEGER PRIMARY KEY,
    posting     INTEGER NOT NULL,
    base        TEXT NOT NULL,
    policy      TEXT NOT NULL,
    held_at     REAL NOT NULL,
    due         REAL NOT NULL,          -- when its summary leaves: the first held + summary_wait
    summary     INTEGER                 -- outbox.id of its summary; NULL: waiting; 0: dropped
);
CREATE TABLE IF NOT EXISTS cursors (
    inbox       TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS oplog (
    id          INTEGER PRIMARY KEY,
    at          REAL NOT NULL,
    posting     INTEGER,
    what        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS facts (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);
"""


@dataclass
class Row:
    """A row as attributes (sqlite3.Row by name, without the brackets)."""
    _r: sqlite3.Row

    def __getattr__(self, name: str) -> Any:
        try:
            return self._r[name]
        except (IndexError, KeyError):
            raise AttributeError(name) from None


class Store:
    def __init__(self, path: Path, readonly: bool = False):
        self.path = Path(path)
        if readonly:
            if not self.path.exists():
                raise InfraError(str(path), "no bot state file here (has the bot run?)")
            uri = f"file:{self.path}?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before the next step (an SMTP send) starts.
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        self.db.row_factory = sqlite3.Row

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction: all of the block or none of it."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def one(self, sql: str, *args) -> Row | None:
        r = self.db.execute(sql, args).fetchone()
        return Row(r) if r is not None else None

    def all(self, sql: str, *args) -> list[Row]:
        return [Row(r) for r in self.db.execute(sql, args).fetchall()]

    def value(self, sql: str, *args) -> Any:
        r = self.db.execute(sql, args).fetchone()
        return r[0] if r is not None else None

    # ------------------------------------------------------------ start-up

    def recover(self) -> dict[str, int]:
        """After a crash: reviews that were running are interrupted and their series queued
        again; mails caught mid-send are marked for a check before any resend."""
        now = time.time()
        with self.tx() as db:
            running = db.execute("UPDATE reviews SET state='interrupted', finished_at=? "
                                 "WHERE state='running'", (now,)).rowcount
            db.execute("UPDATE postings SET state='queued' WHERE state='running'")
            sending = db.execute("SELECT count(*) FROM outbox WHERE state='sending'").fetchone()[0]
        return {"interrupted_reviews": running, "mails_in_doubt": sending}

    # ------------------------------------------------------------ small things

    def cursor(self, inbox: str) -> str | None:
        return self.value("SELECT value FROM cursors WHERE inbox=?", inbox)

    def set_cursor(self, inbox: str, value: str) -> None:
        self.db.execute("INSERT INTO cursors(inbox, value) VALUES(?, ?) ON CONFLICT(inbox) "
                        "DO UPDATE SET value=excluded.value", (inbox, value))

    def fact(self, name: str) -> str | None:
        return self.value("SELECT value FROM facts WHERE name=?", name)

    def set_fact(self, name: str, value: str) -> None:
        self.db.execute("INSERT INTO facts(name, value) VALUES(?, ?) ON CONFLICT(name) "
                        "DO UPDATE SET value=excluded.value", (name, value))

    def oplog(self, what: str, posting: int | None = None) -> None:
        self.db.execute("INSERT INTO oplog(at, posting, what) VALUES(?, ?, ?)",
                        (time.time(), posting, what))

    def has_message(self, msgid: str) -> bool:
        return self.value("SELECT 1 FROM messages WHERE msgid=?", msgid) is not None

    def add_message(self, m: dict) -> bool:
        """Insert a message seen for the first time; False if its Message-ID is known."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO messages(msgid, inbox, seen_at, kind, subject, sender, "
            "in_reply_to, refs, version, number, total, raw) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
            (m["msgid"], m["inbox"], m["seen_at"], m["kind"], m["subject"], m["sender"],
             m["in_reply_to"], json.dumps(m["refs"]), m.get("version"), m.get("number"),
             m.get("total"), m["raw"]))
        return cur.rowcount == 1


class BotLock:
    """One bot per state file: a second `mmreview bot` on the same state refuses to start."""

    def __init__(self, state: Path):
        self.path = Path(str(state) + ".lock")
        self.fh = None

    def __enter__(self) -> "BotLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.close()
            raise InfraError(str(self.path), "another mmreview bot runs on this state file") from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(f"{os.getpid()}\n")
        self.fh.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self.fh:
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()
