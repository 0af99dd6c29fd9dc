"""Definitions where the kernel keeps them, looked up for the rules (the RuleContext's part).

`ctx.definition(name)`: a macro, a header's static inline or another file's function - the series'
own version first (any file it changes, as the patch at hand leaves it, with the patch that last
changed it), else the tree's at the base, wherever it defines it.  `ctx.mentioning(tokens)`: the
definitions whose body names a token (check_stable_address_space() names MMF_UNSTABLE).  The tree is
searched with `git grep -l -F` at the base; every answer is kept per base commit in
$XDG_CACHE_HOME/mmreview/rules/grep-<commit>.json (a commit's content never changes).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import threading
from pathlib import Path
from typing import Iterator

from mmreview.common.git import git_env
from mmreview.rules.analysis.cparse import identifiers
from mmreview.rules.analysis.defs import SCOPE, Definition, definitions


def grep_lines(repo, rev: str, strings, pathspecs) -> Iterator[tuple[str, str]]:
    """(path, line text) of every line at `rev` holding one of the fixed `strings`."""
    pats = [a for t in strings for a in ("-e", t)]
    p = subprocess.run(["git", "-C", str(repo), "grep", "-n", "-F", *pats, rev, "--", *pathspecs],
                       capture_output=True, env=git_env())
    for row in p.stdout.decode("utf-8", "replace").splitlines():
        if row.startswith(rev + ":"):
            row = row[len(rev) + 1:]
        path, _, rest = row.partition(":")
        yield path, rest.partition(":")[2]


class GrepCache:
    """(commit, fixed string) -> the files of SCOPE holding it at that commit: `git grep -l` over
    the headers and core .c files costs a second of CPU, so every answer is kept, in memory and
    per commit in $XDG_CACHE_HOME/mmreview/rules/grep-<commit>.json."""

    def __init__(self):
        self.mem: dict[str, dict[str, list[str]]] = {}
        self.dirty: set[str] = set()
        self.lock = threading.RLock()       # reviews may run side by side in one process

    def _dir(self) -> Path | None:
        try:
            from mmreview.common.paths import rules_dir
            return rules_dir()
        except Exception:           # no home: an in-memory cache still works
            return None

    def _load(self, rev: str) -> dict[str, list[str]]:
        if rev not in self.mem:
            got: dict[str, list[str]] = {}
            d = self._dir()
            if d is not None:
                try:
                    got = json.loads((d / f"grep-{rev}.json").read_text())
                except (OSError, ValueError):
                    got = {}
            self.mem[rev] = got if isinstance(got, dict) else {}
        return self.mem[rev]

    def files(self, repo, rev: str, strings: set[str]) -> dict[str, list[str]]:
        with self.lock:
            return self._files(repo, rev, strings)

    def _files(self, repo, rev: str, strings: set[str]) -> dict[str, list[str]]:
        known = self._load(rev)
        todo = sorted(s for s in strings if s not in known)
        # few strings per search: git grep -F slows down badly with hundreds of patterns
        for i in range(0, len(todo), 8):
            chunk = todo[i:i + 8]
            found: dict[str, set[str]] = {t: set() for t in chunk}
            for path, text in grep_lines(repo, rev, chunk, SCOPE):
                for t in chunk:
                    if t in text:
                        found[t].add(path)
            for t in chunk:
                known[t] = sorted(found[t])
            self.dirty.add(rev)
        return {s: known.get(s, []) for s in strings}

    def cached(self, rev: str) -> dict:
        with self.lock:
            return self._load(rev)

    def put(self, rev: str, key: str, value) -> None:
        with self.lock:
            self._load(rev)[key] = value
            self.dirty.add(rev)

    def save(self) -> None:
        with self.lock:
            self._save()

    def _save(self) -> None:
        d = self._dir()
        if d is None:
            return
        for rev in self.dirty:
            try:
                d.mkdir(parents=True, exist_ok=True)
                tmp = d / f".grep-{rev}.{os.getpid()}.tmp"
                tmp.write_text(json.dumps(self.mem[rev], sort_keys=True))
                os.replace(tmp, d / f"grep-{rev}.json")
            except OSError:
                pass                # a read-only cache: the next run searches again
        self.dirty.clear()


_GREP = GrepCache()


class DefinitionLookup:
    """Mixed into RuleContext: it needs cfile(), patches, base_rev, tip_rev, checkout and _defs."""

    def series_c_paths(self) -> list[str]:
        """The .c and .h files the series changes (as the tip names them)."""
        return sorted({f.path for pc in self.patches for f in pc.files if f.is_c})

    def _rev_index(self, rev: str) -> int:
        if rev == self.base_rev:
            return -1
        return next((i for i, pc in enumerate(self.patches) if pc.rev_after == rev), len(self.patches) - 1)

    def _as_of(self, rev: str, path: str) -> str:
        """The revision whose `path` is the one at `rev`: the last patch up to `rev` that touched it,
        or the base (a series' files share their parse across the patches that leave them alone)."""
        key = ("as-of", rev, path)
        if key not in self._defs:
            out = self.base_rev
            for pc in self.patches[:self._rev_index(rev) + 1]:
                if any(f.path == path for f in pc.files):
                    out = pc.rev_after
            self._defs[key] = out
        return self._defs[key]

    def _series_index(self) -> dict[str, list[str]]:
        """name -> the files of the series that define it at the base or after any patch."""
        if "series-index" not in self._defs:
            index: dict[str, list[str]] = {}
            paths = set(self.series_c_paths())
            revs = [(self.base_rev, p) for p in paths] + \
                [(pc.rev_after, f.path) for pc in self.patches for f in pc.files if f.path in paths]
            for rev, path in revs:
                cf = self.cfile(rev, path)
                for name in (definitions(cf, path) if cf is not None else {}):
                    if path not in index.setdefault(name, []):
                        index[name].append(path)
            self._defs["series-index"] = index
        return self._defs["series-index"]

    def series_definition(self, name: str, rev: str | None = None) -> Definition | None:
        """`name` as a file the series changes defines it at `rev` (default the tip), with the patch
        that last changed it (0: the series did not)."""
        rev = rev or self.tip_rev
        for path in self._series_index().get(name, []):
            cf = self.cfile(self._as_of(rev, path), path)
            d = definitions(cf, path).get(name) if cf is not None else None
            if d is not None:
                return self._attributed(d, rev)
        return None

    def series_definitions(self, rev: str | None = None) -> list[Definition]:
        """Every macro and function of the files the series changes, as they stand at `rev`."""
        rev = rev or self.tip_rev
        out = []
        for path in self.series_c_paths():
            cf = self.cfile(self._as_of(rev, path), path)
            if cf is not None:
                out += definitions(cf, path).values()
        return out

    def _changed_by(self, d: Definition, rev: str) -> int:
        """The last patch up to `rev` that changed definition `d` (0: none)."""
        last = 0
        cf = self.cfile(self.base_rev, d.path)
        prev = definitions(cf, d.path).get(d.name) if cf else None
        prev_text = prev.text if prev else None
        for pc in self.patches[:self._rev_index(rev) + 1]:
            if not any(f.path == d.path for f in pc.files):
                continue
            cf = self.cfile(pc.rev_after, d.path)
            now = definitions(cf, d.path).get(d.name) if cf else None
            text = now.text if now else None
            if text != prev_text:
                last = pc.number
            prev_text = text
        return last

    def definition(self, name: str, rev: str | None = None) -> Definition | None:
        """Where `name` is defined: in a file the series changes, as it stands at `rev` (default the
        tip), else in the tree at the base wherever the tree keeps it (a header's macro or static
        inline, a function of any core .c file)."""
        return self.series_definition(name, rev) or self.base_definition(name)

    def _attributed(self, d: Definition, rev: str | None) -> Definition:
        """`d` with the patch that wrote it, for this series (a parsed file and its definitions are
        shared by every series with the same content: the copy is this series' own)."""
        key = ("attributed", d.path, d.name, d.line, rev or self.tip_rev)
        if key not in self._defs:
            self._defs[key] = dataclasses.replace(d, patch=self._changed_by(d, rev or self.tip_rev))
        return self._defs[key]

    def base_definition(self, name: str) -> Definition | None:
        key = ("base-def", name)
        if key not in self._defs:
            found = None
            hits = _GREP.files(self.checkout.path, self.base_rev, {f"{name}(", f"define {name}"})
            paths = sorted(set().union(*hits.values()), key=_home_first)
            for path in paths:
                cf = self.cfile(self.base_rev, path)
                d = definitions(cf, path).get(name) if cf else None
                if d is not None and (found is None or (d.kind != "macro" and d.end - d.line > found.end - found.line
                                                        and found.kind != "macro")):
                    found = d
                    if d.path.startswith(("include/linux/", "mm/")):
                        break
            self._defs[key] = found
        return self._defs[key]

    def tree_names(self, tokens: set[str], headers_only: bool = False) -> dict[str, str]:
        """name -> file of the tree's own definitions at the base whose body names one of `tokens`:
        what mentioning() finds at the base, kept per base commit like the searches (a run then
        parses only the files of the names it meets)."""
        key = f"names{':h' if headers_only else ''}:" + ",".join(sorted(tokens))
        known = _GREP.cached(self.base_rev)
        if not isinstance(known.get(key), dict):
            names: dict[str, str] = {}
            for defs in self.mentioning(tokens, headers_only=headers_only, series=False).values():
                for d, _ in defs:
                    names.setdefault(d.name, d.path)
            _GREP.put(self.base_rev, key, names)
        return dict(known[key])

    def mentioning(self, tokens: set[str], rev: str | None = None, base: bool = True,
                   headers_only: bool = False, series: bool = True) -> dict[str, list[tuple[Definition, int]]]:
        """token -> [(definition, line)]: the macros and functions whose body names the token (in
        code: comments and strings do not count), in the files the series changes at `rev` (default
        the tip) and (unless `base` is False) in the tree at the base.  A definition the series
        changes is taken as the series leaves it."""
        out: dict[str, list[tuple[Definition, int]]] = {t: [] for t in tokens}
        named = re.compile("|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True)) or "(?!)")
        seen: set[tuple[str, str]] = set()
        hits = _GREP.files(self.checkout.path, self.base_rev, set(tokens)) if base else {}
        pools = [[d for d in self.series_definitions(rev) if not headers_only or d.path.endswith(".h")]] \
            if series else []
        series_paths = set(self.series_c_paths()) if series else set()
        for t in tokens:
            for path in hits.get(t, []):
                if path in series_paths or (headers_only and not path.endswith(".h")):
                    continue
                cf = self.cfile(self.base_rev, path)
                if cf is not None:
                    pools.append(list(definitions(cf, path).values()))
        for pool in pools:
            for d in pool:
                if (d.path, d.name) in seen:
                    continue
                if not named.search(d.source()):
                    continue
                seen.add((d.path, d.name))
                if d.path in series_paths:
                    d = self._attributed(d, rev)
                for ident, ln in identifiers(d.fn):
                    if ident in out and ident != d.name and all(x[0] is not d for x in out[ident]):
                        out[ident].append((d, ln))
        return out


def _home_first(path: str) -> tuple:
    """Generic headers and mm before architecture code."""
    return (not path.startswith(("include/linux/", "mm/")), not path.startswith("include/"), path)
