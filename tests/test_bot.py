"""The review bot, end to end on 127.0.0.1: a real public-inbox, a real SMTP server that records
what it receives (and relays list mail into the archive, as a list does), the real SQLite state,
`mmreview bot` as a process, the real kernel tree behind a local bare remote.  Rules profile."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from bot_helpers import (BOT_FROM, LIST, MAINTAINER, SmtpRecorder, fresh, kernel_remote, kill, messages,
                         synthetic_series, variant_series,
                         msgid_of, query, reply, start_bot, wait_until, write_config)
from conftest import MMREVIEW, SERIES, git

from mmreview.bot.store import BotLock, Store
from mmreview.common.errors import InfraError


# ---------------------------------------------------------------- the store alone

def test_store_recovers_interrupted_work(tmp_path: Path):
    st = Store(tmp_path / "s.sqlite")
    assert st.value("PRAGMA journal_mode") == "wal"
    with st.tx() as db:
        db.execute("INSERT INTO postings(root, lineage, version, total, author, title, recipients, "
                   "first_seen, state) VALUES('r', 'l', 1, 1, 'a', 't', '[]', 0, 'running')")
        db.execute("INSERT INTO reviews(posting, started_at, state) VALUES(1, 0, 'running')")
        db.execute("INSERT INTO outbox(posting, msgid, kind, mode, author, recipients, message, state, "
                   "not_before, created_at) VALUES(1, '<m@x>', 'review', 'send', 'a', '[]', x'00', "
                   "'sending', 0, 0)")
    # A transaction that fails leaves nothing behind.
    with pytest.raises(RuntimeError):
        with st.tx() as db:
            db.execute("UPDATE postings SET state='reviewed'")
            raise RuntimeError
    assert st.value("SELECT state FROM postings") == "running"
    st.close()
    st = Store(tmp_path / "s.sqlite")
    assert st.recover() == {"interrupted_reviews": 1, "mails_in_doubt": 1}
    assert st.value("SELECT state FROM postings") == "queued"
    assert st.value("SELECT state FROM reviews") == "interrupted"
    assert st.value("SELECT state FROM outbox") == "sending"     # settled by the outbox, not here
    with BotLock(tmp_path / "s.sqlite"):
        with pytest.raises(InfraError, match="another mmreview bot"):
            with BotLock(tmp_path / "s.sqlite"):
                pass


def test_the_operators_log_loses_no_line_to_a_kill(tmp_path: Path):
    """Lines committed to the store's oplog just before a kill reach `<state>.log` after the
    restart: the file's position is a fact in the same store, not the table's end at start."""
    from mmreview.bot.config import load_config
    from mmreview.bot.service import Bot
    cfg = load_config(write_config(tmp_path, 25, "http://127.0.0.1:1/x/", tmp_path / "t.git",
                                   tmp_path / "r.git"))
    bot = Bot(cfg)
    with bot.store.tx():
        bot.store.oplog("the first run's line, killed before its first flush")
    bot.store.close()
    bot = Bot(cfg)
    with bot.store.tx():
        bot.store.oplog("first line")
    bot._flush_log()
    with bot.store.tx():
        bot.store.oplog("committed, then the bot was killed before writing it out")
    bot.store.close()                                # (no flush: the kill)
    again = Bot(cfg)
    again._flush_log()
    lines = bot.log_path.read_text().splitlines()
    assert [ln.split(" ", 1)[1] for ln in lines] == [
        "the first run's line, killed before its first flush", "first line",
        "committed, then the bot was killed before writing it out"]


def test_refuses_to_send_as_localhost(tmp_path: Path):
    cfg = write_config(tmp_path, 25, "http://127.0.0.1:1/x/", tmp_path / "t.git", tmp_path / "r.git",
                       sender="mmreview <mmreview@localhost>")
    p = subprocess.run([MMREVIEW, "bot", "--config", str(cfg), "--once"], capture_output=True)
    assert p.returncode == 2
    err = p.stderr.decode()
    assert err.count("\n") == 1 and "default @localhost identity" in err and "Traceback" not in err
    # Muted everywhere (dry-run), the default identity is fine: nothing leaves.
    text = cfg.read_text().replace('reply = "author+list"', 'reply = "dry-run"')
    cfg.write_text(text)
    p = subprocess.run([MMREVIEW, "bot", "status", "--config", str(cfg)], capture_output=True)
    assert p.returncode == 3 and "no bot state file" in p.stderr.decode()


# ---------------------------------------------------------------- the whole bot

@pytest.fixture
def world(tmp_path: Path, kernel_tree: Path, public_inbox):
    """The list's archive (the lore issue's public-inbox fixture), an SMTP server that relays the
    list's mail into it, and the kernel behind a local bare remote."""
    smtp = SmtpRecorder(deliver=public_inbox.deliver).start()
    remote, mine = kernel_remote(kernel_tree, tmp_path)
    yield {"dir": tmp_path, "inbox": public_inbox, "smtp": smtp, "remote": remote, "tree": mine}
    smtp.stop()


