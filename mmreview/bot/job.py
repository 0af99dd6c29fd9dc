"""One review, in its own process: `python -m mmreview.bot.job ARGS` runs run_check and writes
the Review as JSON.  The bot runs several at once, can cancel one (SIGTERM: a newer version
arrived, a maintainer said stop), and loses none when it is killed itself (they die with it,
PR_SET_PDEATHSIG, and are run again).

Exit: the review's own code (0 clean, 1 findings, 3 incomplete) when the JSON is written; 2 the
series is not one mmreview reads; 3 infrastructure, with one line on stderr saying what.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from mmreview.common.errors import EXIT_INFRA
from mmreview.common.exits import guarded
from mmreview.common.textsafe import one_line


def _terminate(_sig, _frame):
    raise KeyboardInterrupt        # unwinds run_check: its checkout and cluster client close


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mmreview.bot.job")
    ap.add_argument("--series", required=True)
    ap.add_argument("--tree", required=True)
    ap.add_argument("--profile", default="rules")
    ap.add_argument("--arch")
    ap.add_argument("--cluster")
    ap.add_argument("--out", required=True)
    ap.add_argument("--tree-name", required=True, help="what reports call the tree (no host path)")
    ap.add_argument("--source-name", required=True, help="what reports call the series")
    ap.add_argument("--note", action="append", default=[])
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    from mmreview.review.pipeline import CheckRequest, run_check
    req = CheckRequest(source=a.series, tree=a.tree, profile=a.profile, arch=a.arch,
                       cluster=a.cluster, notes=list(a.note))
    try:
        review, code = guarded(lambda: run_check(req), interrupted="cancelled")
    except Exception as exc:   # noqa: BLE001 -- a failure of ours, not the series': infrastructure
        print(one_line(f"mmreview: internal error: {type(exc).__name__}: {exc}"), file=sys.stderr)
        return EXIT_INFRA
    if code is not None:
        return code
    # What the bot publishes names no path of this host.
    review.tree.path = a.tree_name
    # HEAD of the bot's clone is the operator's branch: say so where the base is explained.
    review.tree.base_reason = review.tree.base_reason.replace("the tree's HEAD",
                                                              f"the head of {a.tree_name}")
    review.series.source = a.source_name
    out = Path(a.out)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(review.dumps())
    tmp.replace(out)
    return review.exit_code


if __name__ == "__main__":
    sys.exit(main())
