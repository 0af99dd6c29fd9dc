"""apt against a configuration of mmreview's own: its sources list, lists and archives under a
directory of the cache, Debian's archive keyring for signatures, the system's sources and package
caches never read or written.  Used to fetch a kernel's linux-source .deb (kernel/table.py) and
liburcu's source package for riscv64 (riscv_urcu.py).
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def prepare(base: Path, source_lines: list[str]) -> list[str]:
    """Lay out a private apt configuration in `base` holding `source_lines` (each
    "deb URI SUITE main" or "deb-src ..."; signed-by is added); return apt's `-o` options for it."""
    for d in ("lists/partial", "archives/partial", "sources.list.d", "preferences.d"):
        (base / d).mkdir(parents=True, exist_ok=True)
    lines = [f"{kind} [signed-by={KEYRING}] {rest}" for kind, _, rest in
             (line.partition(" ") for line in source_lines)]
    (base / "sources.list").write_text("\n".join(lines) + "\n")
    opts: list[str] = []
    for key, val in (("Dir::Etc::SourceList", base / "sources.list"),
                     ("Dir::Etc::SourceParts", base / "sources.list.d"),
                     ("Dir::Etc::Preferences", base / "preferences"),
                     ("Dir::Etc::PreferencesParts", base / "preferences.d"),
                     ("Dir::State::Lists", base / "lists"),
                     ("Dir::Cache::Archives", base / "archives"),
                     # keep the system's package caches untouched
                     ("Dir::Cache::pkgcache", ""), ("Dir::Cache::srcpkgcache", ""),
                     ("APT::Architectures::", native_arch()),
                     ("Acquire::Languages", "none")):
        opts += ["-o", f"{key}={val}"]
    return opts


def give_to_apt_sandbox(download_dir: Path) -> None:
    """As root, apt downloads as the unprivileged _apt user, which must be able to write there
    (under a 0700 home it cannot reach it anyway; apt then says so and downloads as root)."""
    if os.geteuid() != 0:
        return
    try:
        os.chown(download_dir, pwd.getpwnam("_apt").pw_uid, -1)
    except KeyError:
        pass


def native_arch() -> str:
    try:
        out = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    return out.strip() or "amd64"