def _config(world, **over) -> Path:
    d = world["dir"] / "bot"
    d.mkdir(exist_ok=True)
    return write_config(d, world["smtp"].port, world["inbox"].url, world["tree"], world["remote"], **over)


def _thread(m) -> str:
    return str(m.msg["In-Reply-To"] or "").strip().strip("<>")


def test_burst_answers_exactly_what_the_policy_implies(world):
    inbox, smtp = world["inbox"], world["smtp"]
    deliver = lambda raws: [inbox.deliver(r) for r in raws]     # noqa: E731
    complete = fresh(messages("rules-maple-store-alloc-neg.mbox"), "a", to=LIST)
    thread = messages("thread-v2.mbox")
    v1 = fresh([r for r in thread if b"[PATCH 0/3]" in r or b"[PATCH 1/3]" in r or b"[PATCH 2/3]" in r
                or b"[PATCH 3/3]" in r], "b")
    v2 = fresh([r for r in thread if b"[PATCH v2 " in r], "b")
    late = fresh(messages("rules-error-path-needs-test-neg.mbox"), "c", to=LIST)
    stopped = fresh(messages("rules-xa-zero-marker-neg.mbox"), "d", to=LIST)
    stop = reply(stopped[0], MAINTAINER, "Not this one, please.\n\nmmreview-bot: stop", "d")
    not_stop = reply(stopped[0], "Someone <someone@example.com>", "mmreview-bot: stop", "d2")
    rule = fresh(messages("rules-lock-order-pos.mbox"), "e", to=LIST)
    noapply = fresh(messages("no-apply.mbox"), "f")
    muted = fresh(messages("rules-vma-free-rcu-neg.mbox"), "h", to="other-list@example.org")
    robot = fresh(messages("rules-checkpatch-neg.mbox"), "i",
                  to=LIST, sender="kernel test robot <lkp@intel.com>")
    resend = fresh(messages("rules-maple-store-alloc-neg.mbox"), "j", to=LIST, subject_prefix="RESEND")
    for batch in (complete, v1, v2, late[:-1], stopped, [stop, not_stop], rule, noapply, muted, robot,
                  resend):
        deliver(batch)
    cfg = _config(world, grace=8)
    bot = start_bot(cfg)
    try:
        # The partial series is told about after the grace period; then its last patch arrives.
        wait_until(lambda: any("incomplete" in (m.msg["Message-ID"] or "") for m in smtp.mails), 120,
                   "the incomplete note", bot)
        deliver(late[-1:])
        mails = smtp.wait_for(6, 240, bot)
        wait_until(lambda: list((cfg.parent / "dry-run").glob("*.eml")), 240, "the muted list's file", bot)
        wait_until(lambda: not query(cfg, "SELECT 1 FROM postings WHERE state IN ('queued', 'running', "
                                          "'collecting')"), 240, "every series settled", bot)
        # The bot's own mails come back through the list, and are known as its own.
        wait_until(lambda: query(cfg, "SELECT count(*) FROM messages WHERE kind='bot' AND "
                                      "sender='mmreview-bot@example.org'")[0][0] >= 6, 120,
                   "the bot's mail back from the list", bot)
        time.sleep(4)       # and nothing more comes
        mails = list(smtp.mails)
    finally:
        bot.send_signal(signal.SIGTERM)
        bot.wait(timeout=60)
    by_thread = {}
    for m in mails:
        by_thread.setdefault(_thread(m), []).append(m)
    ids = {name: msgid_of(raws[0]) for name, raws in
           {"complete": complete, "v2": v2, "late": late, "rule": rule, "noapply": noapply}.items()}
    assert sorted(by_thread) == sorted(ids.values()), [m.msg["Subject"] for m in mails]
    assert len(mails) == 6, [m.msg["Subject"] for m in mails]
    assert len(by_thread[ids["late"]]) == 2        # the note, then the review
    for m in mails:
        assert m.msg["From"] == BOT_FROM
        assert LIST in m.msg["Cc"] and LIST in m.rcpt        # author+list
        assert m.msg["To"] and m.msg["To"].addresses[0].addr_spec in m.rcpt
        assert m.msg["Subject"].startswith("Re: [PATCH")
    verdict = {t: ms[-1].msg["X-Mmreview-Verdict"] for t, ms in by_thread.items()}
    assert verdict[ids["complete"]] == "clean" and verdict[ids["v2"]] == "clean"
    assert verdict[ids["rule"]] == "findings"
    assert verdict[ids["noapply"]] == "did-not-apply"
    body = by_thread[ids["noapply"]][0].msg.get_content()
    assert "[PATCH 2/3]" in body and "does not apply" in body
    assert "lock-order" in by_thread[ids["rule"]][0].msg.get_content()
    note = by_thread[ids["late"]][0].msg.get_content()
    assert "3/3" in note or "2/2" in note
    # Muted list: written for the operator, not sent.
    dry = list((cfg.parent / "dry-run").glob("*.eml"))
    assert len(dry) == 1 and b"other-list@example.org" in dry[0].read_bytes()
    # The state says why the others got nothing.
    states = dict(query(cfg, "SELECT root, state FROM postings"))
    by_root = {r.split()[0]: s for r, s in states.items()}
    assert by_root[msgid_of(v1[0])] == "superseded"
    assert by_root[msgid_of(stopped[0])] == "stopped"
    assert by_root[msgid_of(resend[0])] == "duplicate"
    assert not any(msgid_of(robot[0]) in r for r in states)
    log = (cfg.parent / "state" / "bot.log").read_text()
    assert "ignored: not an address the policy lists" in log      # the stop from a stranger
    # The bot's own mails came back through the list and are known as its own.
    own = query(cfg, "SELECT count(*) FROM messages WHERE kind='bot' AND sender='mmreview-bot@example.org'")
    assert own[0][0] == 6
    status = subprocess.run([MMREVIEW, "bot", "status", "--config", str(cfg)], capture_output=True,
                            text=True)
    assert status.returncode == 0 and "mails: " in status.stdout and "6 sent" in status.stdout
    assert "inboxes: linux-mm searched up to " in status.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_kills_lose_nothing_and_send_nothing_twice(world):
    """A review process killed under the bot (infrastructure: logged, retried, never mailed), the
    bot killed during a review and during a send: the same mails in the end, none twice."""
    inbox, smtp = world["inbox"], world["smtp"]
    names = ["rules-maple-store-alloc-neg.mbox", "rules-lock-order-pos.mbox", "rules-xa-zero-marker-neg.mbox"]
    series = [fresh(messages(n), f"k{i}", to=LIST) for i, n in enumerate(names)]
    for s in series:
        for raw in s:
            inbox.deliver(raw)
    cfg = _config(world, in_flight=1)
    running = lambda: query(cfg, "SELECT id, pid, posting FROM reviews WHERE state='running' "  # noqa: E731
                                 "AND pid IS NOT NULL")
    bot = start_bot(cfg)
    try:
        # 1. The review process dies under the bot: an infrastructure failure.
        rid, pid, first = wait_until(running, 120, "a review in flight", bot)[0]
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: query(cfg, "SELECT 1 FROM reviews WHERE id=? AND state='infra'", rid), 60,
                   "the failure recorded", bot)
        # 2. The bot killed during a review: its review process goes with it.
        rid2, pid2, _ = wait_until(lambda: [r for r in running() if r[0] != rid], 120,
                                   "the next review", bot)[0]
        kill(bot)
        wait_until(lambda: not _alive(pid2), 30, "the review process to die with the bot")
        # 3. The bot killed during a send: the server has the mail (and the list archive too),
        #    but the bot is killed before it hears the 250.
        smtp.accept_delay = 8
        bot = start_bot(cfg)
        wait_until(lambda: smtp.mails and query(cfg, "SELECT 1 FROM outbox WHERE state='sending'"),
                   180, "a mail in the middle of its sending", bot)
        kill(bot)
        smtp.accept_delay = 0
        bot = start_bot(cfg)
        mails = smtp.wait_for(3, 240, bot)
        time.sleep(5)
        mails = list(smtp.mails)
    finally:
        kill(bot)
    threads = sorted(_thread(m) for m in mails)
    assert threads == sorted(msgid_of(s[0]) for s in series), [m.msg["Subject"] for m in mails]
    assert len({m.msg["Message-ID"] for m in mails}) == 3
    log = (cfg.parent / "state" / "bot.log").read_text()
    # One review failed for the machine's reasons (an inbox poll that timed out under load would
    # be a line of its own, and is no review's).
    infra = [line for line in log.splitlines() if "infrastructure: review " in line]
    assert len(infra) == 1 and "killed by signal 9" in infra[0] and "retried" in infra[0], log
    assert "so it went" in log              # the mail in doubt was found on the list, not resent
    assert "interrupted review(s) queued again" in log
    # Every review that counted ran to its end; the interrupted and failed ones are on record.
    states = [r[0] for r in query(cfg, "SELECT state FROM reviews ORDER BY id")]
    assert states.count("done") == 3 and "infra" in states and "interrupted" in states


