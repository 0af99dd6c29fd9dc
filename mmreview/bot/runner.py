"""Reviews in flight: the operator's kernel branch, fetched on a schedule, and one `job` process
per queued series, several at once.

The tree is the bot's own bare clone; `git fetch` brings its branch up to date and HEAD names
that branch, so a series is applied on its `base-commit:` when the tree has it, else on the
branch head (the review's base line says which, and a note names the branch and its commit).

What a review's end means:
- JSON written, verdict not incomplete: done; the policy decides on a mail.
- exit 2: the series is not one mmreview reads: nothing is mailed, the operator log says why.
- incomplete, exit 3, a signal, a timeout: infrastructure. Never mailed; the operator log says
  what, and the series is queued again after a back-off (given up after MAX_ATTEMPTS).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mmreview.bot.config import Config
from mmreview.bot.store import Store
from mmreview.common.errors import InfraError
from mmreview.review.model import INCOMPLETE, Review

MAX_ATTEMPTS = 4
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # A bot killed with SIGKILL takes its reviews with it: they are run again on restart.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setpgrp()


def _git(*args: str, cwd: Path | None = None, timeout: float = 3600) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=timeout,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})


class KernelTree:
    def __init__(self, cfg: Config, store: Store):
        self.cfg = cfg
        self.store = store
        self.path = cfg.tree_path

    def due(self, now: float) -> bool:
        last = float(self.store.fact("tree_fetched_at") or 0)
        return bool(self.cfg.tree_remote) and now - last >= self.cfg.tree_fetch

    def fetch(self) -> str:
        """Bring the branch up to date (cloning it the first time); its head."""
        cfg = self.cfg
        branch = cfg.tree_branch
        if not (self.path / "HEAD").exists() and not (self.path / ".git").exists():
            if not cfg.tree_remote:
                raise InfraError(f"[tree] path {self.path}", "no repository there, and no remote to clone")
            p = _git("clone", "--quiet", "--bare", "--single-branch", "--branch", branch,
                     cfg.tree_remote, str(self.path))
            if p.returncode:
                raise InfraError(f"[tree] remote {cfg.tree_remote}", _last(p.stderr))
        elif cfg.tree_remote:
            p = _git("-C", str(self.path), "fetch", "--quiet", cfg.tree_remote,
                     f"+refs/heads/{branch}:refs/heads/{branch}")
            if p.returncode:
                raise InfraError(f"[tree] fetch {branch}", _last(p.stderr))
        _git("-C", str(self.path), "symbolic-ref", "HEAD", f"refs/heads/{branch}")
        head = self.head()
        with self.store.tx():
            self.store.set_fact("tree_fetched_at", str(time.time()))
            self.store.set_fact("tree_head", head)
        return head

    def head(self) -> str:
        p = _git("-C", str(self.path), "rev-parse", "--verify", "HEAD^{commit}")
        if p.returncode:
            raise InfraError(f"[tree] path {self.path}", f"no commit on {self.cfg.tree_branch}")
        return p.stdout.decode().strip()


def _last(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "failed"


@dataclass
class Job:
    review_id: int
    posting: int
    proc: subprocess.Popen
    out: Path
    log: Path
    started: float


class Runner:
    def __init__(self, cfg: Config, store: Store, work: Path, tree: KernelTree):
        self.cfg = cfg
        self.store = store
        self.work = work
        self.tree = tree
        self.jobs: dict[int, Job] = {}

    def start_due(self, mbox_for, now: float) -> None:
        free = self.cfg.in_flight - len(self.jobs)
        if free <= 0:
            return
        for p in self.store.all("SELECT * FROM postings WHERE state='queued' AND retry_at<=? "
                                "ORDER BY first_seen, id LIMIT ?", now, free):
            self._start(p, mbox_for(p.id), now)

    def _start(self, p, mbox: Path, now: float) -> None:
        cfg = self.cfg
        head = self.tree.head()
        with self.store.tx() as db:
            rid = db.execute("INSERT INTO reviews(posting, started_at, state) VALUES(?, ?, 'running')",
                             (p.id, now)).lastrowid
            db.execute("UPDATE postings SET state='running', attempts=attempts+1 WHERE id=?", (p.id,))
        d = self.work / "reviews"
        d.mkdir(parents=True, exist_ok=True)
        out, log = d / f"{rid}.json", d / f"{rid}.log"
        cmd = [sys.executable, "-m", "mmreview.bot.job", "--series", str(mbox), "--tree", str(self.tree.path),
               "--profile", cfg.profile, "--out", str(out), "--tree-name", cfg.tree_branch,
               "--source-name", f"series {p.id}",
               "--note", f"tree: branch {cfg.tree_branch} at {head[:12]} when the review started"]
        if cfg.arch:
            cmd += ["--arch", cfg.arch]
        if cfg.cluster:
            cmd += ["--cluster", cfg.cluster]
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    preexec_fn=_die_with_parent)
        self.store.db.execute("UPDATE reviews SET pid=? WHERE id=?", (proc.pid, rid))
        self.jobs[p.id] = Job(rid, p.id, proc, out, log, now)

    def cancel(self, posting: int) -> None:
        job = self.jobs.get(posting)
        if job and job.proc.poll() is None:
            job.proc.terminate()

    def reap(self, now: float, on_done) -> None:
        """Finished jobs: the review recorded, and `on_done(posting_row, review)` called inside
        the same transaction (it queues the mail), so a review and its mail land together."""
        for pid, job in list(self.jobs.items()):
            rc = job.proc.poll()
            if rc is None and now - job.started > self.cfg.review_timeout:
                os.killpg(job.proc.pid, signal.SIGKILL)
                rc = job.proc.wait()
                self._infra(job, now, f"timed out after {self.cfg.review_timeout:g} s")
                del self.jobs[pid]
                continue
            if rc is None:
                continue
            del self.jobs[pid]
            self._finish(job, rc, now, on_done)

    def _finish(self, job: Job, rc: int, now: float, on_done) -> None:
        posting = self.store.one("SELECT * FROM postings WHERE id=?", job.posting)
        tail = _last(job.log.read_bytes()) if job.log.exists() else ""
        if posting.state != "running":          # superseded or stopped while it ran
            with self.store.tx() as db:
                db.execute("UPDATE reviews SET state='cancelled', finished_at=?, exit_code=? WHERE id=?",
                           (now, rc, job.review_id))
            return
        if rc in (0, 1, 3) and job.out.exists():
            review = Review.loads(job.out.read_text(), str(job.out))
            if review.verdict == INCOMPLETE:
                self._infra(job, now, f"review incomplete: {review.summary()}", review)
                return
            with self.store.tx() as db:
                db.execute("UPDATE reviews SET state='done', finished_at=?, exit_code=?, verdict=?, "
                           "summary=?, base=?, review_json=? WHERE id=?",
                           (now, rc, review.verdict, review.summary(),
                            f"{review.tree.base_sha[:12]} ({review.tree.base_reason})",
                            review.dumps(), job.review_id))
                db.execute("UPDATE postings SET state='reviewed', note=? WHERE id=?",
                           (review.summary(), job.posting))
                on_done(posting, review, job.review_id)
            return
        if rc == 2:
            with self.store.tx() as db:
                db.execute("UPDATE reviews SET state='bad-input', finished_at=?, exit_code=?, error=? "
                           "WHERE id=?", (now, rc, tail, job.review_id))
                db.execute("UPDATE postings SET state='bad-input', note=? WHERE id=?", (tail, job.posting))
                self.store.oplog(f"series {job.posting} ({posting.title}): not reviewed, not mailed: "
                                 f"{tail}", job.posting)
            return
        why = f"killed by signal {-rc}" if rc < 0 else f"exit {rc}: {tail}"
        self._infra(job, now, why)

    def _infra(self, job: Job, now: float, why: str, review: Review | None = None) -> None:
        posting = self.store.one("SELECT * FROM postings WHERE id=?", job.posting)
        attempts = posting.attempts
        give_up = attempts >= MAX_ATTEMPTS
        retry = now + self.cfg.retry * 2 ** max(attempts - 1, 0)
        with self.store.tx() as db:
            db.execute("UPDATE reviews SET state='infra', finished_at=?, exit_code=?, error=?, "
                       "review_json=? WHERE id=?",
                       (now, job.proc.returncode, why, review.dumps() if review else None, job.review_id))
            if posting.state == "running":
                db.execute("UPDATE postings SET state=?, retry_at=?, note=? WHERE id=?",
                           ("failed" if give_up else "queued", retry, why, job.posting))
            self.store.oplog(f"infrastructure: review {job.review_id} of series {job.posting} "
                             f"({posting.title}) attempt {attempts}: {why}; "
                             + ("given up" if give_up else
                                f"retried in {retry - now:.0f} s") + f" (log: {job.log})", job.posting)

    def stop_all(self) -> None:
        for job in self.jobs.values():
            if job.proc.poll() is None:
                job.proc.terminate()
        for job in self.jobs.values():
            try:
                job.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(job.proc.pid, signal.SIGKILL)
