"""The bot's other inboxes: a newsgroup, as lore serves its lists (nntp.lore.kernel.org), from a
real public-inbox-nntpd on 127.0.0.1; and a public-inbox on disk (a grokmirror of lore), the very
v2 inbox those servers serve."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bot_helpers import (BOT_FROM, LIST, SmtpRecorder, fresh, kernel_remote, messages, msgid_of, query,
                         start_bot, wait_until, write_config)
from conftest import MMREVIEW

from mmreview.bot import archive, newsgroup
from mmreview.bot.config import Inbox
from mmreview.bot.store import Store
from mmreview.common.errors import InfraError


def _take(inbox: Inbox, st: Store, reader=newsgroup) -> list[str]:
    """One poll as the service does it: the messages' ids, then the cursor moved."""
    ids = [msgid_of(raw) for raw in reader.poll(inbox, st)]
    for mid in ids:
        st.add_message({"msgid": mid, "inbox": inbox.name, "seen_at": 0, "subject": "", "sender": "",
                        "kind": "other", "in_reply_to": None, "refs": [], "raw": b""})
    st.set_cursor(*st.pending_cursor)
    return ids


def test_the_article_cursor(public_inbox, tmp_path: Path, monkeypatch):
    first = fresh(messages("clean-3.mbox"), "n1", to=LIST)
    public_inbox.deliver(b"".join(b"From x\n" + r + b"\n" for r in first))
    url = public_inbox.start_nntp()
    st = Store(tmp_path / "s.sqlite")
    group = Inbox(name="linux-mm", nntp=url, since="2000-01-01")
    assert _take(group, st) == [msgid_of(r) for r in first]
    assert st.cursor("linux-mm") == str(len(first))
    assert _take(group, st) == []                           # nothing new: nothing read
    # Two polls of at most 2 articles each take the next series in order; none is read twice.
    monkeypatch.setattr(newsgroup, "BATCH", 2)
    second = fresh(messages("rules-lock-order-pos.mbox"), "n2", to=LIST)
    for raw in second:
        public_inbox.deliver(raw)
    got = _take(group, st) + _take(group, st) + _take(group, st)
    assert got == [msgid_of(r) for r in second]
    # A first poll starts at `since` (the sample mail is dated today): a date after today, nothing.
    later = Inbox(name="later", nntp=url, since="2100-01-01")
    assert _take(later, st) == [] and int(st.cursor("later")) == len(first) + len(second)
    # The crash-time question "did my mail reach the list?" is asked by Message-ID.
    assert msgid_of(newsgroup.fetch_message(group, msgid_of(second[0]))) == msgid_of(second[0])
    assert newsgroup.fetch_message(group, "not-there@example.org") is None
    # A range whose articles are all gone (purged) is an empty overview, not an error (420).
    srv = newsgroup._connect(group)
    try:
        srv.group(public_inbox.newsgroup)
        assert newsgroup._over(srv, 10_000, 10_020) == []
    finally:
        srv.quit()


def test_unreachable_or_unknown_group_is_an_infrastructure_error(public_inbox, tmp_path: Path):
    url = public_inbox.start_nntp()
    st = Store(tmp_path / "s.sqlite")
    with pytest.raises(InfraError, match="org.example.nothing"):
        list(newsgroup.poll(Inbox(name="x", nntp=url.rsplit("/", 1)[0] + "/org.example.nothing"), st))
    public_inbox.stop()
    with pytest.raises(InfraError, match=r"inbox x: nntp://127\.0\.0\.1"):
        list(newsgroup.poll(Inbox(name="x", nntp=url), st))
    assert st.cursor("x") is None


def test_bad_nntp_address_or_since_is_one_line(tmp_path: Path):
    cfg = write_config(tmp_path, 25, "nntp://127.0.0.1:1/", tmp_path / "t.git", tmp_path / "r.git",
                       inbox_kind="nntp")
    p = subprocess.run([MMREVIEW, "bot", "--config", str(cfg), "--once"], capture_output=True)
    err = p.stderr.decode()
    assert p.returncode == 2 and err.count("\n") == 1 and "nntp://HOST[:PORT]/GROUP" in err, err
    # A `since` that is no date is the config's fault, said when it is read (not at the first poll).
    cfg.write_text(cfg.read_text().replace('since = "2000-01-01"', 'since = "last tuesday"')
                   .replace("nntp://127.0.0.1:1/", "nntp://127.0.0.1:1/org.kvack.linux-mm"))
    p = subprocess.run([MMREVIEW, "bot", "--config", str(cfg), "--once"], capture_output=True)
    err = p.stderr.decode()
    assert p.returncode == 2 and err.count("\n") == 1 and "since: 'last tuesday' is not a date" in err, err