def _chromium(url: str, tmp: Path, shot: Path | None = None) -> str:
    """Headless Chromium (Debian's): the page's DOM after it loaded, and a screenshot."""
    args = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--no-first-run", f"--user-data-dir={tmp / 'chrome'}",
            "--window-size=1280,900"]
    if shot:
        subprocess.run([*args, f"--screenshot={shot}", url], capture_output=True, timeout=120)
        assert shot.exists() and shot.stat().st_size > 10_000
    p = subprocess.run([*args, "--dump-dom", url], capture_output=True, timeout=120, text=True)
    return p.stdout


def test_quick_profile_review_on_the_site_and_in_the_mail(world):
    """The one quick-profile case (x86_64): a series that breaks xarray, answered with a link to
    its page; the site shows the matrix grid and the verdict in a real browser."""
    inbox, smtp = world["inbox"], world["smtp"]
    broken = fresh(messages("matrix-break-xarray.mbox"), "q", to=LIST)
    rule = fresh(messages("rules-lock-order-pos.mbox"), "q2", to=LIST)
    for raw in broken + rule:
        inbox.deliver(raw)
    cfg = _config(world, profile="quick", arch="x86_64", site=True,
                  site_url="https://bot.example.org/mm/")
    p = subprocess.run([MMREVIEW, "bot", "--config", str(cfg), "--once"], capture_output=True,
                       timeout=1800, cwd=cfg.parent)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    mails = {_thread(m): m for m in smtp.mails}
    assert len(mails) == 2
    m = mails[msgid_of(broken[0])]
    assert m.msg["X-Mmreview-Verdict"] == "regressions"
    body = m.msg.get_content()
    assert "x86_64 radix-tree/xarray: NEW FAILURE" in body and "To reproduce:" in body
    link = next(line for line in body.splitlines() if line.startswith("Details: "))[9:]
    assert link.startswith("https://bot.example.org/mm/r/") and link.endswith(".html")
    site = cfg.parent / "site"
    page = site / "r" / link.rsplit("/", 1)[1]
    assert page.exists()
    text = page.read_text()
    assert str(world["dir"]) not in text and "/root" not in text       # nothing of the host
    index_dom = _chromium((site / "index.html").as_uri(), world["dir"], world["dir"] / "index.png")
    newest = [t for (t,) in query(cfg, "SELECT p.title FROM reviews r JOIN postings p ON "
                                       "p.id=r.posting WHERE r.state='done' ORDER BY r.finished_at DESC, r.id DESC")]
    assert len(newest) == 2 and index_dom.index(newest[0]) < index_dom.index(newest[1])  # newest first
    assert "regressions" in index_dom and "findings" in index_dom
    from mmreview.render.markdown import render_markdown
    from mmreview.review.model import Review
    review = Review.loads(page.with_suffix(".json").read_text())
    assert f"[The full results]({link})" in render_markdown(review, link=link)
    dom = _chromium(page.as_uri(), world["dir"], world["dir"] / "review.png")
    assert 'class="matrix"' in dom and "x86_64" in dom and "xarray" in dom
    assert "NEW FAILURE" in dom and "regressions" in dom and "To reproduce:" in dom


