"""The public-inbox fixture itself: a real server that b4 and mmreview can fetch threads from."""

from __future__ import annotations

import gzip
import mailbox
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import SERIES


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def test_delivered_thread_is_served_as_lore_serves_it(public_inbox, tmp_path):
    ids = public_inbox.deliver(SERIES / "clean-3.mbox")
    assert ids[0] == "cover.1748851200.git.ada@example.org" and len(ids) == 4
    thread = gzip.decompress(fetch(public_inbox.url + ids[2] + "/t.mbox.gz"))
    (tmp_path / "t.mbox").write_bytes(thread)
    got = [m["Message-ID"] for m in mailbox.mbox(str(tmp_path / "t.mbox"))]
    assert sorted(got) == sorted(f"<{i}>" for i in ids)
    raw = fetch(public_inbox.url + ids[1] + "/raw")
    assert b"Subject: [PATCH 1/3] mm/vma: fix the kernel-doc header of vma_complete()" in raw


def test_mail_delivered_after_start_is_seen_and_unknown_ids_are_404(public_inbox):
    with pytest.raises(urllib.error.HTTPError) as e:
        fetch(public_inbox.url + "nobody@example.org/raw")
    assert e.value.code == 404
    [mid] = public_inbox.deliver(b"From: Cy Tester <cy@example.com>\nTo: linux-mm@kvack.org\n"
                                 b"Subject: a late note\nDate: Mon, 2 Jun 2025 10:00:00 +0000\n"
                                 b"Message-ID: <late@example.com>\n\nhello\n")
    assert mid == "late@example.com"
    assert b"a late note" in fetch(public_inbox.url + mid + "/raw")


def test_stop_ends_the_server(tmp_path, public_inbox_factory):
    inbox = public_inbox_factory(tmp_path / "pi", name="other", address="other@example.org")
    url = inbox.url
    inbox.stop()
    inbox.stop()
    with pytest.raises(urllib.error.URLError):
        fetch(url + "_/text/config/raw")
    assert subprocess.run(["pgrep", "-f", f"{tmp_path}/pi"], capture_output=True).stdout == b""
