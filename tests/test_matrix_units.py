"""The matrix's stages one by one, on output captured from real runs (tests/data/runs/, made by
tests/data/capture.py on 6.1, 6.12 and 7.3 and each target this machine has): the run and build
parsers, the verdict and signature logic, the recipe-problem detection, and both schedulers.
No build and no tree: a parser change is checked in seconds (the end-to-end runs are
test_matrix*.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import git
from mmreview.matrix import suites as S
from mmreview.matrix import targets as T
from mmreview.matrix.build import BuildOutcome, BuildSpec, ProcessRegistry, recipe_problem, tree_relative
from mmreview.matrix.cell import runnable, unbuilt_result
from mmreview.matrix.executors.local import LocalScheduler
from mmreview.matrix.executors.scheduler import BUILD_SECONDS, Build, Event, Scheduler
from mmreview.matrix.parse import build_errors, first_build_error, parse_run, signature
from mmreview.matrix.results import (BUILD_FAILED, CRASH, FAIL, FAILING, NOT_RUN, PASS, V_NEW, V_NOT_RUN,
                                     V_PASS, V_PRE, RunResult, verdict)

RUNS = Path(__file__).parent / "data" / "runs"
INDEX = json.loads((RUNS / "index.json").read_text())
SRC = Path("/work/src")          # the build copy's root, as capture.py writes it in the logs


def cases(kind: str) -> list[dict]:
    return [c for c in INDEX if c["kind"] == kind]


def case(log: str) -> dict:
    return next(c for c in INDEX if c["log"] == log)


def result(log: str) -> RunResult:
    c = case(log)
    return RunResult(**c["result"]) if c["kind"] == "run" else RunResult(**c["cells"][0])


def spec_of(c: dict, binaries: tuple[str, ...], sanitizers: list[str]) -> BuildSpec:
    return BuildSpec(target=T.get_target(c["target"]), suite=S.get_suite(c["suite"]),
                     binaries=binaries, sanitizers=tuple(sanitizers), confinement="bwrap")


def outcome_of(c: dict, text: str) -> BuildOutcome:
    """What build() makes of a failed build's log (its reading of the log, without the build)."""
    suite_dir = S.get_suite(c["suite"]).directory
    return BuildOutcome(ok=False, directory=SRC / suite_dir, log=Path("/dev/null"), duration=1.0,
                        error=[tree_relative(l, SRC, suite_dir) for l in first_build_error(text)],
                        errors=[tree_relative(l, SRC, suite_dir) for l in build_errors(text)],
                        src=SRC, recipe=c["recipe"], absent=c["absent"], timed_out=c["timed_out"])


def test_the_captured_logs_cover_every_kernel_and_every_target():
    assert {c["kernel"] for c in INDEX} >= {"6.1", "6.12", "7.3"}
    assert {c["target"] for c in INDEX} == {t.name for t in T.all_targets()}
    for c in INDEX:
        text = (RUNS / c["log"]).read_text()
        assert "/root" not in text and "/home" not in text and "matrix-work" not in text, c["log"]


# ---------------------------------------------------------------- the run parser

@pytest.mark.parametrize("c", cases("run"), ids=lambda c: c["log"])
def test_each_captured_run_reads_as_the_real_run_did(c):
    """parse_run on the log, then what cell.run_binary adds (paths as in the tree, the
    signature), gives the RunResult the real run gave."""
    want = RunResult(**c["result"])
    r = parse_run(c["target"], c["suite"], c["binary"], (RUNS / c["log"]).read_text(), c["returncode"],
                  c["seconds"], c["timed_out"], c["timeout"])
    suite_dir = S.get_suite(c["suite"]).directory
    r.excerpt = [tree_relative(l, SRC, suite_dir) for l in r.excerpt]
    r.reason = tree_relative(r.reason, SRC, suite_dir)
    assert (r.state, r.passed, r.total, r.reason, r.excerpt) == \
        (want.state, want.passed, want.total, want.reason, want.excerpt)
    assert signature(r) == want.signature