@pytest.mark.slow
def test_long_run_with_a_restart_every_minute(world, kernel_tree):
    """200 series through the rules profile, the bot SIGKILLed and started again every minute:
    each answered exactly once. (MMREVIEW_BOT_LONG=N, MMREVIEW_BOT_RESTART=S for a shorter run.)"""
    count = int(os.environ.get("MMREVIEW_BOT_LONG", "200"))
    every = float(os.environ.get("MMREVIEW_BOT_RESTART", "60"))
    inbox, smtp = world["inbox"], world["smtp"]
    series = synthetic_series(kernel_tree, world["dir"], count)
    for s in series:
        for raw in s:
            inbox.deliver(raw)
    cfg = _config(world, list_policy={"rate": 10 * count})     # one author sent them all
    restarts = 0
    end = time.time() + count * 30 + 600
    bot = start_bot(cfg)
    try:
        while len(smtp.mails) < count and time.time() < end:
            time.sleep(every)
            kill(bot)
            restarts += 1
            bot = start_bot(cfg)
        smtp.wait_for(count, 120, bot)
        time.sleep(5)
    finally:
        kill(bot)
    threads = [_thread(m) for m in smtp.mails]
    assert restarts >= 1
    assert sorted(threads) == sorted(msgid_of(s[0]) for s in series)     # each once, none twice