def test_the_archive_cursor(public_inbox, tmp_path: Path):
    first = fresh(messages("clean-3.mbox"), "a1", to=LIST)
    for raw in first:
        public_inbox.deliver(raw)
    st = Store(tmp_path / "s.sqlite")
    disk = Inbox(name="mirror", path=str(public_inbox.root / "inbox"), since="2000-01-01")
    assert _take(disk, st, archive) == [msgid_of(r) for r in first]
    assert _take(disk, st, archive) == []
    second = fresh(messages("rules-lock-order-pos.mbox"), "a2", to=LIST)
    for raw in second:
        public_inbox.deliver(raw)
    assert _take(disk, st, archive) == [msgid_of(r) for r in second]
    # A cursor commit that is gone (a purge rewrote the history): back to `since`, by date.
    st.set_cursor("mirror", '{"0.git": "' + "0" * 40 + '"}')
    assert len(_take(disk, st, archive)) == len(first) + len(second)
    assert _take(Inbox(name="later", path=disk.path, since="2100-01-01"), st, archive) == []
    with pytest.raises(InfraError, match="not a public-inbox v2"):
        list(archive.poll(Inbox(name="x", path=str(tmp_path)), st))


@pytest.mark.parametrize("kind", ["nntp", "path"])
def test_the_bot_answers_from_a_newsgroup_or_a_mirror(tmp_path: Path, kernel_tree: Path, public_inbox,
                                                      kind):
    """Two series on the group (or in the mirror): two replies, threaded, to author and list; the
    bot's own replies come back through the list and are known as its own (no third mail)."""
    url = public_inbox.start_nntp() if kind == "nntp" else str(public_inbox.root / "inbox")
    smtp = SmtpRecorder(deliver=public_inbox.deliver).start()
    try:
        remote, mine = kernel_remote(kernel_tree, tmp_path)
        clean = fresh(messages("rules-maple-store-alloc-neg.mbox"), "g1", to=LIST)
        rule = fresh(messages("rules-lock-order-pos.mbox"), "g2", to=LIST)
        for raw in clean + rule:
            public_inbox.deliver(raw)
        d = tmp_path / "bot"
        d.mkdir()
        cfg = write_config(d, smtp.port, url, mine, remote, inbox_kind=kind)
        bot = start_bot(cfg)
        try:
            smtp.wait_for(2, 300, bot)
            wait_until(lambda: query(cfg, "SELECT count(*) FROM messages WHERE kind='bot'")[0][0] >= 2,
                       120, "the bot's mail back from the group", bot)
            time.sleep(3)
        finally:
            bot.send_signal(signal.SIGTERM)
            bot.wait(timeout=60)
        mails = list(smtp.mails)
        assert len(mails) == 2, [m.msg["Subject"] for m in mails]
        threads = {str(m.msg["In-Reply-To"]).strip("<>"): m for m in mails}
        assert set(threads) == {msgid_of(clean[0]), msgid_of(rule[0])}
        assert threads[msgid_of(clean[0])].msg["X-Mmreview-Verdict"] == "clean"
        assert threads[msgid_of(rule[0])].msg["X-Mmreview-Verdict"] == "findings"
        for m in mails:
            assert m.msg["From"] == BOT_FROM and LIST in m.rcpt
        cursor = query(cfg, "SELECT value FROM cursors WHERE inbox='linux-mm'")[0][0]
        assert cursor.isdigit() if kind == "nntp" else cursor.startswith('{"0.git": "')
        status = subprocess.run([MMREVIEW, "bot", "status", "--config", str(cfg)], capture_output=True,
                                text=True)
        said = "at article " + cursor if kind == "nntp" else "at 0.git " + json.loads(cursor)["0.git"][:12]
        assert status.returncode == 0 and f"inboxes: linux-mm {said}\n" in status.stdout, status.stdout
    finally:
        smtp.stop()
