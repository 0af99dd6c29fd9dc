"""How long each report is: lines of the email body, the markdown comment and the terminal
report (100 columns) of the four saved real reviews in tests/data (issue 22).

    python benchmarks/report_lines.py              # this checkout's renderers
    /other/venv/bin/python benchmarks/report_lines.py   # another version's, on the same reviews

A reply a maintainer reads to the end is short: the clean one is a note (<= 25 lines).
"""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

from mmreview.render import render
from mmreview.review.model import Review

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def main() -> None:
    print(f"{'review':<11} {'email body':>10} {'markdown':>9} {'terminal':>9}")
    for name in ("clean", "warning", "error", "regression"):
        review = Review.loads((DATA / f"review-{name}.json").read_text(), name)
        mail = email.message_from_bytes(render(review, "email").encode(), policy=email.policy.default)
        counts = [len(mail.get_content().splitlines()),
                  len(render(review, "markdown").splitlines()),
                  len(render(review, "terminal", width=100).splitlines())]
        print(f"{name:<11} {counts[0]:>10} {counts[1]:>9} {counts[2]:>9}")


if __name__ == "__main__":
    main()
