"""The matrix on every kernel a contributor works on: Debian's 6.1, 6.12 and 7.3, really imported
(tests/conftest.py's tree_61 / tree_73 fixtures, once per machine), really built and run.

What a suite builds and which binaries it has come from each tree; a failure is pre-existing only
when it is the same failure at base and tip; a failure of mmreview's own recipe is never a
verdict; and the reproduce command a report prints rebuilds the cell in a full checkout.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import GIT_ID, SERIES, git, mmreview
from mmreview.matrix import suites
from mmreview.matrix import targets as T


def check(series: Path | str, tree: Path, *args: str) -> tuple[int, dict, str]:
    """`mmreview check --format json`: (exit code, the Review as JSON, stderr)."""
    proc = mmreview("check", str(series), "--tree", str(tree), "--format", "json", "--quiet",
                    "--json-out", os.devnull, *args, timeout=3000)
    err = proc.stderr.decode(errors="replace")
    assert proc.stdout, err
    return proc.returncode, json.loads(proc.stdout), err


def cells(review: dict) -> dict[tuple[str, str], dict]:
    return {(c["target"], c["binary"]): c for c in review["cells"]}


def one_patch(tree: Path, tmp_path: Path, path: str, old: str, new: str, subject: str) -> Path:
    """A one-patch series made at the tree's HEAD (a scratch clone; the tree is not written)."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", "--shared", "--no-checkout", str(tree), str(clone))
    git(clone, "sparse-checkout", "set", "--no-cone", f"/{path}")
    git(clone, "checkout", "--quiet", "master")
    f = clone / path
    text = f.read_text()
    assert text.count(old) == 1, old
    f.write_text(text.replace(old, new))
    git(clone, "commit", "--quiet", "-a", "-m", f"{subject}\n\nA test series.\n\nSigned-off-by: Test Author <test@example.org>")
    mbox = tmp_path / "series.mbox"
    mbox.write_text(git(clone, "format-patch", "--stdout", "-1") + "\n")
    return mbox


@pytest.fixture(scope="module", autouse=True)
def targets_present():
    for name in ("x86_64", "i386", "arm64"):
        a = T.availability(T.get_target(name))
        assert a.available, f"set-up: {name} is not available: {a.reason} ({a.apt_command})"


# ---------------------------------------------------------------- 7.3: today's mainline

def test_73_quick_profile_natively_every_cell_passes(tree_73):
    code, review, err = check(SERIES / "kernel-7.3-maple-doc.mbox", tree_73, "--arch", "x86_64,i386")
    assert code == 0, (review["summary"], err)
    got = cells(review)
    assert set(got) == {(t, b) for t in ("x86_64", "i386") for b in ("xarray", "multiorder", "vma")}
    for (target, binary), c in got.items():
        assert c["verdict"] == "pass" and c["base"] == "pass" and c["tip"] == "pass", c
    # 7.3's vma suite is another program than 6.12's (main.c, tests/*.c): its own count line.
    vma = got[("x86_64", "vma")]["tip_result"]
    assert vma["total"] >= 20 and vma["passed"] == vma["total"]
    xa = got[("i386", "xarray")]["tip_result"]
    assert xa["total"] > 1000 and xa["passed"] == xa["total"]
    assert review["verdict"] == "clean" and review["summary"] == "clean"


def test_73_under_qemu_arm64(tree_73):
    code, review, err = check(SERIES / "kernel-7.3-maple-doc.mbox", tree_73, "--arch", "arm64",
                              "--binary", "vma,multiorder")
    assert code == 0, (review["summary"], err)
    for c in review["cells"]:
        assert c["verdict"] == "pass", c
        assert c["tip_result"]["sanitizers"] == []
    vma = cells(review)[("arm64", "vma")]["tip_result"]
    assert vma["total"] >= 20 and vma["passed"] == vma["total"]


def test_73_binaries_come_from_its_makefile(tree_73):
    assert suites.tree_binaries(tree_73, "HEAD", suites.RADIX_TREE) == \
        ["main", "idr-test", "multiorder", "xarray", "maple"]
    assert suites.tree_binaries(tree_73, "HEAD", suites.VMA) == ["vma"]
    # What 7.3's vma build reads in mm/ (vma_init.c and vma_exec.c are new since 6.12).
    keyed = suites.key_paths(tree_73, "HEAD", suites.VMA)
    assert {"mm/vma.c", "mm/vma_init.c", "mm/vma_exec.c", "lib/maple_tree.c"} <= set(keyed)
    assert "include" in keyed and "mm/memory.c" not in keyed


