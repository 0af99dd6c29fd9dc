"""The matrix's result cache: a cell's RunResult under the hash of its build's inputs.

~/.cache/mmreview/results/<key>/<binary>.json, where the key (build.input_key) hashes the
suite's inputs as in the tree (git object ids), the target file, flags and compiler version: a
second series on the same base reruns nothing for the base, and a tip whose suite inputs equal
the base's reuses the base's results.  Timeouts are not cached (they may be load), and neither
is anything from an interrupted run (the scheduler does not put those).
"""

from __future__ import annotations

import json
import os
import secrets

from mmreview.common.paths import results_dir
from mmreview.matrix.results import NOT_RUN, TIMEOUT, RunResult


def get(key: str, binary: str) -> RunResult | None:
    try:
        d = json.loads((results_dir() / key / f"{binary}.json").read_text())
        r = RunResult(**d)
    except (OSError, ValueError, TypeError):
        return None
    r.cached = True
    return r


def put(key: str, r: RunResult) -> None:
    if r.state in (TIMEOUT, NOT_RUN):
        return
    d = results_dir() / key
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{r.binary}.{os.getpid()}.{secrets.token_hex(3)}"
    tmp.write_text(json.dumps({**r.to_json(), "cached": False}))
    os.replace(tmp, d / f"{r.binary}.json")
