"""The results site: static files in one directory, served by any web server.

`index.html` lists every reviewed series, newest first, with its verdict; `r/<review>.html` is one
review: the verdict, the patches as applied, the matrix as a grid (targets x binaries, each cell
base -> tip, coloured by verdict), the findings with their lines, the logs of failures with the
command that reproduces each, and a link to the thread.  `r/<review>.json` is the Review itself
(`mmreview report` renders it again).  Review pages never change once written; the index is
rewritten (atomically) when something new is reviewed or mailed.  Nothing of the host appears:
the Review names the tree by its branch and the series by its number (job.py).
"""

from __future__ import annotations

import html
import time
from pathlib import Path

from mmreview.bot.config import Config
from mmreview.bot.store import Store
from mmreview.render import VERDICT_LABEL, cell_detail, clean_log, grid
from mmreview.review.model import Review

_COLOUR = {"clean": "#1a7f37", "findings": "#9a6700", "regressions": "#cf222e",
           "did-not-apply": "#8250df", "incomplete": "#57606a"}
_CELL = {"pass": "#dafbe1", "new-failure": "#ffd7d5", "changed-failure": "#ffd7d5",
         "pre-existing": "#fff1c5", "fixed": "#ddf4ff", "not-run": "#eaeef2"}
_CSS = """body{font-family:sans-serif;margin:2em;max-width:75em;color:#1f2328}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #d0d7de;padding:.3em .6em;
text-align:left;vertical-align:top}pre{background:#f6f8fa;padding:.6em;overflow-x:auto}
.verdict{color:#fff;padding:.15em .5em;border-radius:.3em;font-weight:bold}
.cell{font-family:monospace;font-size:90%}h1{font-size:150%}"""


def review_url(cfg: Config, review_id: int) -> str:
    return f"{cfg.site_url.rstrip('/')}/r/{review_id}.html"


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _badge(verdict: str) -> str:
    return (f'<span class="verdict" style="background:{_COLOUR.get(verdict, "#57606a")}">'
            f'{_e(verdict)}</span>')


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}"
            f"</title><style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def thread_link(cfg: Config, store: Store, posting: int) -> str | None:
    row = store.one("SELECT msgid, inbox FROM messages WHERE posting=? ORDER BY number LIMIT 1", posting)
    if row is None:
        return None
    inbox = next((i for i in cfg.inboxes if i.name == row.inbox and (i.web or i.url)), None)
    return f"{(inbox.web or inbox.url).rstrip('/')}/{row.msgid}/" if inbox else None


