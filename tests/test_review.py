"""The Review: verdict and exit code, JSON round trip, schema, `mmreview check` and `mmreview report`."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from conftest import REPO, SERIES, mmreview
import conftest_review as samples
from mmreview.common.errors import BadInput
from mmreview.review.model import Review

SCHEMA = json.loads((REPO / "mmreview" / "review" / "schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


def _copy(r: Review) -> Review:
    return Review.from_json(copy.deepcopy(r.to_json()))


@pytest.mark.parametrize("name", sorted(samples.ALL))
def test_constructed_reviews_validate_and_round_trip(name):
    r = samples.ALL[name]()
    data = r.to_json()
    VALIDATOR.validate(data)
    again = Review.from_json(json.loads(json.dumps(data)))
    assert again.to_json() == data


@pytest.mark.parametrize("name", sorted(samples.REAL))
def test_real_reviews_validate_and_round_trip(name):
    r = samples.REAL[name]()
    data = r.to_json()
    VALIDATOR.validate(data)
    assert Review.loads(r.dumps()).to_json() == data


def test_verdicts_and_exit_codes():
    clean = samples.constructed_clean()
    assert (clean.verdict, clean.exit_code) == ("clean", 0)
    assert samples.constructed_findings().verdict == "findings"
    assert samples.constructed_findings().exit_code == 1
    reg = samples.constructed_regression()
    assert (reg.verdict, reg.exit_code) == ("regressions", 1)
    assert "x86_64/xarray" in reg.summary()
    na = samples.constructed_no_apply()
    assert (na.verdict, na.exit_code) == ("did-not-apply", 1)
    assert "patch 2/3" in na.summary() and "mm/mmap.c" in na.summary()
    # The vma link failure is pre-existing (fails at base too): it does not fail the review.
    assert any(c.verdict == "pre-existing" for c in clean.cells)


def test_fail_on_threshold():
    r = _copy(samples.constructed_findings())
    r.findings = [f for f in r.findings if f.severity == "warning"]
    assert r.verdict == "clean" and r.exit_code == 0
    assert "1 finding below --fail-on error" in r.summary()
    r.fail_on = "warning"
    assert r.verdict == "findings" and r.exit_code == 1
    r.fail_on = "info"
    assert r.exit_code == 1
    r2 = _copy(samples.constructed_findings())
    r2.fail_on = "none"
    assert r2.verdict == "clean"
    # Worse verdicts win over findings.
    r3 = _copy(samples.constructed_regression())
    r3.findings = samples.constructed_findings().findings
    assert r3.verdict == "regressions"


def _untested() -> Review:
    """The clean sample with nothing the matrix could judge: every cell failing the same at
    base and tip, or not run."""
    from mmreview.matrix.results import Cell, RunResult
    r = _copy(samples.constructed_clean())
    cells = []
    for c in r.cells:
        broken = RunResult(c.target, c.suite, c.binary, "build-failed", reason="error: no harness",
                           signature="build-failed: error: no harness")
        cells.append(Cell(c.target, c.suite, c.binary, broken, broken))
    cells.append(Cell("riscv64", "radix-tree", "xarray", None,
                      RunResult("riscv64", "radix-tree", "xarray", "not-run", reason="no liburcu")))
    r.cells = cells
    return r


def test_untested_when_no_cell_could_give_a_verdict(tmp_path):
    r = _untested()
    assert (r.verdict, r.exit_code) == ("untested", 0)
    assert r.summary().startswith("untested: no matrix cell could give a verdict: "
                                  "5 cells failing the same at the base")
    assert "1 cell not run (radix-tree/xarray: no liburcu)" in r.summary()
    data = r.to_json()
    VALIDATOR.validate(data)
    r.fail_on_untested = True
    assert r.exit_code == 1 and Review.from_json(r.to_json()).exit_code == 1
    # One cell that says anything (a pass, a fix) is a tested review; a finding is findings.
    tested = _untested()
    tested.cells[0] = samples.passing_cells()[0]
    assert tested.verdict == "clean"
    found = _untested()
    found.findings = samples.constructed_findings().findings
    assert found.verdict == "findings"
    # --profile rules asked for no matrix: clean, not untested.
    rules = _copy(samples.constructed_findings())
    rules.findings = []
    assert rules.profile == "rules" and rules.verdict == "clean"
    # Every format says it, with the reason; exit 0 unless --fail-on ...,untested.
    saved = tmp_path / "review.json"
    saved.write_text(json.dumps(data))
    for fmt in ("terminal", "markdown", "email", "json", "junit", "sarif"):
        proc = mmreview("report", str(saved), "--format", fmt)
        assert proc.returncode == 0, (fmt, proc.stderr)
        out = " ".join(proc.stdout.decode().split())
        assert "untested" in out.lower() and "could give a verdict" in out, fmt
    terminal = mmreview("report", str(saved)).stdout.decode()
    assert "UNTESTED" in terminal and "CLEAN" not in terminal
    assert "Verdict: untested" in mmreview("report", str(saved), "--format", "email").stdout.decode()
    assert mmreview("report", str(saved), "--format", "terse").stdout == b""
    failing = mmreview("report", str(saved), "--format", "terse", "--fail-on", "error,untested")
    assert failing.returncode == 1 and failing.stdout.decode().startswith("ERROR: untested: ")
    bad = mmreview("report", str(saved), "--fail-on", "warning,info")
    assert bad.returncode == 2 and "--fail-on warning,info" in bad.stderr.decode()


def test_from_json_rejects_unknown_versions_and_garbage():
    data = samples.constructed_clean().to_json()
    data["schema_version"] = 99
    with pytest.raises(BadInput, match="unknown review schema version 99"):
        Review.from_json(data, "r.json")
    with pytest.raises(BadInput, match="not JSON"):
        Review.loads("{nope", "r.json")
    broken = samples.constructed_clean().to_json()
    del broken["tree"]
    with pytest.raises(BadInput, match="malformed review"):
        Review.from_json(broken, "r.json")


# ---------------------------------------------------------------- the CLI, for real

def test_check_clean_series(tmp_path):
    out = tmp_path / "review.json"
    proc = mmreview("check", str(SERIES / "clean-3.mbox"), "--profile", "rules",
                    "--json-out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr.decode()
    text = proc.stdout.decode()
    assert text.splitlines()[0].startswith("mmreview: CLEAN")   # the verdict first (plain: a pipe)
    assert "\x1b[" not in text                       # not a tty: no escape codes
    data = json.loads(out.read_text())
    VALIDATOR.validate(data)
    assert data["verdict"] == "clean" and data["exit_code"] == 0
    assert [p["state"] for p in data["apply"]] == ["applied"] * 3
    assert {r["id"] for r in data["rules"]} >= {"lock-order", "xa-zero-marker", "checkpatch"}


def test_check_keeps_every_review_for_report(tmp_path, kernel_tree):
    """Without --json-out the Review still lands on disk, named on stderr, for `mmreview report`."""
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    proc = mmreview("check", str(SERIES / "clean-3.mbox"), "--tree", str(kernel_tree),
                    "--profile", "rules", env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    saved = list((tmp_path / "mmreview" / "reviews").glob("*.json"))
    assert len(saved) == 1
    assert f"review saved to {saved[0]}" in proc.stderr.decode()
    again = mmreview("report", str(saved[0]), "--format", "json", env=env)
    assert again.returncode == 0
    assert json.loads(again.stdout)["verdict"] == "clean"


def test_check_findings_series_exits_1_and_report_rerenders(tmp_path):
    out = tmp_path / "review.json"
    proc = mmreview("check", str(SERIES / "rules-lock-order-pos.mbox"), "--profile", "rules",
                    "--format", "json", "-o", str(out), "--quiet")
    assert proc.returncode == 1, proc.stderr.decode()
    data = json.loads(out.read_text())
    assert data["verdict"] == "findings"
    assert [(f["rule"], f["patch"], f["file"]) for f in data["findings"]] == \
        [("lock-order", 1, "mm/vma.c")]
    # report: same JSON back, and every format renders with the review's exit code.
    again = mmreview("report", str(out), "--format", "json")
    assert again.returncode == 1
    assert json.loads(again.stdout) == data
    for fmt in ("terminal", "markdown", "email", "junit", "sarif", "terse"):
        r = mmreview("report", str(out), "--format", fmt)
        assert r.returncode == 1, (fmt, r.stderr)
        assert r.stdout.strip(), fmt
    # --fail-on none: the same review passes.
    assert mmreview("report", str(out), "--format", "terse", "--fail-on", "none").returncode == 0


def test_check_no_apply_series():
    proc = mmreview("check", str(SERIES / "no-apply.mbox"), "--profile", "rules", "-f", "json",
                    "--quiet")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["verdict"] == "did-not-apply"
    assert [p["state"] for p in data["apply"]] == ["applied", "failed", "not-attempted"]
    assert data["apply"][1]["conflict_files"] == ["mm/mmap.c"]


@pytest.mark.parametrize("args,needle", [
    (["check", "/no/such/series.mbox", "--profile", "rules"], "/no/such/series.mbox"),
    (["check", str(SERIES / "clean-3.mbox"), "--profile", "everything"], "--profile"),
    (["check", str(SERIES / "clean-3.mbox"), "--fail-on", "fatal"], "--fail-on"),
    (["check", str(SERIES / "clean-3.mbox"), "--format", "html"], "--format"),
    (["check", str(SERIES / "clean-3.mbox"), "--arch", "vax"], "vax"),
])
def test_check_bad_input_is_one_line_exit_2(args, needle):
    proc = mmreview(*args, "--quiet")
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("mmreview: error: ") and needle in err
    assert "Traceback" not in err


def test_report_bad_input(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    other = tmp_path / "v9.json"
    data = samples.constructed_clean().to_json()
    data["schema_version"] = 9
    other.write_text(json.dumps(data))
    for path, needle in ((bad, "not JSON"), (other, "unknown review schema version 9"),
                         (tmp_path / "missing.json", "no such file")):
        proc = mmreview("report", str(path), "--format", "email")
        err = proc.stderr.decode()
        assert proc.returncode == 2 and err.count("\n") == 1 and needle in err, err


def test_check_new_failure_on_the_narrow_matrix():
    """A real new failure: the xarray sample breaks xas_find(); x86_64 xarray at base and tip."""
    proc = mmreview("check", str(SERIES / "matrix-break-xarray.mbox"), "--arch", "x86_64",
                    "--binary", "xarray", "--format", "json", "--quiet")
    assert proc.returncode == 1, proc.stderr.decode()
    data = json.loads(proc.stdout)
    VALIDATOR.validate(data)
    assert data["verdict"] == "regressions"
    (cell,) = data["cells"]
    assert (cell["target"], cell["binary"], cell["base"], cell["verdict"]) == \
        ("x86_64", "xarray", "pass", "new-failure")
    assert cell["tip_result"]["command"] and cell["tip_result"]["excerpt"]
    assert [t["name"] for t in data["targets"]] == ["x86_64"]