def _full_checkout(tree: Path, dest: Path) -> Path:
    git(dest.parent, "clone", "--quiet", "--shared", str(tree), str(dest))
    return dest


def _cell_command(review: dict, target: str, binary: str) -> str:
    return cells(review)[(target, binary)]["tip_result"]["command"]


def test_73_export_and_reproduce_commands_match_a_full_checkout(tree_73, tmp_path):
    """The export misses nothing the build reads: a full checkout built with the command the
    report prints gives the same result (native with sanitizers, and arm64 through the wrapper
    on make's stdin); and every file the compiler read is covered by the cache key."""
    series = SERIES / "kernel-7.3-maple-doc.mbox"
    code, review, err = check(series, tree_73, "--arch", "x86_64,arm64", "--binary", "vma,xarray")
    assert code == 0, (review["summary"], err)
    full = _full_checkout(tree_73, tmp_path / "linux")
    git(full, "am", "--quiet", "--empty=drop", str(series))   # drop the cover letter
    env = {**os.environ, **GIT_ID, "LC_ALL": "C"}
    for target, binary in (("x86_64", "vma"), ("x86_64", "xarray"), ("arm64", "vma")):
        cmd = _cell_command(review, target, binary)
        subprocess.run(["git", "clean", "-fdxq", "tools/testing"], cwd=full, check=True)
        proc = subprocess.run(["bash", "-c", cmd], cwd=full, capture_output=True, env=env, timeout=1200)
        out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        assert proc.returncode == 0, f"{target} {binary}: {cmd}\n{out[-3000:]}"
        ours = cells(review)[(target, binary)]["tip_result"]
        m = re.search(r"(\d+) tests run, (\d+) passed" if binary == "vma"
                      else r"XArray: (\d+) of (\d+) tests passed", out)
        assert m, out[-2000:]
        run_, passed = (int(m.group(1)), int(m.group(2))) if binary == "vma" else \
            (int(m.group(2)), int(m.group(1)))
        assert (passed, run_) == (ours["passed"], ours["total"]), (target, binary)

    # What the compiler read (its dependency files), as tree paths: all under the cache key.
    subprocess.run(["git", "clean", "-fdxq", "tools/testing"], cwd=full, check=True)
    for suite in (suites.VMA, suites.RADIX_TREE):
        d = full / suite.directory
        subprocess.run(["make", "-C", str(d), "EXTRA_CFLAGS=-MMD", "vma" if suite is suites.VMA
                        else "xarray"], capture_output=True, check=True, env=env, timeout=1200)
        read: set[str] = set()
        for dep in glob.glob(str(d / "*.d")):
            words = Path(dep).read_text().replace("\\\n", " ").split()
            for w in words:
                if w.endswith(":") or w.startswith("/"):
                    continue
                p = os.path.relpath(os.path.realpath(d / w), os.path.realpath(full))
                if not p.startswith(".."):
                    read.add(p)
        assert len(read) > 50
        keyed = suites.key_paths(full, "HEAD", suite)
        uncovered = [p for p in read if not p.startswith(suite.directory + "/")
                     and not any(p == k or p.startswith(k + "/") for k in keyed)]
        assert not uncovered, (suite.name, uncovered)


# ---------------------------------------------------------------- 6.1 LTS

def test_61_radix_tree_fails_at_base_for_the_trees_own_reason_and_a_fix_reads_fixed(radix_tree_unbuilt_61):
    code, review, err = check(SERIES / "kernel-6.1-tools-fallthrough.mbox", radix_tree_unbuilt_61,
                              "--arch", "x86_64,i386")
    assert code == 0, (review["summary"], err)
    got = cells(review)
    for target in ("x86_64", "i386"):
        for binary in ("xarray", "multiorder"):
            c = got[(target, binary)]
            assert c["verdict"] == "fixed", c
            assert "'fallthrough' undeclared" in c["base_result"]["reason"].replace("‘", "'").replace("’", "'")
        xa = got[(target, "xarray")]["tip_result"]
        assert xa["total"] > 1000 and xa["passed"] == xa["total"]
        vma = got[(target, "vma")]
        # 6.1 has no tools/testing/vma: not run, and why; not a failure.
        assert vma["verdict"] == "not-run" and vma["tip"] == "not-run"
        assert "has no tools/testing/vma" in vma["tip_result"]["reason"]
        assert not vma["tip_result"].get("infra")