def review_page(review: Review, thread: str | None) -> str:
    s, t = review.series, review.tree
    out = [f"<h1>{_badge(review.verdict)} {_e(s.title)}</h1>",
           f"<p>{_e(review.summary())}</p>",
           f"<p>v{s.version}, {len(s.patches)} patch{'es' if len(s.patches) != 1 else ''} by "
           f"{_e(s.author)}" + (f' &middot; <a href="{_e(thread)}">the thread</a>' if thread else "")
           + "</p>",
           f"<p>Base <code>{_e(t.base_sha[:12])}</code> ({_e(t.base_reason)}) on {_e(t.path)}, "
           f"tip <code>{_e(t.tip_sha[:12])}</code>; profile {_e(review.profile)}; "
           f"{_e(review.confinement())}.</p>",
           "<h2>Patches</h2><table><tr><th>#</th><th>patch</th><th>applied</th><th>findings</th></tr>"]
    for p in review.apply:
        files = f" ({_e(', '.join(p.conflict_files))})" if p.conflict_files else ""
        out.append(f"<tr><td>{p.number}</td><td>{_e(p.subject)}</td><td>{_e(p.state)}{files}</td>"
                   f"<td>{len(review.findings_for(p.number))}</td></tr>")
    out.append("</table>")
    failed = review.failed_patch
    if failed and failed.message:
        out.append(f"<pre>{_e(clean_log(failed.message))}</pre>")
    g = grid(review)
    out.append("<h2>Matrix</h2>")
    if g.targets:
        out.append("<table class=\"matrix\"><tr><th>target</th>"
                   + "".join(f"<th>{_e(su)}/{_e(b)}</th>" for su, b in g.columns) + "</tr>")
        for target in g.targets:
            row = [f"<th>{_e(target)}</th>"]
            for col in g.columns:
                c = g.get(target, col)
                if c is None:
                    row.append("<td></td>")
                    continue
                base = c.base.state if c.base else "-"
                row.append(f'<td class="cell" style="background:{_CELL.get(c.verdict, "#fff")}" '
                           f'title="{_e(cell_detail(c))}">{_e(base)} &rarr; {_e(c.tip.state)}<br>'
                           f"<b>{_e(VERDICT_LABEL.get(c.verdict, c.verdict))}</b></td>")
            out.append("<tr>" + "".join(row) + "</tr>")
        out.append("</table>")
    else:
        out.append("<p>Not run: " + _e("; ".join(n for n in review.notes if "matrix" in n)
                                        or "no matrix in this profile") + ".</p>")
    if review.findings:
        out.append("<h2>Findings</h2>")
        for f in review.findings:
            out.append(f"<h3>{_e(f.severity)}: {_e(f.rule)} &mdash; patch {f.patch}, "
                       f"{_e(f.file)}:{f.line}</h3><p>{_e(f.message)}</p>")
            if f.excerpt:
                out.append("<pre>" + _e("\n".join("+" + line for line in f.excerpt)) + "</pre>")
            info = review.rule(f.rule)
            if info and info.rationale:
                out.append(f"<p><i>{_e(info.rationale)}</i>"
                           + (f" ({_e(info.source)})" if info.source else "") + "</p>")
    bad = [c for c in review.cells if c.verdict in ("new-failure", "changed-failure")]
    if bad:
        out.append("<h2>Failures</h2>")
        for c in bad:
            out.append(f"<h3>{_e(c.target)} {_e(c.suite)}/{_e(c.binary)}: {_e(cell_detail(c))}</h3>")
            if c.tip.excerpt:
                out.append("<pre>" + _e("\n".join(clean_log(x) for x in c.tip.excerpt)) + "</pre>")
            if c.tip.command:
                out.append(f"<p>To reproduce:</p><pre>{_e(c.tip.command)}</pre>")
    if review.notes:
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in review.notes) + "</ul>")
    out.append('<p><a href="../index.html">All reviews</a> &middot; <a href="REVIEW.json">the review '
               "as JSON</a> (<code>mmreview report</code> renders it)</p>")
    return _page(f"{review.verdict}: {s.title}", "\n".join(out))


def publish(cfg: Config, store: Store) -> Path:
    site = cfg.site_dir
    rows = store.all("SELECT r.id, r.posting, r.finished_at, r.verdict, r.summary, r.review_json, "
                     "p.title, p.version, p.author, (SELECT group_concat(state) FROM outbox o WHERE "
                     "o.posting=p.id AND o.kind='review') AS mail, (SELECT CASE WHEN h.summary IS NULL THEN "
                     "'held for a summary' WHEN h.summary=0 THEN NULL ELSE 'in a summary' END FROM held h "
                     "WHERE h.review=r.id) AS held FROM reviews r JOIN postings p ON "
                     "p.id=r.posting WHERE r.state='done' ORDER BY r.finished_at DESC, r.id DESC")
    items = []
    for r in rows:
        page = site / "r" / f"{r.id}.html"
        if not page.exists():
            review = Review.loads(r.review_json, f"review {r.id}")
            _write(site / "r" / f"{r.id}.json", r.review_json)
            _write(page, review_page(review, thread_link(cfg, store, r.posting))
                   .replace("REVIEW.json", f"{r.id}.json"))
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.finished_at))
        items.append(f'<tr><td>{when}</td><td>{_badge(r.verdict)}</td><td><a href="r/{r.id}.html">'
                     f"{_e(r.title)}</a> v{r.version}</td><td>{_e(r.author)}</td>"
                     f"<td>{_e(r.summary)}</td><td>{_e(r.mail or r.held or 'no mail')}</td></tr>")
    body = ("<h1>mmreview: series reviewed</h1><p>Newest first. Updated "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.</p>"
            "<table><tr><th>reviewed</th><th>verdict</th><th>series</th><th>author</th>"
            "<th>summary</th><th>mail</th></tr>" + "".join(items) + "</table>")
    _write(site / "index.html", _page("mmreview: series reviewed", body))
    return site
