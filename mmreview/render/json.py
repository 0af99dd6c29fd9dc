"""The Review as versioned JSON (docs/review-schema.json): what `mmreview report` reads back."""

from __future__ import annotations

from ..review import Review


def render_json(review: Review, **_opts) -> str:
    return review.dumps()
