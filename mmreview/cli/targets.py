"""`mmreview targets` (what this machine can build and run) and `mmreview setup --arch` (provide it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import typer
from rich.table import Table

from mmreview.cli.app import app, run_command, stdout
from mmreview.common import apt
from mmreview.common.errors import EXIT_OK, InfraError
from mmreview.matrix import targets as targets_mod


@app.command("targets")
def targets(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List the target architectures: available here or not, and the apt command that provides them."""
    def body() -> int:
        rows = [(t, targets_mod.availability(t)) for t in targets_mod.all_targets()]
        if as_json:
            print(json.dumps([{**a.to_json(), "summary": t.summary(), "aliases": list(t.aliases),
                               "word_size": t.word_size, "endian": t.endian, "cc": t.cc,
                               "runner": list(t.runner)} for t, a in rows], indent=2))
            return EXIT_OK
        tbl = Table()
        for col in ("target", "available", "how", "sanitizers", "missing / apt command"):
            tbl.add_column(col, overflow="fold")
        for t, a in rows:
            if a.available:
                tbl.add_row(t.name, "[green]yes[/]", t.summary(), ", ".join(a.sanitizers) or "none", "")
            else:
                fix = a.reason + (f"\n{a.apt_command}" if a.apt_command else "")
                tbl.add_row(t.name, "[red]no[/]", t.summary(), "-", fix)
        stdout.print(tbl)
        from mmreview.matrix.sandbox import INSTALL_HINT, probe
        tool, why = probe()
        stdout.print(f"series code runs confined by {tool}" if tool else
                     f"series code cannot be confined here: {why}; {INSTALL_HINT}", markup=False)
        return EXIT_OK
    raise typer.Exit(run_command(body))


def _apt(cmd: str) -> None:
    """Run one `a && b && c` install command (as mmreview.matrix.targets writes them).  apt waits
    for the dpkg lock and is tried again on a mirror caught mid-sync (mmreview.common.apt); an
    `apt-get update` that still fails in part leaves the lists it has, which may be enough."""
    for step in cmd.split(" && "):
        args = step.split()
        print(f"mmreview: setup: {step}", file=sys.stderr, flush=True)
        if args[0] != "apt-get":
            proc = subprocess.run(args)
            if proc.returncode != 0:
                raise InfraError(args[0], f"`{step}` failed with status {proc.returncode}")
            continue
        packages = [a for a in args[2:] if not a.startswith("-")] or [step]
        try:
            apt.run(lambda: _relayed(apt.argv(*args)), step, packages,
                    say=lambda m: print(f"mmreview: setup: {m}", file=sys.stderr, flush=True))
        except InfraError as exc:
            if args[1] != "update":
                raise
            print(f"mmreview: setup: {exc.reason}; going on with the package lists it has",
                  file=sys.stderr)


def _relayed(argv: list[str]) -> tuple[int, str]:
    """Run apt with its progress on the user's terminal; its errors (stderr) shown and kept."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            errors="replace", env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    kept = []
    assert proc.stderr is not None
    for line in proc.stderr:
        sys.stderr.write(line)
        kept.append(line)
    return proc.wait(), "".join(kept)


@app.command("setup")
def setup(arch: str = typer.Option(..., "--arch", help="Targets to provide, comma-separated, or all."),
          dry_run: bool = typer.Option(False, "--dry-run", help="Print the commands, run nothing.")) -> None:
    """Install what the named targets lack (Debian: apt, multiarch), and build riscv64's liburcu."""
    def body() -> int:
        # ccache: not needed to build, but a tip build then recompiles only what the series changed.
        # bubblewrap: the sandbox every build and test of a series runs in (mmreview/matrix/sandbox.py).
        # python3-seccomp: the sandbox's pid 1 hears the writes a series tries through it.
        from mmreview.matrix.sandbox import seccomp_missing
        for tool, pkg in (("ccache", "ccache"), ("bwrap", "bubblewrap"), ("", "python3-seccomp")):
            if (shutil.which(tool) is None) if tool else seccomp_missing():
                if dry_run:
                    print(f"apt-get install -y {pkg}")
                else:
                    _apt(f"apt-get install -y {pkg}")
        for t in targets_mod.parse_arch_list(arch):
            a = targets_mod.availability(t)
            if a.available:
                print(f"{t.name}: available")
                continue
            if a.apt_command:
                if dry_run:
                    print(a.apt_command)
                else:
                    _apt(a.apt_command)
            if t.urcu == "riscv_urcu" and targets_mod.riscv_urcu_prefix() is None:
                if dry_run:
                    print(f"{t.name}: build liburcu from Debian's source package (mmreview.matrix.riscv_urcu)")
                else:
                    from mmreview.matrix import riscv_urcu
                    riscv_urcu.ensure_riscv64_liburcu(
                        progress=lambda *a: print("mmreview: setup:", *a, file=sys.stderr, flush=True))
            if dry_run:
                continue
            after = targets_mod.availability(t)
            if not after.available:
                raise InfraError(t.name, f"still not available after setup: {after.reason}")
            print(f"{t.name}: available")
        return EXIT_OK
    raise typer.Exit(run_command(body))
