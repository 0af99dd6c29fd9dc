"""The mailing-list reply, parsed back with Python's email package."""

from __future__ import annotations

import email
import email.policy
import re

import pytest

import conftest_review as samples
from mmreview.render import render

ALL = {**{f"constructed-{k}": v for k, v in samples.ALL.items()},
       **{f"real-{k}": v for k, v in samples.REAL.items()}}


def parse(text: str):
    return email.message_from_string(text, policy=email.policy.default)


@pytest.mark.parametrize("name", sorted(ALL))
def test_headers_thread_under_the_cover_letter(name):
    review = ALL[name]()
    msg = parse(render(review, "email", sender="Rae Viewer <rae@example.org>"))
    s = review.series
    assert msg["Subject"] == f"Re: {s.reply_subject}"
    assert s.reply_subject.startswith("[PATCH") and "0/" in s.reply_subject   # the cover letter's
    assert msg["In-Reply-To"] == f"<{s.cover_message_id}>" == msg["References"]
    assert msg["From"] == "Rae Viewer <rae@example.org>"
    assert str(msg["To"]) == s.author
    cc = [a.addr_spec for a in msg["Cc"].addresses] if msg["Cc"] else []
    for want in s.to + s.cc:
        assert email.utils.parseaddr(want)[1] in cc
    assert re.fullmatch(r"<[^<>@\s]+@example\.org>", msg["Message-ID"])
    assert msg.get_content_type() == "text/plain"


@pytest.mark.parametrize("name", sorted(ALL))
def test_body_verdict_first_wrapped_and_tag_pairing(name):
    review = ALL[name]()
    msg = parse(render(review, "email"))
    body = msg.get_content()
    lines = body.splitlines()
    verdict = next(i for i, l in enumerate(lines) if l.startswith("Verdict: "))
    assert verdict < 6 and review.verdict.split("-")[0] in lines[verdict].lower().replace(" ", "-")
    for l in lines:
        if not l.startswith(">"):          # quoted patch lines are the patch's own
            assert len(l) <= 80, l
    reported = [i for i, l in enumerate(lines) if l.startswith("Reported-by:")]
    closes = [i for i, l in enumerate(lines) if l.startswith("Closes:")]
    # The tags credit what the review fails on (--fail-on), not a series that does not apply.
    if not (review.failing_findings() or review.new_failures()):
        assert reported == [] and closes == []
    else:
        assert len(reported) == 1 and closes == [reported[0] + 1]
        msgid = msg["Message-ID"].strip("<>")
        assert lines[closes[0]] == f"Closes: https://lore.kernel.org/r/{msgid}/"
    assert "-- " in lines                     # signature separator with its space


def test_no_cover_letter_threads_under_patch_1():
    import copy
    from mmreview.review.model import Review
    r = Review.from_json(copy.deepcopy(samples.constructed_clean().to_json()))
    r.series.cover_message_id = None
    r.series.cover_subject = None
    r.series.reply_subject = "[PATCH 1/3] mm/vma: fix the kernel-doc header of vma_complete()"
    msg = parse(render(r, "email"))
    assert msg["In-Reply-To"] == f"<{r.series.patches[0].message_id}>"
    assert msg["Subject"] == "Re: [PATCH 1/3] mm/vma: fix the kernel-doc header of vma_complete()"


def test_findings_are_quoted_against_the_patch_lines():
    review = samples.real("rules-lock-order-pos.mbox")
    body = parse(render(review, "email")).get_content()
    f = review.findings[0]
    assert "> diff --git a/mm/vma.c b/mm/vma.c" in body
    quoted = [l for l in body.splitlines() if l.startswith("> ")]
    assert any(l.startswith("> @@ ") for l in quoted)
    assert "> +\t\tanon_vma_lock_write(vp->anon_vma);" in quoted
    # the comment follows the quote, as in a reply
    assert body.index("> +\t\tanon_vma_lock_write") < body.index(f"error: {f.rule}:")
    assert "[PATCH 1/2]" in body


def test_failing_cells_carry_the_reproduce_command():
    body = parse(render(samples.constructed_regression(), "email")).get_content()
    assert "x86_64 radix-tree/xarray: NEW FAILURE" in body
    assert "To reproduce:" in body
    assert "make -C tools/testing/radix-tree" in body
    # a pre-existing failure is listed but does not count as a regression
    assert "pre-existing" in body


def test_identity_from_config(tmp_path, monkeypatch):
    conf = tmp_path / "mmreview"
    conf.mkdir()
    (conf / "config.toml").write_text('[email]\nfrom = "Robo <robo@lab.example>"\n'
                                      'reported_by = "mm robot <mm-robot@lab.example>"\n'
                                      'closes_url = "https://lab.example/r/"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    msg = parse(render(samples.constructed_findings(), "email"))
    body = msg.get_content()
    assert msg["From"] == "Robo <robo@lab.example>"
    assert "Reported-by: mm robot <mm-robot@lab.example>" in body
    assert f"Closes: https://lab.example/r/{msg['Message-ID'].strip('<>')}/" in body


def test_reproduce_command_survives_wrapping():
    """The reproduce command is cut to 80 columns, and a shell still reads the same words."""
    import shlex
    review = samples.REAL["regression"]()
    cmd = review.cells[0].tip.command
    assert len(cmd) > 80                       # the real one is long: it carries CFLAGS
    body = parse(render(review, "email")).get_content()
    lines = body.splitlines()
    start = lines.index("  To reproduce:") + 1
    end = lines.index("", start)
    block = lines[start:end]
    assert all(len(l) <= 80 for l in block)
    joined = "\n".join(block).replace("\\\n", "")      # what sh does with line continuations

    def words(s):
        lex = shlex.shlex(s, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        return list(lex)
    assert words(joined) == words(cmd)
