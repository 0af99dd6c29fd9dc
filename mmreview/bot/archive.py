"""New mail from a public-inbox on disk: a lore mirror kept by grokmirror (or `public-inbox-clone`),
read with git and nothing else.

A v2 inbox is a directory of git repositories, `git/0.git`, `git/1.git`, ... (epochs); each
message is one commit whose tree holds it as the blob `m`.  The cursor is each epoch's last commit
taken: a poll reads the commits since, oldest first, and their `m` blobs through one
`git cat-file --batch`.  A commit without `m` (a message public-inbox-purge removed) is skipped.
A first poll, or one whose cursor commit is gone (a purge rewrote the history), starts at `since`
(one day back by default) by commit date: public-inbox commits when the message arrived.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Iterator

from mmreview.bot.config import Inbox
from mmreview.bot.store import Store
from mmreview.common.errors import InfraError
from mmreview.common.git import git_env, rev_parse, run_git

def _epochs(root: Path) -> list[Path]:
    found = [p for p in (root / "git").glob("*.git") if p.name[:-4].isdigit()]
    return sorted(found, key=lambda p: int(p.name[:-4]))


def _blobs(repo: Path, commits: list[str]) -> Iterator[bytes]:
    """The `m` of each commit, in order; commits without one are left out."""
    if not commits:
        return
    proc = subprocess.run(["git", "-C", str(repo), "cat-file", "--batch"],
                          input="".join(f"{c}:m\n" for c in commits).encode(),
                          capture_output=True, env=git_env())
    if proc.returncode != 0:
        raise InfraError(str(repo), f"git cat-file: {proc.stderr.decode(errors='replace').strip()[:200]}")
    out, pos = proc.stdout, 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) == 3 and header[1] == b"blob":
            size = int(header[2])
            yield out[pos:pos + size]
            pos += size + 1             # the blob, then a newline
        # else "<commit>:m missing": a purged message


def poll(inbox: Inbox, store: Store) -> Iterator[bytes]:
    root = Path(inbox.path)
    epochs = _epochs(root)
    if not epochs:
        raise InfraError(f"inbox {inbox.name}", f"{root}: not a public-inbox v2 (no git/N.git)")
    cursor = json.loads(store.cursor(inbox.name) or "{}")
    taken = dict(cursor)
    for repo in epochs:
        head = rev_parse(repo, "HEAD")
        if head is None or head == cursor.get(repo.name):
            continue                    # an empty epoch, or nothing new
        last = cursor.get(repo.name)
        if last and rev_parse(repo, last):
            spec = [head, f"^{last}"]
        else:
            spec = [head, f"--max-age={int(inbox.first_look(time.time()))}"]
        proc = run_git(repo, "rev-list", "--reverse", *spec, check=False)
        if proc.returncode != 0:
            raise InfraError(f"inbox {inbox.name}",
                             f"{repo}: git rev-list: {proc.stderr.decode(errors='replace').strip()[:200]}")
        yield from _blobs(repo, proc.stdout.decode().split())
        taken[repo.name] = head
    store.pending_cursor = (inbox.name, json.dumps(taken, sort_keys=True))