def test_61_says_loudly_when_nothing_could_be_tested(radix_tree_unbuilt_61, tmp_path):
    tree = radix_tree_unbuilt_61
    mbox = one_patch(tree, tmp_path, "lib/maple_tree.c", " * Maple Tree implementation\n",
                     " * Maple Tree implementation (6.1)\n", "maple_tree: a comment")
    code, review, err = check(mbox, tree, "--arch", "x86_64", "--binary", "xarray,vma")
    got = cells(review)
    assert got[("x86_64", "xarray")]["verdict"] == "pre-existing"
    assert (code, review["verdict"]) == (0, "untested"), err
    assert review["summary"].startswith("untested: no matrix cell could give a verdict: ")
    text = mmreview("report", "-", "--format", "terminal", input=json.dumps(review).encode())
    assert "UNTESTED" in text.stdout.decode()
    again = mmreview("report", "-", "--format", "terse", "--fail-on", "error,untested",
                     input=json.dumps(review).encode())
    assert again.returncode == 1, again.stderr


# ---------------------------------------------------------------- 6.12: what a verdict means

def test_a_different_failure_at_tip_is_a_changed_failure_not_preexisting(vma_unlinked):
    """A base whose vma suite does not link (vma_close); a series that adds a second undefined
    reference (ksm_add_vma, which the harness lacks) must not hide behind it."""
    code, review, err = check(SERIES / "matrix-changed-failure.mbox", vma_unlinked,
                              "--arch", "x86_64", "--binary", "vma")
    assert code == 1, err
    c = cells(review)[("x86_64", "vma")]
    assert c["verdict"] == "changed-failure", c
    assert "ksm_add_vma" in c["tip_result"]["signature"]
    assert "ksm_add_vma" not in c["base_result"]["signature"]
    assert review["verdict"] == "regressions"
    text = mmreview("report", "-", "--format", "terminal", input=json.dumps(review).encode()).stdout.decode()
    text = " ".join(text.split())          # the report wraps at 100 columns
    assert "CHANGED FAILURE" in text and "newly: mm/vma.c: undefined reference to `ksm_add_vma'" in text


def test_the_same_failure_at_tip_stays_preexisting_in_one_line(vma_unlinked):
    code, review, err = check(SERIES / "clean-3.mbox", vma_unlinked, "--arch", "x86_64,i386",
                              "--binary", "vma")
    assert code == 0, err
    for c in review["cells"]:
        assert c["verdict"] == "pre-existing"
        assert c["base_result"]["signature"] == c["tip_result"]["signature"]
    text = mmreview("report", "-", "--format", "terminal", input=json.dumps(review).encode()).stdout.decode()
    flat = " ".join(text.split())            # the report wraps at 100 columns
    assert flat.count("pre-existing vma/vma") == 1, text
    assert re.search(r"pre-existing vma/vma on x86_64, i386: build-failed: mm/vma\.c:\d+: undefined "
                     r"reference to `vma_close' \(same as base\)", flat), flat
    assert "collect2" not in text            # no linker log for what is not the series' doing


def test_a_gap_in_mmreviews_export_is_incomplete_not_a_verdict(kernel_tree):
    """mm/vma.c includes a header from kernel/, which no suite build is given: mmreview cannot
    judge that build, and says so (exit 3) instead of calling it the tree's or the series'."""
    code, review, err = check(SERIES / "matrix-recipe-gap.mbox", kernel_tree, "--arch", "x86_64",
                              "--binary", "vma")
    assert code == 3, err
    c = cells(review)[("x86_64", "vma")]
    assert c["verdict"] == "not-run" and c["tip_result"]["infra"] is True
    assert "kernel/sched/sched.h" in c["tip_result"]["reason"]
    assert review["verdict"] == "incomplete" and "kernel/sched/sched.h" in review["summary"]


