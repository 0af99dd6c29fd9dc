"""Each rule on review cases written apart from the sample series (tests/rule_cases/): positives in
forms the samples do not use are caught at the patch, file and line that bring them, with the message
naming what matters; look-alikes that are fine are not reported.  Real tree, real git, one rule per
case."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import git
from conftest_rules import make_mbox, scratch_clone
from mmreview.apply.checkout import apply_series
from mmreview.intake.read import load_series
from mmreview.rules.engine import load_rules, run_rules
from mmreview.kernel.trees import open_tree
from rule_cases import all_cases

CASES = all_cases()
# only the files the cases edit are checked out in the scratch clone (a sparse checkout of whole
# directories costs seconds per case on a busy machine)
PATHS = sorted({"/" + e[0] for c in CASES for p in c.patches for e in p[2]})


def _review(mbox, rule, tree):
    series = load_series(str(mbox), tree)
    with apply_series(tree, series) as co:
        assert co.result.ok, co.result.to_json()
        res = run_rules(series, co, only=(rule,))
        texts = {}
        for f in res.findings:
            src = co.show(co.rev_after(f.patch), f.file) if f.file else None
            if src is not None and f.line:
                texts[(f.patch, f.file, f.line)] = src.decode().splitlines()[f.line - 1]
    return res, texts


class Results:
    """Each rule's cases reviewed the first time one of them is asked for (two at a time), so
    `-k lock-order` reviews only those."""

    def __init__(self, kernel_tree, tmp):
        self.clone = scratch_clone(kernel_tree, tmp / "linux", PATHS)
        self.tmp = tmp
        self.tree = open_tree(None)
        self.done: dict = {}

    def __getitem__(self, key):
        rule = key[0]
        if key not in self.done:
            mine = [c for c in CASES if c.rule == rule]
            mboxes = []
            for c in mine:
                p = self.tmp / f"{c.rule}-{c.name}.mbox"
                mbox = make_mbox(self.clone, f"{c.rule}: {c.name}", c.why or "A review case.", c.patches)
                p.write_bytes(c.mangle(mbox) if c.mangle else mbox)
                mboxes.append(p)
            with ThreadPoolExecutor(max_workers=2) as pool:
                got = list(pool.map(lambda t: _review(t[0], rule, self.tree), zip(mboxes, mine)))
            self.done.update({(c.rule, c.name): r for c, r in zip(mine, got)})
        return self.done[key]


@pytest.fixture(scope="module")
def results(kernel_tree, tmp_path_factory):
    return Results(kernel_tree, tmp_path_factory.mktemp("forms"))


def test_every_rule_has_three_new_positives_and_two_negatives():
    for rule in {r.id for r in load_rules()}:
        mine = [c for c in CASES if c.rule == rule]
        assert sum(c.positive for c in mine) >= 3, rule
        assert sum(not c.positive for c in mine) >= 2, rule


@pytest.mark.parametrize("case", [c for c in CASES if c.positive], ids=lambda c: f"{c.rule}/{c.name}")
def test_positive_form_caught(results, case):
    res, texts = results[(case.rule, case.name)]
    for patch, path, snippet, words in case.expect:
        hits = [f for f in res.findings if f.rule.split(":")[0] == case.rule.split(":")[0]
                and f.patch == patch and f.file == path and snippet in texts.get((f.patch, f.file, f.line), "")]
        assert hits, f"not caught at patch {patch} {path} '{snippet}': {[f.to_json() for f in res.findings]}"
        # "!word": the message must not say it (the series' reason named, not the base's)
        assert any(all((w[1:] not in f.message) if w.startswith("!") else (w in f.message) for w in words)
                   for f in hits), [f.message for f in hits]


@pytest.mark.parametrize("case", [c for c in CASES if not c.positive], ids=lambda c: f"{c.rule}/{c.name}")
def test_look_alike_not_reported(results, case):
    res, _ = results[(case.rule, case.name)]
    assert [f for f in res.findings if f.severity != "info"] == [], [f.to_json() for f in res.findings]


def test_exit_mmap_complication_on_73(tree_73, tmp_path):
    """7.3's exit path is another program (an unmap description, tear_down_vmas()): a flag set where
    its dup_mmap() fails and read by exit_mmap(), and a bound on tear_down_vmas(), are caught there;
    dup_mmap() bounding its own clean-up (what 7.3 does) is not."""
    unstable = "\t\tmm_flags_set(MMF_UNSTABLE, mm);\n"
    teardown = "\tnr_accounted = tear_down_vmas(mm, &vmi, vma, ULONG_MAX);\n"
    patches = [("mm: remember a partial fork", "A flag.",
                [("mm/mmap.c", unstable, unstable + "\t\tmm_flags_set(MMF_DUP_PARTIAL, mm);\n")]),
               ("mm: stop the exit teardown early", "A bound.",
                [("mm/mmap.c", teardown,
                  "\tif (mm_flags_test(MMF_DUP_PARTIAL, mm))\n\t\tgoto destroy;\n"
                  "\tnr_accounted = tear_down_vmas(mm, &vmi, vma, mm->task_size);\n")])]
    res = _exit_rule_on(tree_73, tmp_path, patches)
    msgs = [(f.patch, f.function, f.message) for f in res.findings]
    assert any(p == 2 and fn == "exit_mmap" and "MMF_DUP_PARTIAL" in m and "mm/mmap.c:" in m and
               "(patch 1)" in m for p, fn, m in msgs), msgs
    assert any(p == 2 and "passes mm->task_size to tear_down_vmas()" in m for p, fn, m in msgs), msgs
    assert all(fn == "exit_mmap" for _, fn, _ in msgs), msgs


def test_mmf_unstable_on_61_is_the_reapers(tree_61, tmp_path):
    """exit-mmap-complication's MMF_UNSTABLE decision: on 6.1 only the OOM reaper sets it (dup_mmap()
    does not), so exit_mmap() reading it is about the reaper and not reported; on 6.12 it is (the
    cases mmf-unstable-*)."""
    head = "\tvma = mas_find(&mas, ULONG_MAX);\n\tif (!vma) {\n"
    patches = [("mm/mmap: leave a reaped mm's tables to the reaper", "On 6.1.",
                [("mm/mmap.c", head, "\tvma = mas_find(&mas, ULONG_MAX);\n"
                                     "\tif (!vma || test_bit(MMF_UNSTABLE, &mm->flags)) {\n")])]
    res = _exit_rule_on(tree_61, tmp_path, patches)
    assert [f.to_json() for f in res.findings] == []


def _exit_rule_on(kernel, tmp_path, patches):
    """exit-mmap-complication on `patches` (edits of mm/mmap.c) applied to another kernel's tree."""
    base = git(kernel, "rev-parse", "HEAD")
    clone = scratch_clone(kernel, tmp_path / "linux", ["/mm/mmap.c"], base=base)
    mbox = tmp_path / "s.mbox"
    mbox.write_bytes(make_mbox(clone, "exit path", "Another kernel.", patches, base=base))
    tree = open_tree(str(kernel))
    series = load_series(str(mbox), tree)
    with apply_series(tree, series) as co:
        return run_rules(series, co, only=("exit-mmap-complication",))