def test_counts_and_crashes_as_the_suites_print_them():
    xarray = result("6.12-base-x86_64-radix.xarray.log")
    assert xarray.state == PASS and xarray.total > 1_000_000 and xarray.passed == xarray.total
    broken = result("6.12-break-tip-x86_64-radix.xarray.log")
    assert broken.state in (FAIL, CRASH) and broken.signature.startswith(broken.state)
    assert "BUG at check_" in " ".join(broken.excerpt) or "lib/test_xarray.c" in " ".join(broken.excerpt)
    i386 = result("6.12-32bit-tip-i386-radix.xarray.log")
    assert i386.state in (FAIL, CRASH) and "check_xa_err" in " ".join([i386.reason, *i386.excerpt])
    vma = result("7.3-base-x86_64-vma.vma.log")
    assert vma.state == PASS and vma.total >= 10 and vma.passed == vma.total


# ---------------------------------------------------------------- the build parser

@pytest.mark.parametrize("c", cases("build"), ids=lambda c: c["log"])
def test_each_captured_build_failure_gives_the_cells_the_real_build_did(c):
    outcome = outcome_of(c, (RUNS / c["log"]).read_text())
    assert runnable(outcome) == []
    for want in map(lambda d: RunResult(**d), c["cells"]):
        spec = spec_of(c, tuple(c["binaries"]), want.sanitizers)
        r = unbuilt_result(spec, S.get_suite(c["suite"]).binary(want.binary), outcome)
        assert (r.state, r.reason, r.excerpt, r.signature, r.infra, r.command) == \
            (want.state, want.reason, want.excerpt, want.signature, want.infra, want.command)


def test_build_errors_read_as_in_the_tree():
    vma = result("6.12-base-x86_64-vma.build.log")
    assert vma.state == BUILD_FAILED and "undefined reference to `vma_close'" in vma.reason
    assert "mm/vma.c:" in " ".join(vma.excerpt) and "/work" not in " ".join(vma.excerpt)
    patch2 = result("6.12-buildbreak-patch2-x86_64-radix.build.log")
    assert patch2.state == BUILD_FAILED and "xas_sibling_end" in patch2.reason


# ---------------------------------------------------------------- recipe problems

