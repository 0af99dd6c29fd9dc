"""Capture real build and run logs for the matrix's unit tests (tests/test_matrix_units.py).

    .venv/bin/python tests/data/capture.py        # a few minutes; writes tests/data/runs/

Each case applies a sample series on a provisioned tree, builds one suite for one target at the
base or the tip as a review does (confined, through the compiler cache), runs the binaries, and
keeps each log (cut to its head and tail when long, and only if the cut reads the same) with what
the real run gave: the exit status, and the RunResult mmreview made of it.  Paths of the build
directory are written as /work: no host path, and no kernel source, only the suites' own output.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from mmreview.apply.checkout import apply_series
from mmreview.common.paths import work_root
from mmreview.common.rundirs import new_run_dir
from mmreview.intake.read import load_series
from mmreview.kernel.trees import open_tree
from mmreview.matrix import suites as S
from mmreview.matrix import targets as T
from mmreview.matrix.build import BuildSpec, ProcessRegistry, build, export_revision, read_log
from mmreview.matrix.cell import run_binary, runnable, unbuilt_result
from mmreview.matrix.executors.local import LocalExecutor
from mmreview.matrix.parse import parse_run

HERE = Path(__file__).parent
SERIES = HERE.parent.parent / "series"
OUT = HERE / "runs"
KEEP = 120          # lines kept at each end of a long log

# (name, tree, series, revision: "base" | "tip" | patch number, target, suite, binaries)
CASES = [
    ("6.12-base-x86_64-radix", "6.12", "clean-3.mbox", "base", "x86_64", "radix-tree", ("xarray", "multiorder")),
    ("6.12-base-x86_64-vma", "6.12", "clean-3.mbox", "base", "x86_64", "vma", ("vma",)),
    ("6.12-32bit-tip-i386-radix", "6.12", "matrix-32bit.mbox", "tip", "i386", "radix-tree", ("xarray",)),
    ("6.12-break-tip-x86_64-radix", "6.12", "matrix-break-xarray.mbox", "tip", "x86_64", "radix-tree", ("xarray",)),
    ("6.12-buildbreak-patch2-x86_64-radix", "6.12", "matrix-build-break.mbox", 2, "x86_64", "radix-tree",
     ("multiorder",)),
    ("6.12-recipegap-tip-x86_64-vma", "6.12", "matrix-recipe-gap.mbox", "tip", "x86_64", "vma", ("vma",)),
    ("6.12-base-arm64-radix", "6.12", "clean-3.mbox", "base", "arm64", "radix-tree", ("multiorder",)),
    ("6.12-base-s390x-radix", "6.12", "clean-3.mbox", "base", "s390x", "radix-tree", ("multiorder",)),
    ("6.12-base-ppc64le-radix", "6.12", "clean-3.mbox", "base", "ppc64le", "radix-tree", ("multiorder",)),
    ("6.12-base-riscv64-radix", "6.12", "clean-3.mbox", "base", "riscv64", "radix-tree", ("multiorder",)),
    ("6.1-base-x86_64-radix", "6.1", "kernel-6.1-tools-fallthrough.mbox", "base", "x86_64", "radix-tree",
     ("multiorder",)),
    ("6.1-base-x86_64-vma", "6.1", "kernel-6.1-tools-fallthrough.mbox", "base", "x86_64", "vma", ("vma",)),
    ("7.3-base-x86_64-radix", "7.3", "kernel-7.3-maple-doc.mbox", "base", "x86_64", "radix-tree",
     ("xarray", "multiorder")),
    ("7.3-base-x86_64-vma", "7.3", "kernel-7.3-maple-doc.mbox", "base", "x86_64", "vma", ("vma",)),
]


class Recording(ProcessRegistry):
    """The registry a review uses, keeping what each process returned."""

    def __init__(self) -> None:
        super().__init__()
        self.ran: dict[str, object] = {}

    def run(self, cmd, cwd, log, **kw):
        ran = super().run(cmd, cwd, log, **kw)
        self.ran[Path(log).name] = ran
        return ran


def cut(text: str) -> str:
    lines = text.splitlines()
    if len(lines) <= 2 * KEEP:
        return text
    return "\n".join([*lines[:KEEP], "[... cut by tests/data/capture.py ...]", *lines[-KEEP:]]) + "\n"


def capture(name, kernel, series, at, target, suite, binaries, box) -> list[dict]:
    tree = open_tree(kernel)
    t, s = T.get_target(target), S.get_suite(suite)
    a = T.availability(t)
    if not a.available:
        print(f"{name}: skipped, {target} not available: {a.reason}", file=sys.stderr)
        return []
    out = []
    with apply_series(tree, load_series(str(SERIES / series), tree)) as co:
        rev = co.base_sha if at == "base" else co.result.tip_sha if at == "tip" else co.rev_after(at)
        run_dir = new_run_dir(work_root())
        try:
            export = export_revision(co, rev, run_dir / "rev", t.tree_paths)
            wd = run_dir / name
            wd.mkdir(parents=True)
            spec = BuildSpec(target=t, suite=s, binaries=binaries, sanitizers=tuple(a.sanitizers),
                             urcu_prefix=a.urcu_prefix, confinement="bwrap")
            procs = Recording()
            outcome = build(export, rev, spec, wd, procs, cache_base=work_root(), repo=co.path,
                            box=box, trusted=at == "base")

            def host_free(text: str) -> str:
                return text.replace(str(wd), "/work")

            if not outcome.ok:
                log = f"{name}.build.log"
                (OUT / log).write_text(host_free(cut(read_log(outcome.log))))
                out.append({"log": log, "kind": "build", "kernel": kernel, "target": target,
                            "suite": suite, "binaries": list(binaries), "absent": outcome.absent,
                            "recipe": host_free(outcome.recipe), "timed_out": outcome.timed_out,
                            "cells": [unbuilt_result(spec, s.binary(b), outcome).to_json()
                                      for b in binaries if b not in runnable(outcome)]})
            for b in binaries:
                if b not in runnable(outcome):
                    continue
                r = run_binary(spec, s.binary(b), outcome, procs, wd, box)
                ran = procs.ran[f"{b}.log"]
                full = host_free(read_log(wd / f"{b}.log"))
                text = cut(full)
                timeout = s.binary(b).timeout * t.timeout_factor
                again = [parse_run(target, suite, b, x, ran.returncode, ran.seconds, ran.timed_out, timeout)
                         for x in (full, text)]
                if (again[0].state, again[0].passed, again[0].total, again[0].reason) != \
                        (again[1].state, again[1].passed, again[1].total, again[1].reason):
                    text = full            # the cut would read otherwise: keep it whole
                log = f"{name}.{b}.log"
                (OUT / log).write_text(text)
                out.append({"log": log, "kind": "run", "kernel": kernel, "target": target,
                            "suite": suite, "binary": b, "returncode": ran.returncode,
                            "timed_out": ran.timed_out, "timeout": timeout,
                            "seconds": round(ran.seconds, 2), "result": r.to_json()})
                print(f"{name}: {b}: {r.state} ({r.reason})", file=sys.stderr)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
    return out


def main() -> None:
    OUT.mkdir(exist_ok=True)
    box = LocalExecutor().confinement(open_tree(None).path)
    box = box if box.confined else None
    only = set(sys.argv[1:])
    index = OUT / "index.json"
    cases = json.loads(index.read_text()) if index.exists() else []
    for case in CASES:
        if only and case[0] not in only:
            continue
        cases = [c for c in cases if not c["log"].startswith(case[0] + ".")]
        cases += capture(*case, box=box)
    index.write_text(json.dumps(sorted(cases, key=lambda c: c["log"]), indent=1) + "\n")


if __name__ == "__main__":
    main()