def test_rate_limit_embargo_and_dry_run(tmp_path: Path):
    """The outbox alone, on a real SMTP server and the real SQLite file: an author gets at most
    `rate` mails an hour (the rest wait, none dropped), nothing leaves before the embargo, a muted
    list's mail is a file."""
    from mmreview.bot.config import load_config
    from mmreview.bot.outbox import Outbox
    from mmreview.bot.policy import queue_incomplete
    smtp = SmtpRecorder().start()
    try:
        cfg_path = write_config(tmp_path, smtp.port, "http://127.0.0.1:1/x/", tmp_path / "t.git",
                                tmp_path / "r.git", list_policy={"rate": 2, "embargo": "10m"})
        cfg = load_config(cfg_path)
        cfg.default_policy.incomplete = True       # the muted list's note: a dry-run file
        st = Store(cfg.state)
        now = time.time()
        with st.tx() as db:
            for i, to in enumerate([LIST, LIST, LIST, "other@example.org"]):
                db.execute("INSERT INTO postings(root, lineage, version, total, author, title, "
                           "recipients, first_seen, state) VALUES(?, ?, 1, 2, 'Ada <ada@example.org>', "
                           "?, ?, ?, 'collecting')", (f"r{i}", f"l{i}", f"t{i}", json.dumps([to]), now))
            for p in st.all("SELECT * FROM postings ORDER BY id"):
                queue_incomplete(st, cfg, p, None, [2])
        box = Outbox(cfg, st)
        assert box.send_due(now) == 1 and len(smtp.mails) == 0       # embargoed; the dry-run file
        assert len(list((tmp_path / "dry-run").glob("*.eml"))) == 1
        assert box.send_due(now + 601) == 2 and len(smtp.mails) == 2     # then two: the rate
        wait = st.value("SELECT not_before FROM outbox WHERE state='pending'")
        assert wait > now + 3000                                       # the third waits its hour
        assert box.send_due(wait + 1) == 1 and len(smtp.mails) == 3
        assert all(m.msg["To"].addresses[0].addr_spec == "ada@example.org" for m in smtp.mails)
        assert all(LIST in m.rcpt for m in smtp.mails)
        assert st.value("SELECT count(*) FROM outbox WHERE state='sent'") == 3
    finally:
        smtp.stop()


# ---------------------------------------------------------------- 0-day's summary rule

RUNS = Path(__file__).parent / "data" / "runs"


def _failing_cell(log: str, text: str):
    """A new-failure Cell from a captured log as the matrix reads it (parse_run for a run, the
    first error for a build), paths made tree-relative as cell.py does."""
    from mmreview.matrix import suites as S
    from mmreview.matrix.build import tree_relative
    from mmreview.matrix.parse import first_build_error, parse_run
    from mmreview.matrix.results import BUILD_FAILED, Cell, RunResult
    c = next(c for c in json.loads((RUNS / "index.json").read_text()) if c["log"] == log)
    src, suite_dir = Path("/work/src"), S.get_suite(c["suite"]).directory
    if c["kind"] == "run":
        r = parse_run(c["target"], c["suite"], c["binary"], text, c["returncode"], c["seconds"])
    else:
        r = RunResult(target=c["target"], suite=c["suite"], binary=c["binaries"][0], state=BUILD_FAILED,
                      excerpt=first_build_error(text))
    r.excerpt = [tree_relative(l, src, suite_dir) for l in r.excerpt]
    r.reason = tree_relative(r.reason, src, suite_dir)
    return Cell(r.target, r.suite, r.binary, None, r)


def _elsewhere(text: str) -> str:
    """The same failure on another machine and a base that moved: other addresses, pids, line
    numbers, and the build under another directory."""
    import re
    text = re.sub(r"0x[0-9a-f]{6,}", lambda m: hex(int(m.group(0), 16) + 0x10000), text)
    text = re.sub(r"==\d+==", "==31337==", text)
    text = re.sub(r"(\.[ch]|check_\w+):(\d+)", lambda m: f"{m.group(1)}:{int(m.group(2)) + 17}", text)
    return text.replace("/work/src/", "/var/tmp/elsewhere/build-42/src/")


