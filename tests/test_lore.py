"""A Message-ID as SERIES, fetched by b4 from a real public-inbox on 127.0.0.1 (issue 19), and
`mmreview b4-check` driven by b4's own check runner.

The inbox is filled from the bundled series: a plain series (clean-3), one thread holding v1, two
reviews, an unrelated mail and v2 (thread-v2, its v2 cover sent in reply to v1's, as
`git send-email --in-reply-to` does), a series whose cover letter arrives last
(matrix-build-break), a series with a finding (rules-xa-zero-marker-pos), one with its patch 2
missing (bad/missing-2, renumbered Message-IDs), and vma-fix with a v2 in a thread of its own
(for --newest, found by b4's search).
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import MMREVIEW, REPO, SERIES, VENV_PATH, git
from publicinbox import _split, own_lore_cache

V1_COVER = "cover.1748242800.git.ada@example.org"
V2_COVER = "cover.1748851201.git.ada@example.org"
V2_PATCH2 = "f52a9ea3e792a6b4883013924f4a999d6c42192d.1748851201.git.ada@example.org"
CLEAN_COVER = "cover.1748851200.git.ada@example.org"
LATE_COVER = "cover.1795281458.git.ada@example.org"
LATE_PATCH1 = "c726822f7b5005a82ba183fb599f4fd3c8281561.1795281459.git.ada@example.org"
XA_COVER = "cover.1795280805.git.ada@example.org"
XA_PATCH = "43fffaa75ca01d0af94de64becd4510816a81721.1795280805.git.ada@example.org"
MISSING_COVER = "cover.1748851277.git.ada@example.org"
VMA_COVER = "cover.1795281438.git.ada@example.org"
VMA_V2_COVER = "cover.1795367838.git.ada@example.org"
CHATTER = "20250528073000.cccc1@example.com"


def _header(raw: bytes, name: str, value: str) -> bytes:
    """raw with header `name` set to value (added after Message-Id if absent)."""
    head, sep, body = raw.partition(b"\n\n")
    line = f"{name}: {value}".encode()
    pat = re.compile(rb"^" + name.encode() + rb":.*(\n[ \t].*)*$", re.M | re.I)
    head = pat.sub(line, head, count=1) if pat.search(head) else head + b"\n" + line
    return head + sep + body


def _v1_v2_one_thread() -> list[bytes]:
    out = []
    for raw in _split(SERIES / "thread-v2.mbox"):
        if f"Message-Id: <{V2_COVER}>".encode() in raw.split(b"\n\n", 1)[0]:
            raw = _header(_header(raw, "In-Reply-To", f"<{V1_COVER}>"), "References", f"<{V1_COVER}>")
        # Everything under v2 now also descends from v1's cover.
        out.append(raw.replace(f"References: <{V2_COVER}>".encode(),
                               f"References: <{V1_COVER}> <{V2_COVER}>".encode(), 1))
    return out


def _vma_v2() -> list[bytes]:
    """vma-fix again as [PATCH v2], a day later, in a thread of its own."""
    out = []
    for raw in _split(SERIES / "vma-fix.mbox"):
        raw = raw.replace(b".1795281438.", b".1795367838.").replace(b"[PATCH 0/1]", b"[PATCH v2 0/1]")
        raw = raw.replace(b"[PATCH 1/1]", b"[PATCH v2 1/1]")
        raw = re.sub(rb"^Date: .*$", b"Date: Sun, 22 Nov 2026 17:17:18 +0000", raw, count=1, flags=re.M)
        out.append(raw)
    return out


@pytest.fixture(scope="module")
def inbox(public_inbox_factory, tmp_path_factory):
    ib = public_inbox_factory(tmp_path_factory.mktemp("lore") / "pi")
    ib.deliver(SERIES / "clean-3.mbox")
    for raw in _v1_v2_one_thread():
        ib.deliver(raw)
    late = _split(SERIES / "matrix-build-break.mbox")
    for raw in late[1:] + late[:1]:          # the cover letter arrives last
        ib.deliver(raw)
    ib.deliver(SERIES / "rules-xa-zero-marker-pos.mbox")
    for raw in _split(SERIES / "bad" / "missing-2.mbox"):
        ib.deliver(raw.replace(b".1748851200.", b".1748851277."))
    ib.deliver(SERIES / "vma-fix.mbox")
    for raw in _vma_v2():
        ib.deliver(raw)
    return ib


@pytest.fixture
def env(tmp_path):
    """No user config of the machine's: an empty XDG_CONFIG_HOME (and no b4.* in git config); and
    no lore cache of the machine's (own_lore_cache says why)."""
    cfg = tmp_path / "config"
    (cfg / "mmreview").mkdir(parents=True)
    return {"XDG_CONFIG_HOME": str(cfg), **own_lore_cache(tmp_path / "cache"),
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def run(*args, env=None, timeout=600, cwd=None):
    return subprocess.run([MMREVIEW, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd or REPO)


def series_json(*args, env=None):
    proc = run("series", "--json", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# ---------------------------------------------------------------- SERIES forms

def test_every_form_of_a_message_id_names_the_thread(inbox, env):
    for form in (CLEAN_COVER, f"<{CLEAN_COVER}>", f"id:{CLEAN_COVER}",
                 f"{inbox.url}{CLEAN_COVER}/", f"{inbox.url}{CLEAN_COVER}/T/#u"):
        args = [form] if form.startswith("http") else ["--lore", inbox.url, form]
        s = series_json(*args, env=env)
        assert [p["number"] for p in s["patches"]] == [1, 2, 3], form
        assert s["kind"] == "lore"
        assert s["source"] == f"lore {inbox.url}{CLEAN_COVER}/"


def test_v2_is_chosen_and_replies_are_kept_as_context(inbox, env):
    s = series_json("--lore", inbox.url, V1_COVER, env=env)
    assert s["version"] == 2 and s["cover"]["message_id"] == V2_COVER
    assert "v2 chosen; v1 (3 patches) superseded" in s["notes"]
    assert "Reviewed-by: Bea Maintainer <bea@example.net> given for patch 2/3 in a reply" in s["notes"]
    assert "Tested-by: Cy Tester <cy@example.com> given for the series in a reply" in s["notes"]
    assert s["replies"] == 4       # two reviews of v1, one of v2, a Tested-by (not the unrelated mail)


def test_cover_letter_arriving_last(inbox, env):
    s = series_json("--lore", inbox.url, LATE_PATCH1, env=env)
    assert s["cover"]["message_id"] == LATE_COVER
    assert [p["number"] for p in s["patches"]] == [1, 2, 3]


def test_newest_finds_a_later_revision_in_another_thread(inbox, env):
    assert series_json("--lore", inbox.url, VMA_COVER, env=env)["version"] == 1
    s = series_json("--lore", inbox.url, "--newest", VMA_COVER, env=env)
    assert s["version"] == 2 and s["cover"]["message_id"] == VMA_V2_COVER
    assert s["source"] == f"lore {inbox.url}{VMA_V2_COVER}/"


def test_lore_url_from_the_config_file_and_from_b4_midmask(inbox, env, tmp_path):
    (Path(env["XDG_CONFIG_HOME"]) / "mmreview" / "config.toml").write_text(f'[lore]\nurl = "{inbox.url}"\n')
    assert series_json(CLEAN_COVER, env=env)["source"] == f"lore {inbox.url}{CLEAN_COVER}/"
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f"[b4]\n\tmidmask = {inbox.url}%s\n")
    env2 = {**env, "XDG_CONFIG_HOME": str(tmp_path / "none"), "GIT_CONFIG_GLOBAL": str(gitconfig)}
    assert series_json(CLEAN_COVER, env=env2)["source"] == f"lore {inbox.url}{CLEAN_COVER}/"


# ---------------------------------------------------------------- the review

VOLATILE = {"created", "commit", "tip_sha", "source", "kind"}


def _stable(x):
    if isinstance(x, dict):
        return {k: _stable(v) for k, v in x.items() if k not in VOLATILE}
    if isinstance(x, list):
        return [_stable(v) for v in x]
    return x


@pytest.mark.parametrize("mbox,msgid", [("clean-3.mbox", CLEAN_COVER),
                                        ("rules-xa-zero-marker-pos.mbox", XA_PATCH)])
def test_check_msgid_gives_the_review_of_check_mbox(inbox, env, tmp_path, kernel_tree, mbox, msgid):
    a, b = tmp_path / "lore.json", tmp_path / "mbox.json"
    p1 = run("check", "--profile", "rules", "-q", "--lore", inbox.url, msgid, "--json-out", str(a),
             "-f", "terse", env=env)
    p2 = run("check", "--profile", "rules", "-q", str(SERIES / mbox), "--json-out", str(b),
             "-f", "terse", env=env)
    assert p1.returncode == p2.returncode, p1.stderr + p2.stderr
    assert p1.stdout == p2.stdout
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ra["series"]["source"].startswith(f"lore {inbox.url}") and ra["series"]["kind"] == "lore"
    assert _stable(ra) == _stable(rb)
    if "xa-zero" in mbox:
        assert p1.returncode == 1 and "xa-zero-marker" in p1.stdout
    # The saved Review (kind "lore") is one the schema accepts: `report` checks it.
    rep = run("report", str(a), "--format", "json", env=env)
    assert rep.returncode == p1.returncode and rep.stderr == "", rep.stderr   # its verdict, no error


def test_rules_and_apply_take_a_message_id(inbox, env, kernel_tree):
    proc = run("rules", "--lore", inbox.url, XA_COVER, env=env)
    assert proc.returncode == 1 and "xa-zero-marker" in proc.stdout + proc.stderr, proc.stderr
    proc = run("apply", "--json", "--lore", inbox.url, CLEAN_COVER, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["series"]["source"] == f"lore {inbox.url}{CLEAN_COVER}/"


def test_email_reply_threads_to_the_real_cover_letter(inbox, env, tmp_path, kernel_tree):
    out = tmp_path / "reply.eml"
    proc = run("check", "--profile", "rules", "-q", "--lore", inbox.url, V2_PATCH2, "-f", "email",
               "-o", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    msg = email.parser.BytesParser().parsebytes(out.read_bytes())
    assert msg["In-Reply-To"] == f"<{V2_COVER}>"
    assert f"<{V2_COVER}>" in msg["References"]
    assert msg["Subject"].startswith("Re: [PATCH v2 0/3]")


# ---------------------------------------------------------------- failures

def _one_error_line(proc, code):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("mmreview: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_unknown_message_id_and_threads_without_a_whole_series(inbox, env):
    line = _one_error_line(run("series", "--lore", inbox.url, "nobody@example.org", env=env), 2)
    assert f"no message nobody@example.org on {inbox.url}" in line
    line = _one_error_line(run("series", "--lore", inbox.url, CHATTER, env=env), 2)
    assert "no patch in 1 message" in line
    line = _one_error_line(run("series", "--lore", inbox.url, MISSING_COVER, env=env), 2)
    assert "missing patch 2/3" in line
    line = _one_error_line(run("series", "--lore", "ftp://example.org/x/", CLEAN_COVER, env=env), 2)
    assert "--lore ftp://example.org/x/: not an http(s) URL" in line


class _Answer500(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(500)
        self.end_headers()
        self.wfile.write(b"internal error")
    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def server_500():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Answer500)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/linux-mm/"
    srv.shutdown()
    srv.server_close()


def test_server_error_is_infrastructure(server_500, env):
    line = _one_error_line(run("series", "--lore", server_500, CLEAN_COVER, env=env), 3)
    assert "answered HTTP 500" in line


def test_hanging_server_times_out(env):
    (Path(env["XDG_CONFIG_HOME"]) / "mmreview" / "config.toml").write_text("[lore]\ntimeout = 3\n")
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)       # accepts connections (the kernel does) and never answers
    try:
        t0 = time.monotonic()
        proc = run("series", "--lore", f"http://127.0.0.1:{hang.getsockname()[1]}/linux-mm/",
                   CLEAN_COVER, env=env, timeout=60)
        took = time.monotonic() - t0
    finally:
        hang.close()
    line = _one_error_line(proc, 3)
    assert "did not answer within 3 s" in line
    assert took < 20


def test_no_network_is_infrastructure(env):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()        # nothing listens there: connection refused
    line = _one_error_line(run("series", "--lore", f"http://127.0.0.1:{port}/linux-mm/", CLEAN_COVER,
                               env=env), 3)
    assert "cannot reach" in line


def test_a_fetched_thread_is_cached(public_inbox, env):
    public_inbox.deliver(SERIES / "vma-fix.mbox")
    first = series_json("--lore", public_inbox.url, VMA_COVER, env=env)
    public_inbox.stop()
    assert series_json("--lore", public_inbox.url, VMA_COVER, env=env) == first
    _one_error_line(run("series", "--lore", public_inbox.url, "--newest", VMA_COVER, env=env), 3)


def test_a_series_b4_config_cannot_redirect_the_fetch(inbox, env, tmp_path, server_500):
    """cwd is a work tree whose .b4-config and .git/config point b4 at another server."""
    repo = tmp_path / "hostile"
    repo.mkdir()
    git(repo, "init", "--quiet")
    (repo / ".b4-config").write_text(f"[b4]\n\tmidmask = {server_500}%s\n")
    git(repo, "config", "b4.midmask", f"{server_500}%s")
    git(repo, "config", "lore.fallback", server_500.rstrip("/"))
    (Path(env["XDG_CONFIG_HOME"]) / "mmreview" / "config.toml").write_text(f'[lore]\nurl = "{inbox.url}"\n')
    proc = run("series", "--json", CLEAN_COVER, env=env, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["source"] == f"lore {inbox.url}{CLEAN_COVER}/"


# ---------------------------------------------------------------- b4 review's check commands

def _b4_message(inbox, msgid):
    """The message as b4 holds it (its own parser and policy)."""
    import b4
    from email.message import EmailMessage
    with urllib.request.urlopen(f"{inbox.url}{msgid}/raw", timeout=30) as r:
        raw = r.read()
    return email.parser.BytesParser(policy=b4.emlpolicy, _class=EmailMessage).parsebytes(raw)


def test_b4_review_runs_b4_check_per_patch_and_per_series(inbox, env, tmp_path, monkeypatch, kernel_tree):
    """b4's own runner (b4/review/checks.py: run_perpatch_checks, run_series_checks, as
    b4/review_tui/_common.py calls them) runs `mmreview b4-check` and parses what it prints.
    `b4 review` itself is a terminal UI, so its runner is called directly."""
    from b4.review import checks
    for k, v in {**VENV_PATH, **env}.items():
        monkeypatch.setenv(k, v)
    topdir = str(tmp_path)
    xa = _b4_message(inbox, XA_PATCH)
    res = checks.run_perpatch_checks([(XA_PATCH, xa)], ["mmreview b4-check --profile rules"], topdir)
    by_tool = {r["tool"]: r for r in res[XA_PATCH]}
    assert set(by_tool) == {"mmreview-rules", "mmreview-checkpatch"}, res
    assert by_tool["mmreview-rules"]["status"] == "fail"
    details = json.loads(by_tool["mmreview-rules"]["details"])
    assert any("xa-zero-marker" in d["description"] for d in details)

    # Patch 2/3: reviewed on top of patch 1 from its thread; alone when the thread is not to be had.
    p2 = _b4_message(inbox, V2_PATCH2)
    res = checks.run_perpatch_checks([(V2_PATCH2, p2)], [f"mmreview b4-check --profile rules --lore {inbox.url}"],
                                     topdir)
    assert {r["status"] for r in res[V2_PATCH2]} == {"pass"}, res
    assert "on top of patch 1 of the thread" in res[V2_PATCH2][0]["summary"]
    offline = "http://127.0.0.1:9/linux-mm/"       # the discard port: nothing listens
    res = checks.run_perpatch_checks([(V2_PATCH2, p2)], [f"mmreview b4-check --profile rules --lore {offline}"],
                                     topdir)
    assert {r["status"] for r in res[V2_PATCH2]} == {"pass"}, res
    assert "on top of" not in res[V2_PATCH2][0]["summary"]

    cover = _b4_message(inbox, V2_COVER)
    res = checks.run_series_checks((V2_COVER, cover),
                                   [f"mmreview b4-check --series --profile rules --lore {inbox.url}"], topdir)
    assert {r["tool"]: r["status"] for r in res} == {"mmreview-rules": "pass", "mmreview-checkpatch": "pass"}, res


def test_b4_check_bad_stdin_is_a_failed_result_and_exit_2(env):
    proc = subprocess.run(
        [MMREVIEW, "b4-check"], input="just text\n", capture_output=True, text=True,
        env={**os.environ, **env}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("mmreview: error: stdin: not an email")
    [result] = json.loads(proc.stdout)      # b4 shows stdout: the reason is there too
    assert result["status"] == "fail" and "not an email" in result["summary"]
