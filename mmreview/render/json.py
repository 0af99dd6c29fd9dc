"""The Review as versioned JSON (mmreview/review/schema.json): what `mmreview report` reads back."""

from __future__ import annotations

from mmreview.review.model import Review


def render_json(review: Review, **_opts) -> str:
    return review.dumps()
