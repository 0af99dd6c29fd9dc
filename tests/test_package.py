"""mmreview as a kernel developer installs it: a wheel, into a fresh virtualenv, used from a
directory that is not this checkout.  Everything mmreview reads at run time (the rule catalogue,
the target files, the review schema) must be in the wheel, not beside the package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SERIES

RULES = {"lock-order", "exit-mmap-complication", "xa-zero-marker", "maple-store-alloc",
         "error-path-needs-test", "vma-free-rcu", "checkpatch"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The `mmreview` of a fresh venv holding the wheel built from this checkout (its
    dependencies from the package index, as pip or pipx would)."""
    tmp = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "-q", "-w", str(tmp / "dist"), str(REPO)], capture_output=True, text=True,
                           cwd=tmp, timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("mmreview-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], capture_output=True,
                         text=True, cwd=tmp, timeout=900)
    assert pip.returncode == 0, pip.stderr
    shutil.rmtree(tmp / "dist")
    return venv / "bin" / "mmreview"


def run(mmreview: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(mmreview), *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=900)


def test_the_installed_wheel_reviews_a_series_outside_the_checkout(installed, kernel_tree, tmp_path):
    where = tmp_path / "elsewhere"
    where.mkdir()
    python = installed.with_name("python")
    origin = subprocess.run([str(python), "-c", "import mmreview; print(mmreview.__file__)"],
                            capture_output=True, text=True, cwd=where).stdout
    assert origin.startswith(str(installed.parent.parent)) and str(REPO) not in origin

    listed = run(installed, "rules", "--list", cwd=where)
    assert listed.returncode == 0, listed.stderr
    assert all(rule in listed.stdout for rule in RULES), listed.stdout

    series = where / "clean-3.mbox"
    shutil.copy(SERIES / "clean-3.mbox", series)
    review = where / "review.json"
    checked = run(installed, "check", "--profile", "rules", str(series), "--tree", str(kernel_tree),
                  "--json-out", str(review), "--quiet", cwd=where)
    assert checked.returncode == 0, checked.stderr
    assert "CLEAN" in checked.stdout

    # report reads the review back through the schema the wheel carries.
    for fmt in ("json", "markdown", "sarif"):
        again = run(installed, "report", str(review), "--format", fmt, cwd=where)
        assert again.returncode == 0, (fmt, again.stderr)
    data = json.loads(run(installed, "report", str(review), "--format", "json", cwd=where).stdout)
    assert data["verdict"] == "clean" and {r["id"] for r in data["rules"]} >= RULES
    # The targets' definitions are data in the package too.
    targets = run(installed, "targets", "--json", cwd=where)
    assert targets.returncode == 0, targets.stderr
    assert {t["target"] for t in json.loads(targets.stdout)} >= {"x86_64", "arm64", "s390x", "riscv64"}
