"""`mmreview tree init|path|list`: the provisioned kernel trees (the default and the others, as
kernel/table.py lists them)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from mmreview.cli.app import app, fail_usage, run_command, stderr
from mmreview.kernel import table as kernels
from mmreview.kernel import trees as tree_mod

tree_app = typer.Typer(help="The provisioned kernel trees: Debian's linux-source packages as git repositories "
                            f"({kernels.known_text()}).",
                       no_args_is_help=True)
app.add_typer(tree_app, name="tree")

_KernelOpt = typer.Option(None, "--kernel", "-k", metavar="VERSION",
                          help=f"Which kernel: {', '.join(kernels.known())} (default {kernels.DEFAULT}).")


@tree_app.command("init")
def init(kernel: Optional[str] = _KernelOpt,
         tarball: Optional[Path] = typer.Option(
             None, "--tarball", metavar="PATH",
             help="Import this kernel source tarball instead, into the tree its Makefile's "
                  "VERSION.PATCHLEVEL names."),
         update: bool = typer.Option(
             False, "--update", help="Move the tree to the newest version Debian serves (by default "
                                     "it is the version mmreview was verified on).")) -> None:
    """Provision a kernel tree: fetch Debian's linux-source package if needed and import it into git."""
    if kernel is not None and tarball is not None:
        fail_usage("--kernel and --tarball: give one or the other")
    if update and tarball is not None:
        fail_usage("--update and --tarball: a tarball has no newer version to move to")

    def say(note: str) -> None:
        print(f"mmreview: note: {note}", file=sys.stderr, flush=True)

    def provision(report):
        if tarball is not None:
            return tree_mod.init_tarball(tarball.expanduser(), report)
        if kernel is not None:
            return tree_mod.init_kernel(kernel, report, update=update, say=say)
        return tree_mod.init_default_tree(report, update=update, say=say)

    def body() -> None:
        if kernel is not None:
            kernels.get(kernel)               # an unknown name fails before anything else
        start = time.monotonic()
        if stderr.is_terminal:
            with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                          TimeElapsedColumn(), console=stderr, transient=True) as prog:
                task = prog.add_task("kernel tree", total=None)

                def report(what: str, done: int, total: int) -> None:
                    prog.update(task, description=what, completed=done, total=total)
                path, created = provision(report)
        else:
            last: list = [None]

            def report(what: str, done: int, total: int) -> None:
                pct = done * 100 // total if total else 0
                if (what, pct // 10) != last[0]:      # plain log lines, one per 10% of each step
                    last[0] = (what, pct // 10)
                    print(f"mmreview: {what}: {pct}%", file=sys.stderr, flush=True)
            path, created = provision(report)
        t = tree_mod.open_tree(path)
        name = path.name[len("linux-"):-len(".git")]
        label = "default tree" if name == kernels.DEFAULT else f"kernel {name} tree"
        verb = "created" if created else "already provisioned"
        subject = tree_mod.run_git(path, "log", "-1", "--format=%s", "HEAD").stdout.decode().strip()
        print(f"{label} {verb} in {time.monotonic() - start:.1f}s at {t.head[:12]} ({subject})",
              file=sys.stderr)
        print(path)
    run_command(body)


@tree_app.command("path")
def path(kernel: Optional[str] = _KernelOpt) -> None:
    """Print where a kernel's tree is (the last line is the path)."""
    def body() -> None:
        name = kernel.strip() if kernel is not None else kernels.DEFAULT
        p = tree_mod.tree_path(name)
        if not (kernels.NAME_RE.match(name) and (p / "HEAD").exists()):
            kernels.get(name)                 # unknown and not provisioned: an error naming the known
        if not (p / "HEAD").exists():
            hint = "" if name == kernels.DEFAULT else f" --kernel {name}"
            print(f"not provisioned yet: run `mmreview tree init{hint}`", file=sys.stderr)
        print(p)
    run_command(body)


@tree_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="One JSON array of objects."),
          refresh: bool = typer.Option(False, "--refresh", help="Ask Debian now which versions it "
                                                                "serves (else: as of the last fetch).")) -> None:
    """One line per kernel: name, provisioned or not, Debian version, commit, path, and whether
    Debian serves a newer version (`tree init --update` moves to it)."""
    def body() -> None:
        rows = tree_mod.list_trees(refresh=refresh)
        if as_json:
            print(json.dumps(rows, indent=1))
            return
        for r in rows:
            state = "provisioned" if r["provisioned"] else "not provisioned"
            notes = ["default"] if r["default"] else []
            if r["provisioned"] and r["verified"] and r["debian_version"] != r["verified"]:
                notes.append(f"verified on {r['verified']}")
            if r["newer"]:
                notes.append(f"Debian now serves {r['newer']}")
            version = r["debian_version"] or r["release"] or "-"
            print(f"{r['kernel']:<6} {state:<16} {version:<20} {(r['commit'] or '-')[:12]:<12} "
                  f"{r['path']}" + (f" ({'; '.join(notes)})" if notes else ""))
    run_command(body)
