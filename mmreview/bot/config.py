"""bot.toml: what the bot watches, where it reviews, how it answers.

    [bot]
    state = "/var/lib/mmreview-bot/state.sqlite"
    from = "mmreview bot <mmreview-bot@example.org>"
    profile = "rules"              # quick | full | rules
    arch = "x86_64"                # the matrix's targets (quick/full)
    in_flight = 2                  # reviews at once
    cluster = ""                   # a Dask scheduler: the matrix runs there
    poll = 60                      # seconds between inbox polls
    grace = 3600                   # seconds a partial series waits before it is "incomplete"
    retry = 300                    # seconds before an infrastructure failure is retried (doubling)
    review_timeout = 10800         # seconds one review may take
    other_bots = ["lkp@intel.com"] # mail from these is never a new series
    dry_run_dir = "/var/lib/mmreview-bot/dry-run"
    site_dir = "/var/www/mmreview"  # the results site (optional)
    site_url = "https://example.org/mmreview/"

    [tree]                         # the kernel the series are applied to
    path = "/var/lib/mmreview-bot/mm.git"   # the bot's own bare clone
    remote = "https://git.kernel.org/pub/scm/linux/kernel/git/akpm/mm.git"
    branch = "mm-unstable"
    fetch = 900                    # seconds between fetches

    [smtp]
    host = "localhost"
    port = 25

    [[inbox]]
    name = "linux-mm"
    url = "https://lore.kernel.org/linux-mm/"    # or: nntp = "nntp://nntp.lore.kernel.org/org.kvack.linux-mm"
                                                 # (nntps:// for TLS), or: path = "/srv/lore/linux-mm"
                                                 # (a public-inbox v2 on disk, a grokmirror), or:
                                                 # maildir = "/path"
    since = "2026-01-01"           # where a first poll starts (default: one day back)
    web = "https://lore.kernel.org/linux-mm/"    # where the site links threads (default: url)

    [policy]                       # lists and maintainers not named below: muted
    reply = "dry-run"
    [[policy.lists]]
    match = ["linux-mm@kvack.org"] # a list's (or a maintainer's) address in To/Cc
    reply = "author+list"          # author | author+list | dry-run
    cc = []                        # always Cc these
    embargo = 0                    # seconds after arrival before a reply may leave
    rate = 4                       # mails per author per hour (more wait)
    stop_from = ["akpm@linux-foundation.org"]
    incomplete = false             # answer a series still partial after `grace`
    did_not_apply = true           # answer a series that does not apply
    summary_after = 2              # 0-day's rule (0 = off): see below
    summary_wait = "1h"            # how long held reviews gather before their summary leaves

summary_after: a matrix *new failure* is the error that can be the base's or the test machine's
rather than the author's (a broken branch head fails every series on it the same way).  Once
`summary_after` series on the same base (the commit the review applied on) have been mailed for
one error signature (target, suite/binary, first failing line without paths or numbers), a
later review whose new failures are all such signatures is not mailed in its thread: it is held,
and the reviews held under one policy and base leave together as ONE mail, "[mmreview] BUILD
REGRESSION <branch> <head>: N series, M errors", `summary_wait` after the first was held (To
the policy's lists, Cc the held authors; `author`: To the held authors; `dry-run`: a file).
Rule findings and a series that did not apply are the series' own: always mailed in its thread.
This is 0-day's trick (Fengguang Wu, LKML 2016-10-31): report the first 2 the regular way,
then one summary, so a broken base does not flood the list yet no distinct error is hidden.
"""

from __future__ import annotations

import tomllib
from datetime import datetime, timezone
import urllib.parse
from dataclasses import dataclass, field
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from mmreview.common.errors import BadInput

REPLY_MODES = ("dry-run", "author", "author+list")
DEFAULT_BOTS = ("lkp@intel.com", "patchwork-bot@kernel.org", "syzbot@syzkaller.appspotmail.com",
                "noreply@kernel.org")


FIRST_LOOK = 86400.0     # a first poll with no `since`: one day back


def addr_spec(value: str) -> str:
    """The bare, lower-case address of one header address ("" if it has none)."""
    return getaddresses([value])[0][1].lower()


