"""The bot's loop: fetch the tree, poll the inboxes, assemble, review, mail, publish.

Each step commits what it did before the next starts, so the loop can be killed anywhere and
started again (store.py says how each state recovers).  `run(once=True)` is for cron: one poll,
then every complete series reviewed and every due mail sent, then exit.

The operator's log is the store's `oplog` table and, line by line, `<state>.log` beside it.
"""

from __future__ import annotations

import signal
import time

from mmreview.bot import summary, watcher
from mmreview.bot.assembler import Assembler, classify
from mmreview.bot.config import Config
from mmreview.bot.outbox import Outbox
from mmreview.bot.policy import queue_incomplete, queue_review
from mmreview.bot.runner import KernelTree, Runner
from mmreview.bot.store import BotLock, Store
from mmreview.common.errors import InfraError

TICK = 1.0       # seconds between checks on running reviews
ASSEMBLE = 10.0  # seconds between assembler passes when no new mail came (grace periods, stops)


class Bot:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.work = cfg.state.parent / (cfg.state.stem + ".d")
        self.store = Store(cfg.state)
        self.tree = KernelTree(cfg, self.store)
        self.assembler = Assembler(cfg, self.store, self.work / "series")
        self.runner = Runner(cfg, self.store, self.work, self.tree)
        self.outbox = Outbox(cfg, self.store)
        self.log_path = cfg.state.with_suffix(".log")
        # The log file has every oplog row up to `log_flushed`: lines committed just before a
        # kill reach it after the restart.  The fact is written before the first line can be,
        # so a missing one means a state file from before it (logged from now on), never a
        # first run killed before its first flush.
        flushed = self.store.fact("log_flushed")
        if flushed is None:
            with self.store.tx():
                flushed = str(self.store.value("SELECT max(id) FROM oplog") or 0)
                self.store.set_fact("log_flushed", flushed)
        self._logged = int(flushed)
        self._stop = False
        self.site_dirty = True
        self._assembled = 0.0

    # ------------------------------------------------------------ one pass

    def poll(self, now: float) -> int:
        new = 0
        for inbox in self.cfg.inboxes:
            try:
                raws = list(watcher.poll(inbox, self.store))
            except InfraError as exc:
                self.store.oplog(f"infrastructure: {exc}")
                continue
            rows = [r for r in (classify(raw, inbox.name, self.cfg, self.store, now) for raw in raws) if r]
            # In the order they were sent (a search answers newest first): a resend comes after
            # what it resends.
            rows.sort(key=lambda r: r["sent"])
            with self.store.tx():
                for row in rows:
                    if self.store.has_message(row["msgid"]):
                        continue
                    self.store.add_message(row)
                    new += 1
                    if row["kind"] == "bot":
                        self.outbox.mark_seen_on_list(row["msgid"])
                watcher.commit_poll(self.store)
        return new

    def step(self, now: float, poll: bool) -> None:
        if self.tree.due(now):
            try:
                self.tree.fetch()
            except InfraError as exc:
                with self.store.tx():
                    self.store.oplog(f"infrastructure: {exc} (reviews go on with the last fetch)")
                    self.store.set_fact("tree_fetched_at", str(now))
        new = self.poll(now) if poll else 0
        if new:
            self.site_dirty = True
        if new or now - self._assembled >= min(ASSEMBLE, self.cfg.grace):
            self._assemble(now)
        self.runner.reap(now, self._reviewed)
        self.runner.start_due(self.assembler.mbox, now)
        summary.queue_due(self.store, self.cfg, now)
        if self.outbox.send_due(now):
            self.site_dirty = True
        self._flush_log()
        if self.site_dirty and self.cfg.site_dir:
            from mmreview.bot.site import publish
            publish(self.cfg, self.store)
            self.site_dirty = False

    def _assemble(self, now: float) -> None:
        self._assembled = now
        for ev in self.assembler.step(now):
            if ev.kind == "cancel":
                self.runner.cancel(ev.posting)
            elif ev.kind == "incomplete":
                with self.store.tx():
                    p = self.store.one("SELECT * FROM postings WHERE id=?", ev.posting)
                    head = self.store.one("SELECT * FROM messages WHERE posting=? ORDER BY number "
                                          "LIMIT 1", ev.posting)
                    queue_incomplete(self.store, self.cfg, p, head, ev.missing)

    def _reviewed(self, posting, review, review_id: int) -> None:
        link = None
        if self.cfg.site_url:
            from mmreview.bot.site import review_url
            link = review_url(self.cfg, review_id)
        queue_review(self.store, self.cfg, posting, review, link, review_id)
        self.site_dirty = True

    def _flush_log(self) -> None:
        rows = self.store.all("SELECT * FROM oplog WHERE id>? ORDER BY id", self._logged)
        if not rows:
            return
        with open(self.log_path, "a") as fh:
            for r in rows:
                fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(r.at))} {r.what}\n")
        self._logged = rows[-1].id
        with self.store.tx():
            self.store.set_fact("log_flushed", str(self._logged))

    # ------------------------------------------------------------ the loop

    def busy(self, now: float) -> bool:
        """Work this run can still finish: running or startable reviews, due mail."""
        if self.runner.jobs:
            return True
        if self.store.value("SELECT 1 FROM postings WHERE state='queued' AND retry_at<=?", now):
            return True
        return bool(self.store.value("SELECT 1 FROM outbox WHERE state='pending' AND not_before<=?", now))

    def run(self, once: bool = False) -> int:
        with BotLock(self.cfg.state):
            signal.signal(signal.SIGTERM, lambda *_: setattr(self, "_stop", True))
            rec = self.store.recover()
            with self.store.tx():
                if rec["interrupted_reviews"]:
                    self.store.oplog(f"restart: {rec['interrupted_reviews']} interrupted review(s) "
                                     f"queued again")
            self.outbox.settle()
            try:
                self.tree.fetch()
            except InfraError as exc:
                if not (self.cfg.tree_path / "HEAD").exists():
                    raise                  # no tree at all: nothing can be reviewed
                with self.store.tx():
                    self.store.oplog(f"infrastructure: {exc} (reviews go on with the last fetch)")
            last_poll = 0.0
            try:
                while not self._stop:
                    now = time.time()
                    do_poll = now - last_poll >= self.cfg.poll and not (once and last_poll)
                    if do_poll:
                        last_poll = now
                    self.step(now, do_poll)
                    if once and not self.busy(time.time()):
                        break
                    time.sleep(TICK)
            finally:
                self.runner.stop_all()
                self._flush_log()
        return 0
