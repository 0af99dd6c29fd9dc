"""checkpatch as the review runs it: the base's script (a series' own checkpatch.pl never runs), a
run that does not finish is one finding, kernel-only advice on userland tests is info with the reason,
lines are those of the applied commit.  Real checkpatch.pl, real git."""

from __future__ import annotations

import pytest

from conftest_rules import make_mbox, scratch_clone
from mmreview.apply.checkout import apply_series
from mmreview.intake.read import load_series
from mmreview.rules.engine import load_rules, run_rules
from mmreview.kernel.trees import open_tree

EXIT = "\tmmu_notifier_release(mm);\n\n\tmmap_read_lock(mm);\n\tarch_exit_mmap(mm);\n"
WHITESPACE = ("mm/mmap: whitespace in exit_mmap()", "A trailing blank.",
              [("mm/mmap.c", EXIT, "\tmmu_notifier_release(mm);\n\n\tmmap_read_lock(mm); \n"
                                   "\tarch_exit_mmap(mm);\n")])


@pytest.fixture(scope="module")
def clone(kernel_tree, tmp_path_factory):
    return scratch_clone(kernel_tree, tmp_path_factory.mktemp("cp") / "linux",
                         ["/mm/mmap.c", "/scripts/checkpatch.pl", "/tools/testing/radix-tree/maple.c"])


def _run(clone, tmp_path, patches, rules=None):
    p = tmp_path / "s.mbox"
    p.write_bytes(make_mbox(clone, "checkpatch", "A checkpatch case.", patches))
    tree = open_tree(None)
    series = load_series(str(p), tree)
    with apply_series(tree, series) as co:
        assert co.result.ok
        return run_rules(series, co, only=("checkpatch",), rules=rules)


def test_a_series_changing_checkpatch_does_not_get_it_run(clone, tmp_path):
    marker = tmp_path / "written-by-the-series-checkpatch"
    evil = ("scripts/checkpatch: leave a note", "Runs first.",
            [("scripts/checkpatch.pl", "use strict;\nuse warnings;\n",
              f"BEGIN {{ open(my $fh, '>', '{marker}'); print $fh \"ran\\n\"; close($fh); }}\n"
              "use strict;\nuse warnings;\n")])
    res = _run(clone, tmp_path, [evil, WHITESPACE])
    assert not marker.exists(), "the series' own checkpatch.pl was executed"
    # the base's script ran, and still checks the rest of the series
    assert any(f.rule == "checkpatch:TRAILING_WHITESPACE" and f.patch == 2 for f in res.findings), \
        [f.to_json() for f in res.findings]


def test_a_run_that_does_not_finish_is_one_finding(clone, tmp_path):
    rules = load_rules()
    cp = next(r for r in rules if r.id == "checkpatch")
    cp.module.TIMEOUT = 0.01        # perl cannot even compile checkpatch.pl in that time
    res = _run(clone, tmp_path, [WHITESPACE], rules=rules)
    (f,) = res.findings
    assert (f.rule, f.patch, f.severity) == ("checkpatch:TIMEOUT", 1, "warning")
    assert "did not finish within 0.01 s" in f.message and "\n" not in f.message


def test_avoid_bug_in_userland_tests_is_info_with_the_reason(clone, tmp_path):
    farmer = "void farmer_tests(void)\n{\n"
    test = ("maple: assert on an empty tree", "A test.",
            [("tools/testing/radix-tree/maple.c", farmer,
              farmer + "\tDEFINE_MTREE(empty);\n\n\tBUG_ON(!mtree_empty(&empty));\n"
                       "\tMT_BUG_ON(&empty, !mtree_empty(&empty));\n")])
    kernel = ("mm/mmap: insist on a tree", "A BUG_ON.",
              [("mm/mmap.c", EXIT, "\tmmu_notifier_release(mm);\n\tBUG_ON(!mm->mm_mt.ma_root);\n\n"
                                   "\tmmap_read_lock(mm);\n\tarch_exit_mmap(mm);\n")])
    res = _run(clone, tmp_path, [test, kernel])
    bugs = [f for f in res.findings if f.rule == "checkpatch:AVOID_BUG"]
    tests = [f for f in bugs if f.file.startswith("tools/testing/")]
    assert len(tests) == 2 and all(f.severity == "info" and "test's assertion" in f.message for f in tests)
    (k,) = [f for f in bugs if f.file == "mm/mmap.c"]
    assert k.severity == "warning" and k.function == "exit_mmap"


def test_complex_macro_on_an_initializer_table_is_info(clone, tmp_path):
    table = ("mm/mmap: name the exit states for tracing", "A table.",
             [("mm/mmap.c", "/* Release all mmaps. */\n",
               "#define EXIT_MMAP_TRACE\t\t\t\\\n\t{ 1, \"unmapped\" },\t\\\n\t{ 2, \"freed\" }\n\n"
               "#define EXIT_MMAP_PAIR 1, 2\n\n/* Release all mmaps. */\n")])
    res = _run(clone, tmp_path, [table])
    got = {f.line: f for f in res.findings if f.rule == "checkpatch:COMPLEX_MACRO"}
    table_f = [f for f in got.values() if "initializers" in f.message]
    assert len(table_f) == 1 and table_f[0].severity == "info", [f.to_json() for f in res.findings]
    pair = [f for f in got.values() if "initializers" not in f.message]
    assert pair and pair[0].severity == "error"          # a real one keeps checkpatch's level