@pytest.mark.parametrize("log, want", [
    ("6.12-break-tip-x86_64-radix.xarray.log", "x86_64 radix-tree/xarray: crash: BUG at check_find_4"),
    ("6.12-32bit-tip-i386-radix.xarray.log",
     "i386 radix-tree/xarray: crash: xarray: test_xarray.c: check_xa_err: Assertion `0' failed."),
    ("6.12-buildbreak-patch2-x86_64-radix.build.log",
     "x86_64 radix-tree/multiorder: build-failed: xarray.c: undefined reference to `xas_sibling_end'"),
    ("6.1-base-x86_64-radix.build.log", "x86_64 radix-tree/multiorder: build-failed: maple_tree.c: "
                                        "error: 'fallthrough' undeclared (first use in this function)"),
])
def test_error_signature_of_captured_failures(log, want):
    """Target, suite/binary and the first failing line without paths, positions, addresses or
    pids: the same failure from another machine or a shifted base is the same error."""
    from mmreview.bot.summary import cell_signature
    text = (RUNS / log).read_text()
    sig = cell_signature(_failing_cell(log, text))
    assert sig == want
    assert cell_signature(_failing_cell(log, _elsewhere(text))) == sig
    assert "/" not in sig.split(": ", 1)[1] and "0x" not in sig


def test_error_signature_normalisation():
    from mmreview.bot.summary import normalise
    assert normalise("/home/u/linux/lib/xarray.c:1151:7: error: 'x' undeclared") == \
        normalise("../../../lib/xarray.c:1337: error: 'x'  undeclared") == "xarray.c: error: 'x' undeclared"
    asan = "==1234==ERROR: AddressSanitizer: heap-use-after-free on address 0x60c0027ae580 pid 77"
    assert normalise(asan) == "==PID==ERROR: AddressSanitizer: heap-use-after-free on address 0x pid N"
    assert normalise("BUG at check_find_4:1339") != normalise("BUG at check_find_5:1339")


def _summaries(mails) -> list:
    return [m for m in mails if str(m.msg["Subject"] or "").startswith("[mmreview] BUILD REGRESSION")]