def test_a_series_outside_the_suites_reuses_the_base_results(kernel_tree, tmp_path):
    """mm/memory.c is read by no suite: the tip's inputs are the base's, so nothing reruns."""
    mbox = one_patch(kernel_tree, tmp_path, "mm/memory.c", "#include <linux/kernel_stat.h>\n",
                     "#include <linux/kernel_stat.h>\n/* a comment */\n", "mm/memory: a comment")
    proc = mmreview("test", str(mbox), "--tree", str(kernel_tree), "--arch", "x86_64",
                    "--binary", "multiorder", "--json", timeout=1200)
    assert proc.returncode == 0, proc.stderr.decode()
    (c,) = json.loads(proc.stdout)
    assert c["verdict"] == "pass" and c["tip_result"] == c["base_result"]
    assert "@tip" not in proc.stderr.decode()        # one build and run served base and tip


# ---------------------------------------------------------------- a user's own checkout

def test_a_users_own_73_checkout_with_local_changes_as_the_quick_pre_push_hook(tree_73, tmp_path):
    """A full, non-bare 7.3 checkout on a topic branch with uncommitted work: the quick hook
    (rules + native matrix) blocks a push whose commit breaks xarray, and leaves the work tree,
    index and branch as they were."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "--quiet", "--bare", "--shared", str(tree_73), str(remote))
    repo = _full_checkout(tree_73, tmp_path / "linux")
    git(repo, "remote", "add", "pushto", str(remote))
    git(repo, "fetch", "--quiet", "pushto")
    git(repo, "checkout", "--quiet", "-b", "topic")
    assert mmreview("hook", "install", "--tree", str(repo), "--profile", "quick").returncode == 0

    # The commit: the off-by-one of series/matrix-break-xarray.mbox, made through the index only.
    clean = git(repo, "show", "HEAD:lib/xarray.c") + "\n"
    broken = clean.replace("while (xas->xa_node && (xas->xa_index <= max)) {",
                           "while (xas->xa_node && (xas->xa_index < max)) {", 1)
    assert broken != clean
    blob = git(repo, "hash-object", "-w", "--stdin", input=broken.encode())
    git(repo, "update-index", "--cacheinfo", f"100644,{blob},lib/xarray.c")
    git(repo, "commit", "--quiet", "-m", "xarray: do not step onto @max in xas_find()\n\n"
        "Off by one.\n\nSigned-off-by: Test Author <test@example.org>")
    # Uncommitted work in the checkout (the file on disk is still the unbroken one).
    (repo / "mm" / "vma.c").write_text((repo / "mm" / "vma.c").read_text() + "/* local work */\n")
    before = (git(repo, "status", "--porcelain"), git(repo, "diff"), git(repo, "diff", "--cached"),
              git(repo, "rev-parse", "HEAD"), git(repo, "symbolic-ref", "HEAD"))

    proc = subprocess.run(["git", "push", "pushto", "topic"], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, **GIT_ID, "LC_ALL": "C"}, timeout=1800,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode != 0, proc.stderr
    assert "push blocked" in proc.stderr and "x86_64/xarray" in proc.stderr, proc.stderr
    assert git(repo, "ls-remote", "pushto", "topic") == ""
    after = (git(repo, "status", "--porcelain"), git(repo, "diff"), git(repo, "diff", "--cached"),
             git(repo, "rev-parse", "HEAD"), git(repo, "symbolic-ref", "HEAD"))
    assert after == before


def test_a_series_cannot_drop_a_binary_from_its_own_review(kernel_tree, tmp_path):
    """What is tested is the base's to say: a tip whose Makefile no longer lists multiorder in
    TARGETS still has multiorder built and run (not "not run", which would hide its failure)."""
    mbox = one_patch(kernel_tree, tmp_path, "tools/testing/radix-tree/Makefile",
                     "TARGETS = main idr-test multiorder xarray maple\n",
                     "TARGETS = main idr-test xarray maple\n", "radix-tree: fewer targets")
    assert "+TARGETS = main idr-test xarray maple\n" in mbox.read_text()
    proc = mmreview("test", str(mbox), "--tree", str(kernel_tree), "--arch", "x86_64",
                    "--binary", "multiorder", "--json", timeout=1200)
    assert proc.returncode == 0, proc.stderr.decode()
    (c,) = json.loads(proc.stdout)
    assert c["tip"] == "pass" and c["verdict"] == "pass", c