CITE = ("mm/mmap: drop the blank line in exit_mmap()", None,
        [("mm/mmap.c", EXIT, "\tmmu_notifier_release(mm);\n\tmmap_read_lock(mm);\n\tarch_exit_mmap(mm);\n")])


def _cite(body: str):
    return (CITE[0], body, CITE[2])


def test_commit_ids_on_a_tree_without_history_are_info_with_the_reason(clone, tmp_path):
    # the default tree is one imported commit: no cited commit can be looked up in it
    res = _run(clone, tmp_path, [_cite("As before.\n\nFixes: 54a611b60590 (\"Maple Tree: add new data structure\")")])
    (f,) = [f for f in res.findings if f.rule == "checkpatch:UNKNOWN_COMMIT_ID"]
    assert f.severity == "info" and "'54a611b60590' not checked" in f.message
    assert "no history" in f.message and "--tree" in f.message
    assert not [f for f in res.findings if f.severity != "info"], [f.to_json() for f in res.findings]


def test_commit_ids_are_looked_up_in_a_tree_with_history(clone, tmp_path):
    """A user's tree with history (here: the scratch clone, one commit more than the import): a
    cited commit it has is known, one it has not is checkpatch's warning, a wrong title its error."""
    from conftest_rules import _git
    _git(clone, "checkout", "--quiet", "-B", "earlier", "95ba86de1f0d16a60e2fb689cf5ce4a786bad879")
    (clone / "mm" / "mmap.c").write_text((clone / "mm" / "mmap.c").read_text().replace(
        "/* Release all mmaps. */", "/* Release all mmaps (and their page tables). */"))
    _git(clone, "commit", "--quiet", "-a", "-m", "mm/mmap: say what exit_mmap() releases")
    earlier = _git(clone, "rev-parse", "HEAD").decode().strip()
    body = (f"As before.\n\nThis follows commit {earlier[:12]} (\"mm/mmap: say what it frees\").\n\n"
            f"Fixes: {earlier[:12]} (\"mm/mmap: say what exit_mmap() releases\")\n"
            "Fixes: 0123456789ab (\"mm: a commit that does not exist\")")
    p = tmp_path / "s.mbox"
    p.write_bytes(make_mbox(clone, "checkpatch", "A checkpatch case.", [_cite(body)], base=earlier))
    tree = open_tree(clone)
    series = load_series(str(p), tree)
    with apply_series(tree, series) as co:
        assert co.result.ok and co.base_sha == earlier
        res = run_rules(series, co, only=("checkpatch",))
    unknown = [f for f in res.findings if f.rule == "checkpatch:UNKNOWN_COMMIT_ID"]
    assert [(f.severity, "0123456789ab" in f.message) for f in unknown] == [("warning", True)], \
        [f.to_json() for f in res.findings]
    (title,) = [f for f in res.findings if f.rule == "checkpatch:GIT_COMMIT_ID"]
    assert title.severity == "error" and "say what exit_mmap() releases" in title.message


def test_commit_ids_on_a_shallow_clone_are_info_with_the_reason(kernel_tree, tmp_path):
    """A shallow clone (git's own marker, .git/shallow, on a clone of the tree) lacks the past
    even where its base has parents: the reason says which it is."""
    from conftest_rules import _git
    shallow = scratch_clone(kernel_tree, tmp_path / "linux", ["/mm/mmap.c"])
    (shallow / "mm" / "mmap.c").write_text((shallow / "mm" / "mmap.c").read_text().replace(
        "/* Release all mmaps. */", "/* Release all mmaps (and their page tables). */"))
    _git(shallow, "commit", "--quiet", "-a", "-m", "mm/mmap: say what exit_mmap() releases")
    earlier = _git(shallow, "rev-parse", "HEAD").decode().strip()
    (shallow / ".git" / "shallow").write_text(earlier + "\n")
    assert _git(shallow, "rev-parse", "--is-shallow-repository").decode().strip() == "true"
    p = tmp_path / "s.mbox"
    p.write_bytes(make_mbox(shallow, "checkpatch", "A checkpatch case.",
                            [_cite("As before.\n\nFixes: 0123456789ab (\"mm: a commit the clone lacks\")")],
                            base=earlier))
    tree = open_tree(shallow)
    series = load_series(str(p), tree)
    with apply_series(tree, series) as co:
        res = run_rules(series, co, only=("checkpatch",))
    (f,) = [f for f in res.findings if f.rule == "checkpatch:UNKNOWN_COMMIT_ID"]
    assert f.severity == "info" and "shallow clone" in f.message
