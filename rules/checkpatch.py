"""checkpatch: the tree's own scripts/checkpatch.pl on each patch of the series."""

import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mmreview.errors import InfraError

ID = "checkpatch"
SEVERITY = "warning"       # each finding keeps checkpatch's own level (ERROR -> error, WARNING -> warning)
TITLE = "scripts/checkpatch.pl of the tree under review"
RATIONALE = """
Every mm series is expected to be checkpatch-clean before it is posted (Documentation/process/
submitting-patches.rst), and maintainers bounce series that are not.  The tree's own checkpatch.pl is
run, so its rules are those of the kernel version the series targets; its ERROR and WARNING lines become
findings named after their types (checkpatch:LONG_LINE, ...), so they can be ignored one by one.
"""
SOURCE = "Documentation/process/submitting-patches.rst and scripts/checkpatch.pl of the tree"

FILES = ["scripts/checkpatch.pl", "scripts/spelling.txt", "scripts/const_structs.checkpatch"]
_HEAD = re.compile(r"^(ERROR|WARNING):([A-Z0-9_]+): (.*)$")
_WHERE = re.compile(r"^#\d+: FILE: (.+?):(\d+):")


def parse_output(text: str):
    """[(level, type, message, file|None, line|0, excerpt)] from checkpatch --show-types output."""
    out = []
    cur = None
    for line in text.splitlines():
        m = _HEAD.match(line)
        if m:
            cur = [m.group(1), m.group(2), m.group(3), None, 0, []]
            out.append(cur)
            continue
        if cur is None:
            continue
        if not line.strip():
            cur = None
            continue
        w = _WHERE.match(line)
        if w and cur[3] is None:
            cur[3], cur[4] = w.group(1), int(w.group(2))
        elif line.startswith("+") and not cur[5]:
            cur[5].append(line[1:].rstrip())
    return [tuple(c) for c in out]


def run_checkpatch(script: Path, mbox: bytes, cwd: Path) -> str:
    perl = shutil.which("perl")
    if perl is None:
        raise InfraError("perl", "not installed; checkpatch.pl needs it (apt-get install perl)")
    proc = subprocess.run([perl, str(script), "--no-tree", "--show-types", "--no-summary", "--color=never",
                           "-"], input=mbox, capture_output=True, cwd=cwd, timeout=300)
    return proc.stdout.decode("utf-8", "replace")


def check(ctx):
    if not ctx.patches:
        return []
    with tempfile.TemporaryDirectory(prefix="mmreview-checkpatch-") as tmp:
        ctx.checkout.export(ctx.tip_rev, tmp, FILES)
        script = Path(tmp) / "scripts" / "checkpatch.pl"
        if not script.exists():
            ctx.skip(None, "the tree has no scripts/checkpatch.pl")
            return []
        patches = {p.number: p for p in ctx.series.patches}
        todo = [(pc, patches[pc.number]) for pc in ctx.patches]
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            outputs = list(pool.map(lambda t: run_checkpatch(script, t[1].mbox, Path(tmp)), todo))
    out = []
    for (pc, _), text in zip(todo, outputs):
        for level, typ, msg, path, line, excerpt in parse_output(text):
            fn = None
            if path and line and path.endswith((".c", ".h")):
                cf = ctx.cfile(pc.rev_after, path)
                found = cf.function_at(line) if cf else None
                fn = found.name if found else None
            f = ctx.finding(pc, path or "", line, msg, function=fn, excerpt=excerpt,
                            rule=f"checkpatch:{typ}", severity=level.lower())
            out.append(f)
    return out
