"""Bad input and I/O faults through the real CLI: one line on stderr, the documented exit code,
never a traceback (issue 11, item 4).

CASES is the corpus: one row per case, `id, command line, exit code, what the line must say`.
The command line names inputs as {placeholders}; `inputs` below makes each of them (a file,
a FIFO, a directory, a git repository) once per module.  Adding a case is adding a row, and,
if it needs a new input, a maker.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import MMREVIEW, REPO, SERIES, git, not_a_kernel_repo
from mmreview.intake.diffs import check_diff, unquote_path
from mmreview.intake.mail import split_mbox
from mmreview.common.textsafe import visible

# ---------------------------------------------------------------- inputs


def _messages(name: str = "clean-3.mbox") -> list[bytes]:
    """The messages of a sample mbox (cover first), each with its From_ line."""
    return [(fl or b"From x Mon Sep 17 00:00:00 2001") + b"\n" + raw
            for raw, fl in split_mbox((SERIES / name).read_bytes())]


def _mbox(*msgs: bytes) -> bytes:
    return b"".join(m.rstrip(b"\n") + b"\n\n" for m in msgs)


def _subject(msg: bytes, new: bytes) -> bytes:
    return re.sub(rb"^Subject: .*(\n[ \t].*)*$", b"Subject: " + new, msg, count=1, flags=re.M)


def _header(msg: bytes, name: bytes, value: bytes | None) -> bytes:
    """Set (or with None drop) a header of `msg`."""
    head, body = msg.split(b"\n\n", 1)
    head = re.sub(rb"^" + name + rb": .*(\n[ \t].*)*\n?", b"", head + b"\n", flags=re.M | re.I).rstrip(b"\n")
    if value is not None:
        head += b"\n" + name + b": " + value
    return head + b"\n\n" + body


def _lone(subject: bytes = b"[PATCH] mm/vma: fix the kernel-doc header of vma_complete()") -> bytes:
    """Patch 1 of clean-3 as a lone patch, with an explicit 8-bit UTF-8 body."""
    msg = _subject(_messages()[1], subject)
    msg = _header(msg, b"MIME-Version", b"1.0")
    msg = _header(msg, b"Content-Type", b"text/plain; charset=UTF-8")
    return _header(msg, b"Content-Transfer-Encoding", b"8bit")


def _nested(depth: int) -> bytes:
    """The lone patch inside `depth` levels of multipart/mixed."""
    msg = _lone()
    head, body = msg.split(b"\n\n", 1)
    head = re.sub(rb"^Content-(Type|Transfer-Encoding): .*\n?", b"", head + b"\n", flags=re.M).rstrip(b"\n")
    out = [head + b'\nContent-Type: multipart/mixed; boundary="b0"\n']
    for i in range(depth - 1):
        out.append(b'--b%d\nContent-Type: multipart/mixed; boundary="b%d"\n' % (i, i + 1))
    out.append(b"--b%d\nContent-Type: text/plain; charset=UTF-8\n\n" % (depth - 1) + body)
    out += [b"--b%d--" % i for i in range(depth - 1, -1, -1)]
    return b"\n".join(out) + b"\n"


def _nul_late() -> bytes:
    """A NUL byte in the commit message, past the first 64 KiB that intake sniffs for binary."""
    msg = _lone()
    filler = b"".join(b"filler line %05d of a long commit message\n" % i for i in range(2000))
    return msg.replace(b"\n---\n", b"\n" + filler + b"a NUL: \x00\n---\n", 1)


def _reply_only() -> bytes:
    replies = [m for m in _messages("thread-v2.mbox") if re.search(rb"^Subject: Re:", m, re.M)]
    assert replies, "thread-v2.mbox has replies"
    return _mbox(*replies)


def _git_repo(d: Path) -> Path:
    return not_a_kernel_repo(d)


def _review(d: Path) -> Path:
    """A real saved review, for the `report` cases."""
    out = d / "review.json"
    proc = subprocess.run([MMREVIEW, "check", str(SERIES / "clean-3.mbox"), "--profile", "rules", "-q",
                           "--json-out", str(out)], capture_output=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr.decode()
    return out


def _maildir(d: Path) -> Path:
    md = d / "maildir"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    return md


def _dir_of(d: Path, name: str, files: dict[str, bytes]) -> Path:
    sub = d / name
    sub.mkdir()
    for fname, data in files.items():
        (sub / fname).write_bytes(data)
    return sub


def _bad_gitconfig(d: Path) -> Path:
    home = d / "home-bad-gitconfig"
    home.mkdir()
    (home / ".gitconfig").write_text("[core\nthis is not git config\n")
    return home


MSGS = _messages()
COVER, P1, P2, P3 = MSGS

# name -> bytes of a file to write, or a function of the directory that makes it and returns its path
MAKERS = {
    "clean": SERIES / "clean-3.mbox",
    "missing2": SERIES / "bad" / "missing-2.mbox",
    "corrupt": SERIES / "bad" / "corrupt-hunk.mbox",
    "empty": b"",
    "blank": b"\n \n\t\n",
    "binary": bytes(range(256)) * 16,
    "text": b"This is a shopping list, not a patch.\nmilk\neggs\n",
    "plain_mail": b"From: Ada <ada@example.org>\nSubject: lunch?\nMessage-ID: <l@x>\n\nNoon?\n",
    "reply_only": _reply_only(),
    "prose_first": b"Hi all, here is my series:\n\n" + _mbox(*MSGS),
    "dup": _mbox(COVER, P1, P2, _subject(P3, b"[PATCH 2/3] a second patch two")),   # its own Message-ID
    "mixed_totals": _mbox(COVER, P1, _subject(P2, b"[PATCH 2/4] mm: two of four"), P3),
    "beyond": _mbox(COVER, P1, P2, P3, _header(_subject(P3, b"[PATCH 4/3] one too many"),
                                               b"Message-ID", b"<four-of-three@example.org>")),
    "mixed_versions": _mbox(COVER, P1, _subject(P2, b"[PATCH v2 2/3] mm: v2 alone"),
                            _subject(P3, b"[PATCH v2 3/3] mm: v2 three")),
    "counter_huge": _mbox(_subject(P1, b"[PATCH 1/99999] mm/vma: kernel-doc")),
    "counter_9999": _mbox(_subject(P1, b"[PATCH 1/9999] mm/vma: kernel-doc")),
    "counter_zero": _mbox(_subject(P1, b"[PATCH 1/0] mm/vma: kernel-doc")),
    "no_diff": _mbox(_subject(re.sub(rb"(?s)\n---\n.*", b"\n", P1), b"[PATCH 1/1] mm: words only")),
    "hunk_header": _lone().replace(b"\n@@ -", b"\n@@ -x", 1),
    "header_no_hunk": re.sub(rb"(?s)(\+\+\+ b/mm/vma\.c\n).*?(\n-- \n|\Z)", rb"\1\2", _lone(), count=1),
    "deep_1000": _nested(1000),
    "deep_30": _nested(30),
    "nul_late": _nul_late(),
    "long_line": _lone().replace(b"\n+", b"\n+" + b"x" * (2 << 20), 1),
    "charset": _header(_lone(), b"Content-Type", b"text/plain; charset=x-no-such-charset"),
    "from_garbage": _header(_lone(), b"From", b"<<<not an address"),
    "from_name_only": _header(_lone(), b"From", b"Just A Name"),
    "from_missing": _header(_lone(), b"From", None),
    "big": lambda d: _big(d),
    "fifo": lambda d: _fifo(d),
    "dir_none": lambda d: _dir_of(d, "dir-none", {"README": b"no patches here\n"}),
    "dir_empty_patch": lambda d: _dir_of(d, "dir-empty-patch", {"0001-x.patch": b""}),
    "maildir": _maildir,
    "not_kernel": _git_repo,
    "plain_dir": lambda d: _dir_of(d, "plain-dir", {"x": b"x"}),
    "review": _review,
    "not_json": b"this is not json\n",
    "json_other": b'{"hello": "world"}\n',
    "bad_gitconfig_home": _bad_gitconfig,
    "a_file": b"a regular file\n",
}


def _big(d: Path) -> Path:
    p = d / "big.mbox"
    with open(p, "wb") as fh:        # 2 MiB of mail: over a 1 MiB limit set for the case
        fh.write(_lone())
        fh.write(b"x" * (2 << 20))
    return p


def _fifo(d: Path) -> Path:
    p = d / "fifo"
    os.mkfifo(p)
    return p


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, kernel_tree) -> dict[str, str]:
    d = tmp_path_factory.mktemp("bad-input")
    out = {"tmp": str(d), "tree": str(kernel_tree), "series": str(SERIES)}
    for name, what in MAKERS.items():
        if isinstance(what, Path):
            out[name] = str(what)
        elif isinstance(what, bytes):
            (d / f"{name}.mbox").write_bytes(what)
            out[name] = str(d / f"{name}.mbox")
        else:
            out[name] = str(what(d))
    return out


# ---------------------------------------------------------------- the corpus


@dataclass
class Case:
    id: str
    args: str                    # the command line after `mmreview`, with {placeholders}
    code: int
    says: str                    # a fragment of the one stderr line
    env: dict = field(default_factory=dict)
    stdin: str | None = None     # an input name to feed on stdin; "closed" starts with fd 0 closed
    stdout: str | None = None    # "full": stdout is /dev/full


def C(id, args, code, says, **kw) -> Case:
    return Case(id, args, code, says, **kw)


CASES = [
    # --- usage: typer's errors, one line like the rest
    C("no-such-command", "bogus", 2, "no such command 'bogus'"),
    C("missing-argument", "series", 2, "series: missing argument 'SERIES'"),
    C("unknown-option", "series {clean} --bogus", 2, "no such option: --bogus"),
    C("option-without-value", "check {clean} --arch", 2, "'--arch' requires an argument"),
    C("not-an-integer", "check {clean} --jobs many", 2, "'--jobs'"),
    C("extra-argument", "series {clean} extra", 2, "unexpected extra argument"),
    C("unknown-profile", "check {clean} --profile fast -q", 2, "--profile fast"),
    C("unknown-format", "check {clean} --format pdf -q", 2, "--format pdf: unknown format"),
    C("unknown-fail-on", "check {clean} --fail-on panic -q", 2, "--fail-on panic"),
    C("unknown-target", "check {clean} --arch vax -q", 2, "--arch vax: unknown architecture"),
    C("build-timeout-zero", "test {clean} --build-timeout 0", 2, "--build-timeout"),
    C("build-timeout-not-a-number", "check {clean} --build-timeout soon -q", 2, "--build-timeout"),
    C("unknown-target-rules-only", "check {clean} --arch vax --profile rules -q", 2,
      "--arch vax: unknown architecture"),
    C("test-unknown-profile", "test {clean} --profile fast", 2, "--profile fast"),
    C("test-unknown-target", "test {clean} --arch vax", 2, "--arch vax: unknown architecture"),
    C("test-unknown-suite", "test {clean} --suite kunit", 2, "--suite kunit: unknown suite"),
    C("test-unknown-binary", "test {clean} --binary nope", 2, "--binary nope: unknown binary"),
    C("test-zero-jobs", "test {clean} --jobs 0", 2, "--jobs 0: must be at least 1"),
    C("rules-unknown-rule", "rules --explain no-such-rule", 2, "no such rule"),
    C("rules-ignore-unknown", "rules {clean} --ignore no-such-rule", 2, "--ignore no-such-rule"),
    C("rules-nothing-to-do", "rules", 2, "give a SERIES"),
    C("unknown-kernel", "tree path --kernel 9.9", 2, "kernel 9.9: unknown"),
    C("report-unknown-format", "report {review} --format pdf", 2, "--format pdf"),
    C("report-unknown-fail-on", "report {review} --fail-on panic", 2, "--fail-on panic"),
    # --- SERIES that is no series
    C("no-such-file", "series {tmp}/does-not-exist.mbox", 2, "no such file or directory"),
    C("empty-file", "series {empty}", 2, "empty"),
    C("blank-file", "series {blank}", 2, "empty"),
    C("binary-file", "series {binary}", 2, "binary data"),
    C("text-not-mail", "series {text}", 2, "not mail"),
    C("prose-before-mbox", "series {prose_first}", 2, "text before the first message"),
    C("mail-without-patch", "series {plain_mail}", 2, "no patch in 1 message"),
    C("reply-only-thread", "series {reply_only}", 2, "no patch in"),
    C("dev-zero", "series /dev/zero", 2, "a character device, not a file"),
    C("dev-null", "series /dev/null", 2, "a character device, not a file"),
    C("named-fifo", "series {fifo}", 2, "a named FIFO"),
    C("closed-stdin", "series -", 2, "stdin is closed", stdin="closed"),
    C("empty-stdin", "series -", 2, "empty stdin", stdin="empty"),
    C("rules-closed-stdin", "rules -", 2, "stdin is closed", stdin="closed"),
    C("check-closed-stdin", "check - --profile rules -q", 2, "stdin is closed", stdin="closed"),
    C("apply-empty-stdin", "apply -", 2, "empty stdin", stdin="empty"),
    C("stdin-not-mail", "series -", 2, "not mail", stdin="text"),
    C("over-input-limit", "series {big}", 2, "input limit of 1 MiB", env={"MMREVIEW_MAX_INPUT_MB": "1"}),
    C("stdin-over-input-limit", "series -", 2, "input limit of 1 MiB", stdin="big",
      env={"MMREVIEW_MAX_INPUT_MB": "1"}),
    C("bad-input-limit", "series {clean}", 2, "MMREVIEW_MAX_INPUT_MB=lots", env={"MMREVIEW_MAX_INPUT_MB": "lots"}),
    C("dir-without-patches", "series {dir_none}", 2, "no .patch or .eml files"),
    C("dir-empty-patch", "series {dir_empty_patch}", 2, "empty"),
    C("empty-maildir", "series {maildir}", 2, "empty maildir"),
    # --- a series with a hole in it
    C("missing-patch", "series {missing2}", 2, "missing patch 2/3"),
    C("corrupt-hunk", "series {corrupt}", 2, "corrupt diff"),
    C("duplicate-numbers", "series {dup}", 2, "duplicate 2/3"),
    C("mixed-totals", "series {mixed_totals}", 2, "mixes totals 3 and 4"),
    C("beyond-total", "series {beyond}", 2, "4/3 beyond its total"),
    C("mixed-versions", "series {mixed_versions}", 2, "v2 is missing patch 1/3"),
    C("counter-out-of-range", "series {counter_huge}", 2, "patch counter 1/99999 is out of range"),
    C("counter-9999", "series {counter_9999}", 2, "missing 9998 of its 9999 patches: 2/9999, 3/9999"),
    C("counter-total-zero", "series {counter_zero}", 2, "1/0 beyond its total"),
    C("numbered-without-diff", "series {no_diff}", 2, "has no diff"),
    C("malformed-hunk-header", "series {hunk_header}", 2, "malformed hunk header"),
    C("file-header-without-hunks", "series {header_no_hunk}", 2, "file header without hunks"),
    # --- mail that parses but cannot be a patch: bad input naming the patch, not "did not apply"
    C("mime-1000-deep", "series {deep_1000}", 2, "MIME parts nested too deep"),
    C("mime-30-deep", "series {deep_30}", 2, "MIME parts nested"),
    C("nul-past-64k", "apply {nul_late}", 2, "patch 1/1 (mm/vma: fix the kernel-doc header of "
                                             "vma_complete()): it contains a NUL byte"),
    C("line-of-megabytes", "apply {long_line}", 2, "it has a line of 2097"),
    C("unknown-charset", "apply {charset}", 2, "patch 1/1 (mm/vma: fix the kernel-doc header of "
                                               "vma_complete()): unknown charset 'x-no-such-charset'"),
    C("unparsable-from", "check {from_garbage} --profile rules -q", 2,
      "its author (From: '<<<not an address') has no e-mail address"),
    C("from-without-address", "apply {from_name_only}", 2, "(From: 'Just A Name') has no e-mail address"),
    C("no-from", "rules {from_missing}", 2, "patch 1/1 (mm/vma: fix the kernel-doc header of "
                                            "vma_complete()): it has no From:"),
    # --- the tree, the base, the range
    C("tree-does-not-exist", "series {clean} --tree {tmp}/no-tree", 2, "no such directory"),
    C("tree-is-a-file", "apply {clean} --tree {a_file}", 2, "not a directory"),
    C("tree-not-git", "apply {clean} --tree {plain_dir}", 2, "not a git repository"),
    C("tree-not-kernel", "apply {clean} --tree {not_kernel}", 2, "not a kernel tree"),
    C("tree-unknown-kernel", "apply {clean} --tree 9.9", 2, "nor a kernel mmreview knows"),
    C("tree-not-provisioned", "series {clean} --tree 6.1", 2, "kernel 6.1 is not provisioned",
      env={"XDG_CACHE_HOME": "{tmp}/empty-cache"}),
    C("default-tree-not-provisioned", "apply {clean}", 2, "the default tree is not provisioned",
      env={"XDG_CACHE_HOME": "{tmp}/empty-cache"}),
    C("range-bad-revision", "series no-such-branch..HEAD", 2, "'no-such-branch' is no revision"),
    C("range-empty", "series HEAD..HEAD", 2, "the range has no commits"),
    C("base-does-not-exist", "apply {clean} --base 0123456789abcdef", 2, "--base 0123456789abcdef"),
    C("check-base-does-not-exist", "check {clean} --base no-such-rev --profile rules -q", 2,
      "--base no-such-rev"),
    # --- saved reviews
    C("report-no-such-file", "report {tmp}/nope.json", 2, "no such file"),
    C("report-not-json", "report {not_json}", 2, "not JSON"),
    C("report-other-json", "report {json_other}", 2, "not an mmreview review"),
    C("report-directory", "report {tmp}", 2, "a directory, not a file"),
    C("report-dev-zero", "report /dev/zero", 2, "a character device"),
    C("report-closed-stdin", "report -", 2, "stdin is closed", stdin="closed"),
    # --- where the output goes
    C("output-to-proc", "report {review} -o /proc/x --format markdown", 2, "-o /proc/x: cannot write"),
    C("output-to-directory", "report {review} -o {tmp} --format markdown", 2, "is a directory"),
    C("output-no-such-dir", "report {review} -o {tmp}/no/such/dir.md", 2, "no such directory"),
    C("check-output-no-such-dir", "check {clean} -o {tmp}/no/such/r.md --profile rules -q", 2,
      "no such directory"),
    C("output-disk-full", "report {review} -o /dev/full --format json", 3, "-o /dev/full: cannot write: "
                                                                           "No space left on device"),
    C("stdout-disk-full", "report {review} --format json", 3, "No space left on device", stdout="full"),
    C("json-out-to-proc", "check {clean} --profile rules -q --json-out /proc/x", 2, "--json-out /proc/x"),
    C("json-out-to-directory", "check {clean} --profile rules -q --json-out {tmp}", 2, "is a directory"),
    C("json-out-disk-full", "check {clean} --profile rules -q --json-out /dev/full", 3,
      "--json-out /dev/full: cannot write: No space left on device"),
    # --- the machine: cache, git
    C("cache-in-proc", "check {clean} --profile rules -q --tree {tree}", 3, "the cache directory is not usable",
      env={"XDG_CACHE_HOME": "/proc/x"}),
    C("cache-is-a-file", "check {clean} --profile rules -q --tree {tree}", 3,
      "the cache directory is not usable", env={"XDG_CACHE_HOME": "{a_file}"}),
    C("git-missing", "apply {clean}", 3, "git: not found on PATH", env={"PATH": "/nonexistent"}),
    C("git-missing-range", "series HEAD~1..HEAD", 3, "git: not found on PATH", env={"PATH": "/nonexistent"}),
    C("git-failing", "apply {clean} --tree {tree}", 3, "bad config line 1",
      env={"HOME": "{bad_gitconfig_home}", "XDG_CONFIG_HOME": "{bad_gitconfig_home}"}),
]


def _run(case: Case, inputs: dict[str, str]) -> subprocess.CompletedProcess:
    args = [a.format(**inputs) for a in shlex.split(case.args)]
    env = {**os.environ, **{k: v.format(**inputs) for k, v in case.env.items()}}
    env.pop("MMREVIEW_DEBUG", None)
    stdin: object = subprocess.DEVNULL
    preexec = None
    if case.stdin == "closed":
        preexec = lambda: os.close(0)   # noqa: E731 -- a process started with no stdin at all
    elif case.stdin == "empty":
        stdin = subprocess.DEVNULL
    elif case.stdin:
        stdin = open(inputs[case.stdin], "rb")
    stdout = open("/dev/full", "wb") if case.stdout == "full" else subprocess.PIPE
    try:
        return subprocess.run([MMREVIEW, *args], stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                              env=env, cwd=REPO, timeout=120, preexec_fn=preexec)
    finally:
        for fh in (stdin, stdout):
            if hasattr(fh, "close"):
                fh.close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, inputs):
    proc = _run(case, inputs)
    err = proc.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{err[:2000]}"
    line = lines[0]
    assert line.startswith("mmreview: error: "), line
    assert case.says.format(**inputs) in line, line
    assert len(line) < 500, f"a {len(line)}-character error line"
    assert proc.returncode == case.code, (proc.returncode, line)


def test_corpus_size():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES), "case ids are unique"


# ---------------------------------------------------------------- a full disk, a read-only cache


@pytest.fixture
def tiny_fs(tmp_path: Path):
    """A 64 KiB tmpfs (root only: skipped elsewhere; /dev/full covers the same write path)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(fs: Path) -> None:
    with open(fs / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass


def test_full_disk_leaves_no_partial_review(tiny_fs: Path, inputs):
    """--json-out on a full disk: exit 3, one line, and no 0-byte or partial review behind
    (nor the temporary file it was written to)."""
    _fill(tiny_fs)
    out = tiny_fs / "review.json"
    proc = subprocess.run([MMREVIEW, "check", inputs["clean"], "--profile", "rules", "-q",
                           "--json-out", str(out)], capture_output=True, cwd=REPO)
    err = proc.stderr.decode()
    assert proc.returncode == 3, err
    assert err.count("\n") == 1 and "No space left on device" in err, err
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["filler"]


def test_full_disk_keeps_the_old_review(tiny_fs: Path, inputs):
    """Writing over an existing review on a full disk leaves the old one whole."""
    old = Path(inputs["review"]).read_bytes()
    out = tiny_fs / "review.json"
    out.write_bytes(old)
    _fill(tiny_fs)
    proc = subprocess.run([MMREVIEW, "report", inputs["review"], "--format", "json", "-o", str(out)],
                          capture_output=True, cwd=REPO)
    assert proc.returncode == 3, proc.stderr.decode()
    assert out.read_bytes() == old
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["filler", "review.json"]


def test_read_only_cache(tmp_path: Path, inputs):
    """A cache directory on a read-only file system: exit 3 naming XDG_CACHE_HOME."""
    ro = tmp_path / "ro-cache"
    ro.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        proc = subprocess.run([MMREVIEW, "check", inputs["clean"], "--profile", "rules", "-q",
                               "--tree", inputs["tree"]], capture_output=True, cwd=REPO,
                              env={**os.environ, "XDG_CACHE_HOME": str(ro)})
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 3, err
    assert err.count("\n") == 1 and "Read-only file system" in err and "XDG_CACHE_HOME" in err, err


def test_output_over_a_device_is_not_replaced(inputs):
    """-o /dev/null writes into the device: renaming a temporary file over it would replace it."""
    before = os.stat("/dev/null")
    proc = subprocess.run([MMREVIEW, "report", inputs["review"], "--format", "json", "-o", "/dev/null"],
                          capture_output=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr.decode()
    after = os.stat("/dev/null")
    assert (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


def test_output_is_written_whole(tmp_path: Path, inputs):
    out = tmp_path / "r.json"
    proc = subprocess.run([MMREVIEW, "report", inputs["review"], "--format", "json", "-o", str(out)],
                          capture_output=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(out.read_text())["schema_version"]
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]      # no temporary file left


def test_process_substitution_is_read(inputs):
    """A pipe the shell hands over (/dev/fd/N from `<(...)`) is a stream, not a named FIFO."""
    proc = subprocess.run(["bash", "-c", f'"{MMREVIEW}" series <(cat "{inputs["clean"]}")'],
                          capture_output=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"patches: 3" in proc.stdout


def test_pipe_closed_by_reader_is_quiet(inputs):
    """`mmreview series X | head -1`: no BrokenPipe traceback, no rich SystemExit(1)."""
    proc = subprocess.run(["bash", "-c", f'"{MMREVIEW}" series "{inputs["clean"]}" | head -c 10 >/dev/null;'
                                         ' exit ${PIPESTATUS[0]}'], capture_output=True, cwd=REPO)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()


# ---------------------------------------------------------------- series strings on the terminal

HOSTILE = b"[PATCH] mm/vma: [/] [bold red]x\x1b]0;owned\x07 \x1b[31mred :bug: \xe2\x80\xaeevil"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("hostile") / "hostile.mbox"
    p.write_bytes(_mbox(_lone(HOSTILE)))
    return p


@pytest.mark.parametrize("argv,shown", [
    (["series"], True), (["apply"], True), (["rules"], False), (["check", "--profile", "rules", "-q"], True),
    (["check", "--profile", "rules", "-q", "--format", "terse"], False),
], ids=["series", "apply", "rules", "check-terminal", "check-terse"])
def test_markup_and_escapes_from_a_series(hostile: Path, argv, shown, kernel_tree, tmp_path):
    """A subject with rich markup, an OSC title sequence, a colour sequence and a bidi override:
    no MarkupError, none of it reaches the terminal raw, all of it still shown (as escapes).
    FORCE_COLOR makes rich treat the pipe as the terminal it would otherwise be writing to."""
    env = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": "300"}
    proc = subprocess.run([MMREVIEW, argv[0], str(hostile), *argv[1:], "--json-out" if argv[0] == "check"
                           else "--tree", str(tmp_path / "r.json") if argv[0] == "check" else str(kernel_tree)],
                          capture_output=True, cwd=REPO, env=env)
    out = proc.stdout.decode("utf-8")
    assert proc.returncode == 0, proc.stderr.decode()
    assert "\x07" not in out and "\u202e" not in out and "\x1b]" not in out
    # rich's own colours are "\x1b[...m"; the series' "\x1b[31m" is shown as text.
    if shown:      # (rules and terse name no subject when nothing is found)
        assert "\\x1b]0;owned\\x07" in out and "\\x1b[31mred" in out and "\\u202eevil" in out
        assert "[/]" in out and ":bug:" in out


def test_terminal_report_of_hostile_review(hostile: Path, tmp_path):
    """`report --format terminal` on a saved review renders the same strings safely."""
    saved = tmp_path / "r.json"
    proc = subprocess.run([MMREVIEW, "check", str(hostile), "--profile", "rules", "-q", "--json-out", str(saved)],
                          capture_output=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr.decode()
    proc = subprocess.run([MMREVIEW, "report", str(saved)], capture_output=True, cwd=REPO,
                          env={**os.environ, "FORCE_COLOR": "1"})
    out = proc.stdout.decode()
    assert proc.returncode == 0 and "\x07" not in out and "\\x1b]0;owned\\x07" in out


def test_errors_naming_a_subject_are_one_visible_line(tmp_path):
    """An error that quotes a subject with a newline-like and ESC characters stays one line."""
    p = tmp_path / "s.mbox"
    p.write_bytes(_mbox(_subject(P1, b"[PATCH 1/99999] evil\x1b[2J\x1b[Hsubject")))
    proc = subprocess.run([MMREVIEW, "series", str(p)], capture_output=True, cwd=REPO)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1 and "\x1b" not in err
    assert "evil\\x1b[2J\\x1b[Hsubject" in err


def test_visible():
    assert visible("plain zoë [bold]") == "plain zoë [bold]"
    assert visible("a\x1b[31mb\x07\x7f\x9b") == "a\\x1b[31mb\\x07\\x7f\\x9b"
    assert visible("tab\there", keep="\t") == "tab\there"
    assert visible("new\nline") == "new\\nline"
    assert visible("\u202eevil\u2066") == "\\u202eevil\\u2066"


# ---------------------------------------------------------------- non-ASCII file names

def test_octal_quoted_file_names():
    assert unquote_path('"mm/zo\\303\\253.c"') == "mm/zoë.c"
    assert unquote_path('"a/x\\ty\\"z\\\\"') == 'a/x\ty"z\\'
    assert unquote_path('"bad\\377.c"') == "bad\\xff.c"     # not UTF-8: shown, not replaced
    assert unquote_path("mm/plain.c") == "mm/plain.c"
    diff = ('diff --git "a/mm/zo\\303\\253.c" "b/mm/zo\\303\\253.c"\n'
            "index 1111111..2222222 100644\n"
            '--- "a/mm/zo\\303\\253.c"\n'
            '+++ "b/mm/zo\\303\\253.c"\n'
            "@@ -1 +1 @@\n-old\n+new\n")
    assert check_diff(diff) == ["mm/zoë.c"]
    renamed = ('diff --git "a/mm/caf\\303\\251.c" "b/mm/th\\303\\251.c"\n'
               "similarity index 100%\n"
               'rename from "mm/caf\\303\\251.c"\n'
               'rename to "mm/th\\303\\251.c"\n')
    assert check_diff(renamed) == ["mm/thé.c"]


def test_non_ascii_file_name_through_git(user_clone: Path, tmp_path):
    """A real `git format-patch` of a file named mm/zoë.c: intake names it as git does."""
    (user_clone / "mm" / "zoë.c").write_text("int zoe;\n")
    git(user_clone, "add", "-f", "mm/zoë.c")     # the tarball's .gitignore ignores everything
    git(user_clone, "commit", "--quiet", "-m", "mm: add zoë\n\nSigned-off-by: Test Author <test@example.org>")
    mbox = tmp_path / "zoe.mbox"
    mbox.write_bytes(subprocess.run(["git", "-C", str(user_clone), "format-patch", "--stdout", "-1"],
                                    capture_output=True, check=True).stdout)
    assert b'"b/mm/zo\\303\\253.c"' in mbox.read_bytes()       # git did quote it
    proc = subprocess.run([MMREVIEW, "series", str(mbox), "--json"], capture_output=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["patches"][0]["files"] == ["mm/zoë.c"]



def test_relative_xdg_cache_home_is_ignored(tmp_path):
    """XDG says a relative XDG_CACHE_HOME is invalid: it would put the cache wherever mmreview
    was started.  The cache stays under $HOME/.cache."""
    proc = subprocess.run([MMREVIEW, "tree", "path"], capture_output=True, cwd=tmp_path,
                          env={**os.environ, "XDG_CACHE_HOME": "relative-cache", "HOME": str(tmp_path)})
    assert proc.stdout.decode().strip() == str(tmp_path / ".cache/mmreview/trees/linux-6.12.git")
    assert not (tmp_path / "relative-cache").exists()


@pytest.mark.parametrize("argv", [["series", "--json"], ["series"]], ids=["json", "table"])
def test_closed_stdout(argv, inputs):
    """`mmreview series X >&-`: the output goes nowhere, quietly, as the shell user asked."""
    proc = subprocess.run([MMREVIEW, argv[0], inputs["clean"], *argv[1:]], stderr=subprocess.PIPE,
                          cwd=REPO, preexec_fn=lambda: os.close(1))
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()