@dataclass
class Inbox:
    name: str
    url: str | None = None
    maildir: str | None = None
    nntp: str | None = None
    path: str | None = None
    web: str | None = None
    since: str | None = None

    def first_look(self, now: float) -> float:
        """Where a first poll starts: `since` (checked when the config was read), else a day back."""
        if not self.since:
            return now - FIRST_LOOK
        when = datetime.fromisoformat(self.since)
        return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


@dataclass
class ListPolicy:
    match: list[str]
    reply: str = "dry-run"
    cc: list[str] = field(default_factory=list)
    embargo: float = 0
    rate: int = 4
    stop_from: list[str] = field(default_factory=list)
    incomplete: bool = False
    did_not_apply: bool = True
    summary_after: int = 2          # 0: every review mailed in its thread
    summary_wait: float = 3600


@dataclass
class Config:
    path: Path
    state: Path
    sender: str
    profile: str = "rules"
    arch: str | None = None
    in_flight: int = 2
    cluster: str | None = None
    poll: float = 60
    grace: float = 3600
    other_bots: list[str] = field(default_factory=lambda: list(DEFAULT_BOTS))
    dry_run_dir: Path | None = None
    site_dir: Path | None = None
    site_url: str | None = None
    review_timeout: float = 3 * 3600
    retry: float = 300
    tree_path: Path | None = None
    tree_remote: str | None = None
    tree_branch: str = "master"
    tree_fetch: float = 900
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    inboxes: list[Inbox] = field(default_factory=list)
    default_policy: ListPolicy = field(default_factory=lambda: ListPolicy(match=[]))
    lists: list[ListPolicy] = field(default_factory=list)

    @property
    def sender_address(self) -> str:
        return addr_spec(self.sender)

    def sends(self) -> bool:
        return any(p.reply != "dry-run" for p in [self.default_policy, *self.lists])


def _seconds(where: str, v: Any) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
        return float(v)
    if isinstance(v, str):
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        try:
            if v and v[-1] in units:
                return float(v[:-1]) * units[v[-1]]
            return float(v)
        except ValueError:
            pass
    raise BadInput(where, f"{v!r} is not a duration (seconds, or like 30m, 2h, 1d)")


def _nntp_url(where: str, v: Any) -> None:
    u = urllib.parse.urlsplit(v) if isinstance(v, str) else None
    if u is None or u.scheme not in ("nntp", "nntps") or not u.hostname or not u.path.strip("/"):
        raise BadInput(where, f"{v!r} is not nntp://HOST[:PORT]/GROUP (or nntps://)")


def _list(where: str, v: Any) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise BadInput(where, "must be a list of strings")
    return list(v)


def _policy(where: str, d: dict, default: ListPolicy | None) -> ListPolicy:
    known = {"match", "reply", "cc", "embargo", "rate", "stop_from", "incomplete", "did_not_apply",
             "summary_after", "summary_wait", "lists"}
    for k in d:
        if k not in known:
            raise BadInput(f"{where}.{k}", f"unknown setting (known: {', '.join(sorted(known - {'lists'}))})")
    base = default or ListPolicy(match=[])
    reply = d.get("reply", base.reply)
    if reply not in REPLY_MODES:
        raise BadInput(f"{where}.reply", f"{reply!r}: one of {', '.join(REPLY_MODES)}")
    rate = d.get("rate", base.rate)
    if not isinstance(rate, int) or rate < 1:
        raise BadInput(f"{where}.rate", "mails per author per hour: a whole number, at least 1")
    after = d.get("summary_after", base.summary_after)
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise BadInput(f"{where}.summary_after", "series mailed per error before a summary: a whole "
                                                 "number, 0 for never")
    return ListPolicy(
        match=[a.lower() for a in _list(f"{where}.match", d.get("match", []))],
        reply=reply, cc=_list(f"{where}.cc", d.get("cc", base.cc)),
        embargo=_seconds(f"{where}.embargo", d.get("embargo", base.embargo)), rate=rate,
        stop_from=[a.lower() for a in _list(f"{where}.stop_from", d.get("stop_from", base.stop_from))],
        incomplete=bool(d.get("incomplete", base.incomplete)),
        did_not_apply=bool(d.get("did_not_apply", base.did_not_apply)), summary_after=after,
        summary_wait=_seconds(f"{where}.summary_wait", d.get("summary_wait", base.summary_wait)))


