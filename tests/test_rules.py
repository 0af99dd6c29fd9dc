"""Review rules on the sample series: each positive caught at the right patch, file and line, no
finding on the near-miss negatives or on the clean series; the engine's guarantees (fixed_by,
nothing the base had, suppression) and bad input.  Real tree, real git, real checkpatch.pl."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import SERIES, git, mmreview
from conftest_rules import EXPECT, SAMPLES, make_mbox, scratch_clone
from mmreview.apply.checkout import apply_series
from mmreview.intake.read import load_series
from mmreview.rules.engine import load_rules, run_rules
from mmreview.kernel.trees import open_tree

RULE_IDS = {"lock-order", "exit-mmap-complication", "xa-zero-marker", "maple-store-alloc",
            "error-path-needs-test", "vma-free-rcu", "checkpatch"}


def review(path: Path, tree_path=None, **kw):
    """(result, {(patch, file, line): line text in the tree after that patch})."""
    tree = open_tree(tree_path)
    series = load_series(str(path), tree)
    with apply_series(tree, series) as co:
        assert co.result.ok, co.result.to_json()
        res = run_rules(series, co, **kw)
        texts = {}
        for f in res.findings:
            src = co.show(co.rev_after(f.patch), f.file) if f.file else None
            if src is not None:
                texts[(f.patch, f.file, f.line)] = src.decode().splitlines()[f.line - 1]
    return res, texts


@pytest.fixture(scope="module")
def sample_results(kernel_tree):
    names = sorted(SAMPLES) + ["clean-3"]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda n: review(SERIES / f"{n}.mbox"), names))
    return dict(zip(names, results))


def test_every_rule_has_a_positive_and_a_negative_sample():
    ids = {r.id for r in load_rules()}
    assert ids == RULE_IDS
    for rid in ids:
        assert (SERIES / f"rules-{rid}-pos.mbox").is_file()
        assert (SERIES / f"rules-{rid}-neg.mbox").is_file()
        assert EXPECT[f"rules-{rid}-pos"], f"no expectation for {rid}"


@pytest.mark.parametrize("name", sorted(n for n in SAMPLES if n.endswith("-pos")))
def test_positive_caught_at_patch_file_line(sample_results, name):
    res, texts = sample_results[name]
    for rule, patch, path, snippet in EXPECT[name]:
        hits = [f for f in res.findings if f.rule == rule and f.patch == patch and f.file == path
                and snippet in texts.get((f.patch, f.file, f.line), "")]
        assert hits, f"{rule} not caught at patch {patch} {path} '{snippet}': {res.to_json()['findings']}"
        for f in hits:
            assert f.fixed_by is None
            assert f.severity in ("error", "warning", "info")
            if not rule.startswith("checkpatch"):
                assert f.function, f


@pytest.mark.parametrize("name", sorted(n for n in SAMPLES if n.endswith("-neg")) + ["clean-3"])
def test_no_finding_on_negatives_and_clean(sample_results, name):
    res, _ = sample_results[name]
    assert res.findings == [], [f.to_json() for f in res.findings]
    assert {r.id for r in res.rules} == RULE_IDS
    assert res.not_applied == []


def test_lock_order_quotes_the_two_comment_lines(sample_results):
    res, _ = sample_results["rules-lock-order-pos"]
    (f,) = [f for f in res.findings if f.rule == "lock-order"]
    assert f.function == "vma_prepare" and f.severity == "error"
    assert "mm/rmap.c:29: mapping->i_mmap_rwsem" in f.excerpt[0]
    assert "anon_vma->rwsem" in f.excerpt[1]
    # patch 2 touches the same file but not the order: reported once, against patch 1
    assert f.patch == 1


# ------------------------------------------------------------ engine guarantees, on series made here

@pytest.fixture(scope="module")
def clone(kernel_tree, tmp_path_factory):
    dest = tmp_path_factory.mktemp("rules") / "linux"
    return scratch_clone(kernel_tree, dest, ["mm/", "kernel/fork.c", "Documentation/mm/",
                                             "/.mmreview.toml", "/pyproject.toml"])


def _series(clone, tmp_path, patches, name="s"):
    p = tmp_path / f"{name}.mbox"
    p.write_bytes(make_mbox(clone, "test series", "Made by the rules tests.", patches))
    return p


def test_fixed_by_a_later_patch(clone, tmp_path):
    add = ("fork: free an unpublished vma directly", "Skip RCU for a vma nobody saw.",
           [("kernel/fork.c", "fail_nomem_policy:\n\tvm_area_free(tmp);\n",
             "fail_nomem_policy:\n\t__vm_area_free(tmp);\n")])
    other = ("mm/mmap: say why exit_mmap() warns", "A comment.",
             [("mm/mmap.c", "\tBUG_ON(count != mm->map_count);\n",
               "\t/* every vma must have been counted */\n\tBUG_ON(count != mm->map_count);\n")])
    undo = ("fork: go back to vm_area_free() in dup_mmap()", "RCU readers may still see it.",
            [("kernel/fork.c", "fail_nomem_policy:\n\t__vm_area_free(tmp);\n",
              "fail_nomem_policy:\n\tvm_area_free(tmp);\n")])
    res, texts = review(_series(clone, tmp_path, [add, other, undo]), ignore=("checkpatch",))
    (f,) = res.findings
    assert (f.rule, f.patch, f.file, f.fixed_by) == ("vma-free-rcu", 1, "kernel/fork.c", 3)
    assert "__vm_area_free(tmp);" in texts[(1, "kernel/fork.c", f.line)]


def test_nothing_the_base_had(clone, tmp_path):
    # Move the base's own XA_ZERO_ENTRY store within dup_mmap(): the line is "added" by the diff,
    # but the function had it before the series.
    old = ("\t\tif (mpnt) {\n\t\t\tmas_set_range(&vmi.mas, mpnt->vm_start, mpnt->vm_end - 1);\n"
           "\t\t\tmas_store(&vmi.mas, XA_ZERO_ENTRY);\n\t\t\t/* Avoid OOM iterating a broken tree */\n"
           "\t\t\tset_bit(MMF_OOM_SKIP, &mm->flags);\n\t\t}\n")
    new = ("\t\tif (mpnt) {\n\t\t\t/* Avoid OOM iterating a broken tree */\n"
           "\t\t\tset_bit(MMF_OOM_SKIP, &mm->flags);\n"
           "\t\t\tmas_set_range(&vmi.mas, mpnt->vm_start, mpnt->vm_end - 1);\n"
           "\t\t\tmas_store(&vmi.mas, XA_ZERO_ENTRY);\n\t\t}\n")
    move = ("fork: set MMF_OOM_SKIP before marking the failure point", "Order the two steps.",
            [("kernel/fork.c", old, new)])
    res, _ = review(_series(clone, tmp_path, [move]), ignore=("checkpatch",))
    assert res.findings == [], [f.to_json() for f in res.findings]


def test_suppression_from_the_tree_and_command_line(clone, tmp_path):
    bad = ("fork: free an unpublished vma directly", "Skip RCU for a vma nobody saw.",
           [("kernel/fork.c", "fail_nomem_policy:\n\tvm_area_free(tmp);\n",
             "fail_nomem_policy:\n\t__vm_area_free(tmp);\n")])
    path = _series(clone, tmp_path, [bad])
    res, _ = review(path, ignore=("checkpatch",))
    assert [f.rule for f in res.findings] == ["vma-free-rcu"]
    res, _ = review(path, ignore=("checkpatch", "vma-free-rcu"))
    assert res.findings == [] and "vma-free-rcu" not in {r.id for r in res.rules}
    # review policy is the base's: a series that adds it does not switch its own review off
    cfg = ("mmreview: skip vma-free-rcu here", "Configure the review.",
           [(".mmreview.toml", None, 'ignore = ["vma-free-rcu", "checkpatch:FILE_PATH_CHANGES"]\n')])
    res, _ = review(_series(clone, tmp_path, [bad, cfg], "cfg"), ignore=("checkpatch",))
    assert [f.rule for f in res.findings] == ["vma-free-rcu"] and "vma-free-rcu" not in res.ignored
    assert any(n.file == ".mmreview.toml" and "base's version was used" in n.message for n in res.notes)
    # ... and a base that has it does
    for name, path, text in [("toml", ".mmreview.toml", 'ignore = ["vma-free-rcu"]\n'),
                             ("pyp", "pyproject.toml",
                              '[project]\nname = "x"\n\n[tool.mmreview]\nignore = ["vma-free-rcu"]\n')]:
        based = tmp_path / f"based-{name}"
        scratch_clone(clone, based, ["mm/", "kernel/fork.c", f"/{path}"])
        (based / path).write_text(text)
        git(based, "add", "-f", "--sparse", path)
        git(based, "commit", "-q", "-m", "review settings")
        base = git(based, "rev-parse", "HEAD")
        p = tmp_path / f"{name}.mbox"
        p.write_bytes(make_mbox(based, "test series", "Made by the rules tests.", [bad], base=base))
        res, _ = review(p, tree_path=str(based), ignore=("checkpatch",))
        assert res.findings == [] and "vma-free-rcu" in res.ignored, name


def test_not_c_and_unparseable_c_and_lock_comment_changed(clone, tmp_path):
    doc = ("Documentation/mm: a note on lock order", "Words only.",
           [("Documentation/mm/process_addrs.rst", None, "Lock order\n==========\n\nSee mm/rmap.c.\n")])
    junk = ("mm: add a generated table", "Machine output.",
            [("mm/gen_table.c", None, "}}} ))) this is not C at all {{{ ((( @@@ ;;; }}}\n" * 40)])
    nocomment = ("mm/rmap: drop the lock ordering comment", "Moved to the docs.",
                 [("mm/rmap.c", " * Lock ordering in mm:\n", " * Locking: see the documentation.\n")])
    res, _ = review(_series(clone, tmp_path, [doc, junk, nocomment]), ignore=("checkpatch",))
    reasons = {(n.rule, n.file): n.reason for n in res.not_applied}
    # the order is read at the base: a series editing the comment is told so, not checked against it
    assert ("lock-order", "mm/rmap.c") not in reasons and ("lock-order", None) not in reasons, reasons
    # ... and a change of the documented order is a finding of its own, for its own review
    edit = [f for f in res.findings if f.rule == "lock-order"]
    assert [(f.patch, f.file, f.severity) for f in edit] == [(3, "mm/rmap.c", "warning")], res.findings
    assert "patch 3 changes the lock-ordering comment" in edit[0].message
    assert "+ * Locking: see the documentation." in edit[0].excerpt
    assert any(f == "mm/gen_table.c" and "tree-sitter-c could not parse" in why
               for (r, f), why in reasons.items()), reasons
    assert not any(f and f.endswith(".rst") for (_, f) in reasons)
    assert res.findings == edit


def test_no_lock_comment_at_the_base(clone, tmp_path):
    based = tmp_path / "based"
    scratch_clone(clone, based, ["mm/", "kernel/fork.c"])
    rmap = based / "mm/rmap.c"
    rmap.write_text(rmap.read_text().replace(" * Lock ordering in mm:\n", " * Locking: see the docs.\n"))
    git(based, "commit", "-q", "-am", "mm/rmap: drop the lock ordering comment")
    base = git(based, "rev-parse", "HEAD")
    bad = ("fork: free an unpublished vma directly", "Skip RCU for a vma nobody saw.",
           [("kernel/fork.c", "fail_nomem_policy:\n\tvm_area_free(tmp);\n",
             "fail_nomem_policy:\n\t__vm_area_free(tmp);\n")])
    p = tmp_path / "s.mbox"
    p.write_bytes(make_mbox(based, "test series", "Made by the rules tests.", [bad], base=base))
    res, _ = review(p, tree_path=str(based), ignore=("checkpatch",))
    assert any(n.rule == "lock-order" and n.file == "mm/rmap.c" and "no 'Lock ordering in mm:'" in n.reason
               and "at the base" in n.reason for n in res.not_applied), res.not_applied


# ------------------------------------------------------------ the command

def test_cli_json_list_explain_and_exit_codes(kernel_tree):
    p = mmreview("rules", str(SERIES / "rules-xa-zero-marker-pos.mbox"), "--json", "--ignore", "checkpatch")
    assert p.returncode == 1, p.stderr
    data = json.loads(p.stdout)
    f = next(f for f in data["findings"] if f["rule"] == "xa-zero-marker")
    assert {k: f[k] for k in ("severity", "patch", "file", "function")} == \
        {"severity": "error", "patch": 1, "file": "kernel/fork.c", "function": "dup_mmap"}
    assert isinstance(f["line"], int) and f["message"]
    p = mmreview("rules", str(SERIES / "rules-xa-zero-marker-neg.mbox"))
    assert p.returncode == 0, p.stdout + p.stderr
    p = mmreview("rules", "--list")
    assert p.returncode == 0 and all(r in p.stdout.decode() for r in RULE_IDS)
    p = mmreview("rules", "--explain", "lock-order")
    assert p.returncode == 0 and b"Hugh Dickins" in p.stdout
    p = mmreview("rules", "--explain", "no-such-rule")
    assert p.returncode == 2 and p.stderr.decode().startswith("mmreview: error: no-such-rule:")
    p = mmreview("rules", str(SERIES / "rules-xa-zero-marker-neg.mbox"), "--ignore", "bogus")
    assert p.returncode == 2 and b"Traceback" not in p.stderr


def test_peng_zhang_v2_dup_mmap_code_from_the_2023_thread(clone, tmp_path):
    """The hunk Liam Howlett reviewed (Sep 2023), on today's dup_mmap(): every concern he raised is
    reported, on the patch and line that brings it."""
    old = ("\t\t\tretval = vma_iter_clear_gfp(&vmi, mpnt->vm_start,\n"
           "\t\t\t\t\t\t    mpnt->vm_end, GFP_KERNEL);\n\t\t\tif (retval)\n\t\t\t\tgoto loop_out;\n")
    new = ("\t\t\tmas_store(&vmi.mas, NULL);\n\n"
           "\t\t\tif (unlikely(mas_is_err(&vmi.mas))) {\n"
           "\t\t\t\tretval = xa_err(vmi.mas.node);\n\t\t\t\tmas_reset(&vmi.mas);\n"
           "\t\t\t\tif (mas_find(&vmi.mas, ULONG_MAX))\n"
           "\t\t\t\t\tmas_store(&vmi.mas, XA_ZERO_ENTRY);\n\t\t\t\tgoto loop_out;\n\t\t\t}\n")
    patch = ("fork: use mas_store() to drop VM_DONTCOPY vmas", "As in v2 6/6.",
             [("kernel/fork.c", old, new)])
    res, texts = review(_series(clone, tmp_path, [patch]), ignore=("checkpatch",))
    got = {(f.rule, texts[(f.patch, f.file, f.line)].strip()) for f in res.findings}
    assert ("maple-store-alloc", "mas_store(&vmi.mas, NULL);") in got
    assert ("xa-zero-marker", "mas_store(&vmi.mas, XA_ZERO_ENTRY);") in got
    # the goto itself is an old line that diff keeps; the new test guarding it is what is reported
    assert ("error-path-needs-test", "if (unlikely(mas_is_err(&vmi.mas))) {") in got
    assert all(f.function == "dup_mmap" and f.patch == 1 for f in res.findings)


def test_limit_threaded_through_teardown(clone, tmp_path):
    old = ("void free_pgtables(struct mmu_gather *tlb, struct ma_state *mas,\n"
           "\t\t   struct vm_area_struct *vma, unsigned long floor,\n"
           "\t\t   unsigned long ceiling, bool mm_wr_locked)\n{\n")
    new = ("void free_pgtables(struct mmu_gather *tlb, struct ma_state *mas,\n"
           "\t\t   struct vm_area_struct *vma, unsigned long floor,\n"
           "\t\t   unsigned long ceiling, unsigned long tree_max,\n"
           "\t\t   bool mm_wr_locked)\n{\n")
    patch = ("mm: pass the tree limit to free_pgtables()", "For dup_mmap() failures.",
             [("mm/memory.c", old, new)])
    res, _ = review(_series(clone, tmp_path, [patch]), ignore=("checkpatch",))
    (f,) = res.findings
    assert f.rule == "exit-mmap-complication" and f.function == "free_pgtables"
    assert "tree_max" in f.message
