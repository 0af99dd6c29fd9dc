"""Targets are data: one TOML file each, loaded, looked up by alias, checked against this machine."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import mmreview
from mmreview.matrix import targets as T
from mmreview.common.errors import BadInput

SIX = {"x86_64", "i386", "arm64", "s390x", "ppc64le", "riscv64"}


def test_six_targets_with_the_facts_the_suites_depend_on():
    ts = {t.name: t for t in T.all_targets()}
    assert set(ts) == SIX
    assert ts["i386"].word_size == 32 and dict(ts["i386"].make_vars) == {"BUILD": "32"}
    assert ts["s390x"].endian == "big" and all(t.endian == "little" for n, t in ts.items() if n != "s390x")
    assert ts["x86_64"].native and ts["i386"].native
    # qemu without -L where multiarch provides the loader; with -L for riscv64's cross sysroot.
    assert ts["arm64"].runner == ("qemu-aarch64",)
    assert ts["riscv64"].runner == ("qemu-riscv64", "-L", "/usr/riscv64-linux-gnu")
    assert "arch/riscv/include" in ts["riscv64"].tree_paths
    assert set(ts["x86_64"].sanitizers) == {"address", "undefined"}
    assert ts["arm64"].sanitizers == ()
    assert T.all_targets()[0].name == "x86_64"


@pytest.mark.parametrize("alias,name", [("amd64", "x86_64"), ("aarch64", "arm64"), ("ppc64el", "ppc64le"),
                                        ("i686", "i386"), ("S390X", "s390x"), ("riscv", "riscv64")])
def test_aliases(alias, name):
    assert T.get_target(alias).name == name


def test_arch_list_parsing():
    assert [t.name for t in T.parse_arch_list("arm64, x86_64,aarch64")] == ["arm64", "x86_64"]
    assert len(T.parse_arch_list(None)) == 6 == len(T.parse_arch_list("all"))
    with pytest.raises(BadInput, match="unknown architecture"):
        T.parse_arch_list("sparc64")


def test_adding_an_architecture_is_adding_one_file(tmp_path, monkeypatch):
    for p in T.TARGETS_DIR.glob("*.toml"):
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "mips64el.toml").write_text(
        'name = "mips64el"\naliases = ["mips"]\ncc = "mips64el-linux-gnuabi64-gcc"\nword_size = 64\n'
        'endian = "little"\nrunner = ["qemu-mips64el"]\ndpkg_arch = "mips64el"\n'
        'triplet = "mips64el-linux-gnuabi64"\n'
        'packages = ["gcc-mips64el-linux-gnuabi64", "qemu-user", "liburcu-dev:mips64el"]\n')
    monkeypatch.setattr(T, "TARGETS_DIR", tmp_path)
    T.all_targets.cache_clear()
    try:
        t = T.get_target("mips")
        assert t.name == "mips64el" and len(T.all_targets()) == 7
        a = T.availability(t)
        # Not on this machine: unavailable, with the exact command that would provide it.
        assert not a.available and "mips64el-linux-gnuabi64-gcc not found" in a.reason
        assert "gcc-mips64el-linux-gnuabi64" in a.missing_packages
        assert "apt-get install -y" in a.apt_command and "gcc-mips64el-linux-gnuabi64" in a.apt_command
        assert a.apt_command.startswith("dpkg --add-architecture mips64el && apt-get update && ")
    finally:
        T.all_targets.cache_clear()


def test_ci_targets_available_here():
    """x86_64, i386 and arm64 are what CI runs: a missing one is a set-up failure, not a skip."""
    for name in ("x86_64", "i386", "arm64"):
        a = T.availability(T.get_target(name))
        assert a.available, f"{name}: {a.reason} -- {a.apt_command}"
    assert T.availability(T.get_target("x86_64")).sanitizers == ["address", "undefined"]


def test_riscv64_without_liburcu_says_how_to_get_it():
    a = T.availability(T.get_target("riscv64"))
    if T.riscv_urcu_prefix() is None:
        assert not a.available and T.RISCV_URCU_HINT in a.reason
    else:
        assert a.available, a.reason
        assert a.urcu_prefix


def test_targets_command():
    proc = mmreview("targets", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["target"]: r for r in json.loads(proc.stdout)}
    assert set(rows) == SIX
    assert rows["x86_64"]["available"] is True
    assert rows["s390x"]["endian"] == "big"
    text = mmreview("targets")
    assert text.returncode == 0 and "riscv64" in text.stdout.decode()


def test_setup_dry_run_and_bad_arch():
    proc = mmreview("setup", "--arch", "x86_64", "--dry-run")
    assert proc.returncode == 0 and b"x86_64: available" in proc.stdout
    bad = mmreview("setup", "--arch", "vax")
    assert bad.returncode == 2 and b"unknown architecture" in bad.stderr