def load_config(path: str | Path) -> Config:
    p = Path(path).expanduser()
    try:
        data = tomllib.loads(p.read_text())
    except OSError as exc:
        raise BadInput(str(path), f"cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(str(path), f"not TOML: {exc}") from None
    here = p.resolve().parent

    def rel(v: str | None) -> Path | None:
        return (here / Path(v).expanduser()) if v else None

    bot = data.get("bot", {})
    tree = data.get("tree", {})
    smtp = data.get("smtp", {})
    if "from" not in bot:
        raise BadInput(f"{path}: [bot] from", "missing (the From: of the bot's mail)")
    from mmreview.review.pipeline import PROFILES
    profile = bot.get("profile", "rules")
    if profile not in PROFILES:
        raise BadInput(f"{path}: [bot] profile", f"{profile!r}: one of {', '.join(PROFILES)}")
    default = _policy(f"{path}: [policy]", data.get("policy", {}), None)
    lists = [_policy(f"{path}: [[policy.lists]] {i + 1}", d, default)
             for i, d in enumerate(data.get("policy", {}).get("lists", []))]
    inboxes = []
    for i, d in enumerate(data.get("inbox", [])):
        name = d.get("name") or f"inbox{i + 1}"
        if sum(bool(d.get(k)) for k in ("url", "nntp", "path", "maildir")) != 1:
            raise BadInput(f"{path}: [[inbox]] {name}", "give one of url (a public-inbox over HTTP), "
                                                       "nntp (a newsgroup), path (a public-inbox on "
                                                       "disk) or maildir")
        if d.get("nntp"):
            _nntp_url(f"{path}: [[inbox]] {name}: nntp", d["nntp"])
        if d.get("since") is not None:
            try:
                datetime.fromisoformat(str(d["since"]))
            except ValueError:
                raise BadInput(f"{path}: [[inbox]] {name}: since",
                               f"{d['since']!r} is not a date (like 2026-01-01)") from None
        inboxes.append(Inbox(name=name, url=d.get("url"), nntp=d.get("nntp"),
                             path=str(rel(d["path"])) if d.get("path") else None,
                             maildir=str(rel(d["maildir"])) if d.get("maildir") else None,
                             since=str(d["since"]) if d.get("since") is not None else None,
                             web=d.get("web")))
    if not inboxes:
        raise BadInput(f"{path}: [[inbox]]", "no inbox to watch")
    if not tree.get("path"):
        raise BadInput(f"{path}: [tree] path", "missing (the kernel repository series apply to)")
    cfg = Config(
        path=p, state=rel(bot.get("state", "state.sqlite")), sender=bot["from"], profile=profile,
        arch=bot.get("arch"), in_flight=int(bot.get("in_flight", 2)), cluster=bot.get("cluster") or None,
        poll=_seconds(f"{path}: [bot] poll", bot.get("poll", 60)),
        grace=_seconds(f"{path}: [bot] grace", bot.get("grace", 3600)),
        other_bots=[a.lower() for a in bot.get("other_bots", list(DEFAULT_BOTS))],
        dry_run_dir=rel(bot.get("dry_run_dir", "dry-run")), site_dir=rel(bot.get("site_dir")),
        site_url=bot.get("site_url"),
        review_timeout=_seconds(f"{path}: [bot] review_timeout", bot.get("review_timeout", 3 * 3600)),
        retry=_seconds(f"{path}: [bot] retry", bot.get("retry", 300)),
        tree_path=rel(tree["path"]), tree_remote=tree.get("remote"),
        tree_branch=tree.get("branch", "master"),
        tree_fetch=_seconds(f"{path}: [tree] fetch", tree.get("fetch", 900)),
        smtp_host=smtp.get("host", "localhost"), smtp_port=int(smtp.get("port", 25)),
        smtp_user=smtp.get("user"), smtp_password=smtp.get("password"),
        smtp_starttls=bool(smtp.get("starttls", False)),
        inboxes=inboxes, default_policy=default, lists=lists)
    if cfg.sends() and cfg.sender_address.endswith("@localhost"):
        raise BadInput(f"{path}: [bot] from", f"{cfg.sender!r} is the default @localhost identity: "
                                              f"the bot will not send mail as it (set a real From:)")
    if "@" not in cfg.sender_address:
        raise BadInput(f"{path}: [bot] from", f"{cfg.sender!r} has no e-mail address")
    return cfg