def _status(cfg: Path) -> str:
    p = subprocess.run([MMREVIEW, "bot", "status", "--config", str(cfg)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_one_summary_after_two_mails_of_one_error(world, kernel_tree):
    """0-day's rule on a burst (quick profile, x86_64): 4 series hit the same new failure on one
    base, 1 a failure of its own.  Two of the 4 are answered in their threads, the other two are
    held and answered by ONE summary mail; the other failure in its thread.  The bot is killed
    (SIGKILL) while the two are held, and again while the summary is being sent: still one
    summary, no series answered twice, none lost."""
    inbox, smtp = world["inbox"], world["smtp"]
    same = variant_series(kernel_tree, world["dir"], 4, "s", mbox="matrix-break-xarray.mbox")
    other = variant_series(kernel_tree, world["dir"], 1, "o", break_build=True)[0]
    for raw in [r for s in same for r in s] + other:
        inbox.deliver(raw)
    cfg = _config(world, profile="quick", arch="x86_64", site=True, site_url="https://bot.example.org/mm/",
                  list_policy={"summary_wait": "90s"})
    held = lambda: query(cfg, "SELECT posting FROM held WHERE summary IS NULL")      # noqa: E731
    bot = start_bot(cfg)
    try:
        wait_until(lambda: len(held()) == 2, 600, "two reviews held", bot)
        assert not query(cfg, "SELECT 1 FROM outbox WHERE kind='summary'")
        kill(bot)                                           # held, the summary not yet due
        status = _status(cfg)
        assert "held for a summary (2):" in status and "a summary of 2 series, due in" in status, status
        smtp.accept_delay = 8                               # then killed in the summary's sending
        bot = start_bot(cfg)
        wait_until(lambda: _summaries(smtp.mails) and query(cfg, "SELECT 1 FROM outbox WHERE "
                                                            "kind='summary' AND state='sending'"),
                   300, "the summary in the middle of its sending", bot)
        kill(bot)
        assert "the summary of held reviews (sending" in _status(cfg)
        smtp.accept_delay = 0
        bot = start_bot(cfg)
        wait_until(lambda: query(cfg, "SELECT 1 FROM outbox WHERE kind='summary' AND state='sent'") and
                   len(smtp.mails) >= 4 and not query(cfg, "SELECT 1 FROM postings WHERE state IN "
                                                          "('queued', 'running', 'collecting')"),
                   300, "every series settled and the summary sent", bot)
        time.sleep(4)                                       # and nothing more comes
        mails = list(smtp.mails)
    finally:
        kill(bot)
    replies = [m for m in mails if _thread(m)]
    summaries = _summaries(mails)
    assert len(summaries) == 1 and len(replies) == 3, [m.msg["Subject"] for m in mails]
    roots = {msgid_of(s[0]): s for s in same}
    answered = sorted(_thread(m) for m in replies)
    assert msgid_of(other[0]) in answered and len(set(answered)) == 3
    mailed = [r for r in answered if r in roots]
    held_roots = sorted(set(roots) - set(mailed))
    assert len(mailed) == 2 and len(held_roots) == 2
    # The summary: to the list, Cc the held authors; names the error, the held series and the
    # ones answered before, with links to their threads and pages; nothing of this host.
    s = summaries[0]
    base = git(world["tree"], "rev-parse", "master")
    assert s.msg["Subject"] == f"[mmreview] BUILD REGRESSION master {base[:12]}: 2 series, 1 error"
    assert s.msg["From"] == BOT_FROM and s.msg["To"] == LIST and "ada@example.org" in s.msg["Cc"]
    assert sorted(s.rcpt) == sorted([LIST, "ada@example.org"]) and not s.msg["In-Reply-To"]
    body = s.msg.get_content()
    assert "x86_64 radix-tree/xarray: crash: BUG at check_find_4" in body and "To reproduce" in body
    held_part, _, before_part = body.partition("Already answered in their threads:")
    def subject(root: str) -> str:
        return query(cfg, "SELECT title FROM postings WHERE root LIKE ?", root + "%")[0][0]
    for root in held_roots:
        assert subject(root) in held_part and f"{inbox.url.rstrip('/')}/{root}/" in held_part
    for root in mailed:
        assert subject(root) in before_part and subject(root) not in held_part
    assert body.count("https://bot.example.org/mm/r/") == 4
    assert str(world["dir"]) not in body and "/root" not in body and "/tmp" not in body
    # The held series were answered by the summary alone; the kill in its sending settled by
    # finding it on the list, not by sending it again.
    assert query(cfg, "SELECT count(*) FROM held WHERE summary=(SELECT id FROM outbox WHERE "
                      "kind='summary')")[0][0] == 2
    log = (cfg.parent / "state" / "bot.log").read_text()
    assert log.count("held for a summary") == 2 and "so it went" in log
    assert "held for a summary (0):" in _status(cfg)


def test_summary_after_zero_mails_every_series(world, kernel_tree):
    """summary_after = 0: the rule is off; 4 series with one error, 4 replies in their threads."""
    inbox, smtp = world["inbox"], world["smtp"]
    same = variant_series(kernel_tree, world["dir"], 4, "z", mbox="matrix-break-xarray.mbox")
    for raw in [r for s in same for r in s]:
        inbox.deliver(raw)
    cfg = _config(world, profile="quick", arch="x86_64", list_policy={"summary_after": 0})
    p = subprocess.run([MMREVIEW, "bot", "--config", str(cfg), "--once"], capture_output=True,
                       timeout=1800, cwd=cfg.parent)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    mails = list(smtp.mails)
    assert sorted(_thread(m) for m in mails) == sorted(msgid_of(s[0]) for s in same)
    assert all(m.msg["X-Mmreview-Verdict"] == "regressions" for m in mails)
    assert not _summaries(mails) and not query(cfg, "SELECT 1 FROM held")


@pytest.fixture(scope="module")
def repeated_error_review(kernel_tree, tmp_path_factory):
    """A real Review with one new failure (matrix-break-xarray's, quick profile on x86_64; the
    results cache makes it seconds after the first run)."""
    from mmreview.review.model import Review
    d = tmp_path_factory.mktemp("review")
    s = variant_series(kernel_tree, d, 1, "r", mbox="matrix-break-xarray.mbox")[0]
    mbox = d / "s.mbox"
    mbox.write_bytes(b"".join(b"From mmreview Mon Jan  1 00:00:00 2001\n" + r + b"\n" for r in s))
    p = subprocess.run([MMREVIEW, "check", str(mbox), "--tree", str(kernel_tree), "--profile", "quick",
                        "--arch", "x86_64", "--format", "json"], capture_output=True, timeout=1800)
    assert p.returncode == 1, p.stderr.decode()[-2000:]
    review = Review.loads(p.stdout.decode())
    assert review.verdict == "regressions" and len(review.new_failures()) == 1
    return review


@pytest.mark.parametrize("mode", ["author+list", "author", "dry-run"])
def test_summary_recipients_by_mode_and_superseded_series(tmp_path: Path, repeated_error_review, mode):
    """The policy and the outbox alone, on the real SQLite file and a real SMTP server: five series
    with one error; two mailed, three held; one of those superseded before the summary leaves
    (dropped from it); a sixth with the same error and a rule finding of its own is mailed in its
    thread; the summary leaves `summary_wait` after the first was held, to whom the mode says."""
    from mmreview.bot.config import load_config
    from mmreview.bot.outbox import Outbox
    from mmreview.bot.policy import queue_review
    from mmreview.bot.summary import queue_due
    from mmreview.review.model import Review
    smtp = SmtpRecorder().start()
    try:
        cfg = load_config(write_config(tmp_path, smtp.port, "http://127.0.0.1:1/x/", tmp_path / "t.git",
                                       tmp_path / "r.git", list_policy={"reply": mode, "summary_wait": "10m",
                                                                        "cc": ["mm-ci@example.org"]}))
        st = Store(cfg.state)
        now = time.time()
        authors = [f"Dev {i} <dev{i}@example.org>" for i in range(5)]
        with st.tx() as db:
            for i, a in enumerate(authors):
                db.execute("INSERT INTO postings(root, lineage, version, total, author, title, recipients, "
                           "first_seen, state) VALUES(?, ?, 1, 1, ?, ?, ?, ?, 'reviewed')",
                           (f"r{i}@x", f"l{i}", a, f"[PATCH] series {i}", json.dumps([LIST]), now))
                db.execute("INSERT INTO reviews(posting, started_at, state, review_json) "
                           "VALUES(?, ?, 'done', ?)", (i + 1, now, repeated_error_review.dumps()))
        queued = []
        for p in st.all("SELECT * FROM postings ORDER BY id"):
            with st.tx():
                queued.append(queue_review(st, cfg, p, repeated_error_review, None, p.id))
        assert [q is not None for q in queued] == [True, True, False, False, False]
        # The same error with a rule finding of the series' own: answered in its thread.
        p = subprocess.run([MMREVIEW, "check", str(SERIES / "rules-lock-order-pos.mbox"), "--profile",
                            "rules", "--format", "json"], capture_output=True, timeout=600)
        own = Review.loads(p.stdout.decode())
        assert [f.severity for f in own.findings] == ["error"]
        both = Review.loads(repeated_error_review.dumps())
        both.findings, both.rules = own.findings, own.rules
        with st.tx() as db:
            db.execute("INSERT INTO postings(root, lineage, version, total, author, title, recipients, "
                       "first_seen, state) VALUES('r5@x', 'l5', 1, 1, 'Dev 5 <dev5@example.org>', "
                       "'[PATCH] series 5', ?, ?, 'reviewed')", (json.dumps([LIST]), now))
            db.execute("INSERT INTO reviews(posting, started_at, state) VALUES(6, ?, 'done')", (now,))
            assert queue_review(st, cfg, st.one("SELECT * FROM postings WHERE id=6"), both, None, 6)
        with st.tx() as db:                                  # series 3 gets a v2 while held
            db.execute("UPDATE postings SET state='superseded' WHERE id=3")
        assert queue_due(st, cfg, now + 60) == []            # not yet: 10 minutes
        [summary] = queue_due(st, cfg, now + 601)
        assert queue_due(st, cfg, now + 602) == []           # once
        assert st.value("SELECT count(*) FROM held WHERE summary=?", summary) == 2
        assert st.value("SELECT summary FROM held WHERE posting=3") == 0
        box = Outbox(cfg, st)
        box.send_due(now + 601)
        if mode == "dry-run":
            files = list((tmp_path / "dry-run").glob("*summary*.eml"))
            assert len(files) == 1 and not smtp.mails
            import email as _email
            from email import policy as _policy
            msg = _email.message_from_bytes(files[0].read_bytes(), policy=_policy.default)
        else:
            [msg] = [m.msg for m in _summaries(smtp.mails)]
        body = msg.get_content()
        to = [a.addr_spec for a in msg["To"].addresses]
        cc = [a.addr_spec for a in msg["Cc"].addresses] if msg["Cc"] else []
        if mode == "author":
            assert to == ["dev3@example.org", "dev4@example.org"] and cc == ["mm-ci@example.org"]
        else:
            assert to == [LIST] and cc == ["dev3@example.org", "dev4@example.org", "mm-ci@example.org"]
        assert msg["Subject"].endswith(": 2 series, 1 error")
        assert "series 3" in body and "series 4" in body and "series 2" not in body
        assert "[PATCH] series 0" in body.partition("Already answered")[2]
        assert "[PATCH] series 5" in body.partition("Already answered")[2]
        assert "To reproduce" in body and "make -C tools/testing/radix-tree" in body
        assert str(tmp_path) not in body and "/root" not in body and "/tmp" not in body
    finally:
        smtp.stop()


@pytest.mark.parametrize("setting, why", [("summary_after = -1", "summary_after"),
                                          ('summary_wait = "soon"', "summary_wait")])
def test_bad_summary_setting_is_one_line(tmp_path: Path, setting, why):
    cfg = write_config(tmp_path, 25, "http://127.0.0.1:1/x/", tmp_path / "t.git", tmp_path / "r.git")
    cfg.write_text(cfg.read_text() + setting + "\n")
    p = subprocess.run([MMREVIEW, "bot", "--config", str(cfg), "--once"], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith("mmreview: error: ") and why in p.stderr, p.stderr