def _tree_with(tmp_path: Path, files: list[str]) -> tuple[Path, str]:
    repo = tmp_path / "tree"
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    for f in files:
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        (repo / f).write_text("/* */\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "tree")
    return repo, git(repo, "rev-parse", "HEAD").strip()


def test_a_file_the_tree_has_but_the_export_left_out_is_mmreviews_recipe(tmp_path):
    c = case("6.12-recipegap-tip-x86_64-vma.build.log")
    text = (RUNS / c["log"]).read_text()
    assert c["recipe"] and "kernel/sched/sched.h" in c["recipe"]       # what the real run said
    spec = spec_of(c, ("vma",), [])
    repo, rev = _tree_with(tmp_path, ["kernel/sched/sched.h", "mm/vma.c"])
    assert recipe_problem(text, spec, SRC, repo, rev) == c["recipe"]
    # The same log on a tree without that file: the series' own mistake, a verdict.
    repo2, rev2 = _tree_with(tmp_path / "other", ["mm/vma.c"])
    assert recipe_problem(text, spec, SRC, repo2, rev2) == ""
    cell = result(c["log"])
    assert (cell.state, cell.infra) == (NOT_RUN, True) and cell.reason.startswith("mmreview could not build it")


def test_the_trees_own_build_failures_are_no_recipe_problem(tmp_path):
    repo, rev = _tree_with(tmp_path, ["mm/vma.c", "lib/xarray.c"])
    for log in ("6.12-base-x86_64-vma.build.log", "6.12-buildbreak-patch2-x86_64-radix.build.log"):
        c = case(log)
        assert c["recipe"] == ""
        spec = spec_of(c, tuple(c["binaries"]), [])
        assert recipe_problem((RUNS / log).read_text(), spec, SRC, repo, rev) == ""


# ---------------------------------------------------------------- verdicts and signatures

def test_verdicts_of_captured_results():
    passed = result("6.12-base-x86_64-radix.xarray.log")
    broken = result("6.12-break-tip-x86_64-radix.xarray.log")
    vma = result("6.12-base-x86_64-vma.build.log")
    assert verdict(passed, broken) == V_NEW
    assert verdict(passed, passed) == V_PASS
    assert verdict(vma, vma) == V_PRE                      # 6.12's vma_close, at base and tip
    assert verdict(None, broken) == V_NEW
    gap = result("6.12-recipegap-tip-x86_64-vma.build.log")
    assert verdict(vma, gap) == V_NOT_RUN                  # mmreview's fault: no verdict


def test_a_failure_moved_to_other_lines_keeps_its_signature():
    c = case("6.12-base-x86_64-vma.build.log")
    text = (RUNS / c["log"]).read_text()
    moved = text.replace("mm/vma.c:", "mm/vma.c:1").replace(".c:", ".c:7")
    a, b = outcome_of(c, text), outcome_of(c, moved)
    spec = spec_of(c, ("vma",), [])
    ra, rb = (unbuilt_result(spec, S.get_suite("vma").binary("vma"), o) for o in (a, b))
    assert ra.signature == rb.signature and ra.signature.startswith(BUILD_FAILED)
    # Another undefined reference besides it is another failure (a changed failure).
    more = text + "\n/usr/bin/ld: vma.o: in function `f':\nmm/vma.c:12: undefined reference to `g'\n"
    rc = unbuilt_result(spec, S.get_suite("vma").binary("vma"), outcome_of(c, more))
    assert rc.signature != ra.signature


# ---------------------------------------------------------------- the scheduler both executors share

class Queued(Scheduler):
    """The shared Scheduler with a list for a pool: what it queues, and where."""

    def __init__(self, tmp_path: Path, use_cache: bool = False) -> None:
        self.events: list[Event] = []
        super().__init__(1, ProcessRegistry(), self.events.append, None, tmp_path, use_cache)
        self.queued: list[tuple[str, str | None]] = []

    def _queue_build(self, b: Build, near: str | None = None) -> None:
        b.queued = True
        self.queued.append((b.label, near))

    def wait(self) -> None:
        pass


def _build(label: str, target: str = "x86_64", binaries=("xarray",), key: str = "k") -> Build:
    s = S.get_suite("radix-tree")
    t = T.get_target(target)
    spec = BuildSpec(target=t, suite=s, binaries=tuple(binaries), sanitizers=())
    return Build(spec=spec, rev=label, key=key + label, label=label, binaries=[s.binary(b) for b in binaries])


def test_a_tip_build_waits_for_its_base_and_goes_where_it_ran(tmp_path):
    s = Queued(tmp_path)
    base, tip, patch = _build("base"), _build("tip"), _build("patch 1")
    s.add_build(base)
    s.add_build(tip, after=base)
    s.add_build(patch, after=base)
    assert s.queued == [("base", None)]                     # the followers wait
    s._finished(base, near="tcp://w1")
    assert s.queued == [("base", None), ("tip", "tcp://w1"), ("patch 1", "tcp://w1")]
    late = _build("late")
    s.add_build(late, after=base)                           # its base is done: it goes at once
    assert s.queued[-1] == ("late", None)


def test_the_build_record_and_the_result_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    s = Queued(tmp_path, use_cache=True)
    b = _build("base", binaries=("xarray", "multiorder"))
    outcome = BuildOutcome(ok=True, directory=SRC, log=Path("/dev/null"), duration=3.14159,
                           cache_hits=2, cache_misses=5)
    s._built(b, outcome)
    s._built(b, outcome, worker="tcp://w1")
    assert s.builds == [{"label": "base", "seconds": 3.14, "cache_hits": 2, "cache_misses": 5},
                        {"label": "base", "seconds": 3.14, "cache_hits": 2, "cache_misses": 5,
                         "worker": "tcp://w1"}]
    assert [e.kind for e in s.events] == ["built", "built"]
    for log in ("6.12-base-x86_64-radix.xarray.log", "6.12-base-x86_64-radix.multiorder.log"):
        s._record(b, result(log))
    again = _build("base", binaries=("xarray", "multiorder"))
    s.add_build(again)
    assert s.queued == [] and set(again.results) == {"xarray", "multiorder"}
    assert all(r.cached for r in again.results.values())
    assert again.results["xarray"].total == result("6.12-base-x86_64-radix.xarray.log").total


def test_longer_chains_go_first():
    native, qemu = _build("n", "x86_64", ("multiorder",)), _build("q", "arm64", ("multiorder",))
    assert qemu.work() > native.work() > BUILD_SECONDS
    assert _build("x", "x86_64", ("xarray", "multiorder")).work() > native.work()


def test_the_local_pool_runs_the_longest_work_first_and_surfaces_errors(tmp_path):
    s = LocalScheduler(1, ProcessRegistry(), None, None, tmp_path, False)
    order: list[float] = []
    for p in (1.0, 30.0, 8.0):
        s.submit(p, lambda p=p: order.append(p))
    s.wait()
    assert order == [30.0, 8.0, 1.0]
    s = LocalScheduler(2, ProcessRegistry(), None, None, tmp_path, False)

    def boom() -> None:
        raise RuntimeError("a task failed")
    s.submit(1.0, boom)
    with pytest.raises(RuntimeError, match="a task failed"):
        s.wait()
    assert s.procs.cancelled.is_set()       # what is still queued is skipped


# ---------------------------------------------------------------- the cluster's side of it

class _Client:
    """Only what ClusterScheduler asks of a Dask client before any task is sent."""

    def subscribe_topic(self, topic, handler) -> None:
        pass


class _Cluster:
    address, review, workers, client = "tcp://scheduler", "r1", {}, _Client()


class _Done:
    status = "finished"

    def __init__(self, reply: dict) -> None:
        self.reply = reply

    def result(self) -> dict:
        return self.reply


def test_a_worker_reply_becomes_the_cells_the_local_pool_makes(tmp_path):
    """A build that failed on a worker: its BuildOutcome travels as JSON and gives the same cells
    as the local pool's (cell.unbuilt_result), recorded with the worker; its followers go there."""
    from mmreview.matrix.executors.dask_scheduler import ClusterScheduler
    c = case("6.12-buildbreak-patch2-x86_64-radix.build.log")
    outcome = outcome_of(c, (RUNS / c["log"]).read_text())
    assert BuildOutcome.from_json(json.loads(json.dumps(outcome.to_json()))) == outcome
    s = ClusterScheduler(_Cluster(), 1, ProcessRegistry(), None, None, tmp_path, False)
    queued = []
    s._queue_build = lambda b, near=None, force_export=False: queued.append((b.label, near))
    b, follower = _build("patch 2", binaries=("multiorder",)), _build("patch 3", binaries=("multiorder",))
    b.queued = True
    b.followers.append(follower)
    s._finish(b, _Done({"worker": "tcp://w1", "outcome": outcome.to_json(), "log": "", "results": []}))
    want = RunResult(**c["cells"][0])
    got = b.results["multiorder"]
    assert (got.state, got.reason, got.excerpt, got.signature, got.worker) == \
        (want.state, want.reason, want.excerpt, want.signature, "tcp://w1")
    assert s.builds[0]["worker"] == "tcp://w1" and queued == [("patch 3", "tcp://w1")]


def test_a_build_no_worker_survived_is_not_run_and_infra(tmp_path):
    from mmreview.matrix.executors.dask_scheduler import ClusterScheduler
    s = ClusterScheduler(_Cluster(), 1, ProcessRegistry(), None, None, tmp_path, False)
    b = _build("base", binaries=("xarray", "multiorder"))
    s._all_not_run(b, "every cluster worker that ran it died")
    assert {r.state for r in b.results.values()} == {NOT_RUN} and all(r.infra for r in b.results.values())
    assert b.finished and not set(r.state for r in b.results.values()) & set(FAILING)
