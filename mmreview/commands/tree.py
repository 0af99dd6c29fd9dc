"""`mmreview tree init|path`: the provisioned default kernel tree."""

from __future__ import annotations

import sys
import time

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from ..cliapp import app, run_command, stderr
from .. import tree as tree_mod

tree_app = typer.Typer(help="The default kernel tree (Debian's linux-source-6.12 as a git repository).",
                       no_args_is_help=True)
app.add_typer(tree_app, name="tree")


@tree_app.command("init")
def init() -> None:
    """Provision the default tree: install linux-source-6.12 if needed and import it into git."""
    def body() -> None:
        start = time.monotonic()
        if stderr.is_terminal:
            with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                          TimeElapsedColumn(), console=stderr, transient=True) as prog:
                task = prog.add_task("default tree", total=None)

                def report(what: str, done: int, total: int) -> None:
                    prog.update(task, description=what, completed=done, total=total)
                path, created = tree_mod.init_default_tree(report)
        else:
            last = [-1]

            def report(what: str, done: int, total: int) -> None:
                pct = done * 100 // total if total else 0
                if pct // 10 != last[0]:      # plain log lines, one per 10%
                    last[0] = pct // 10
                    print(f"mmreview: {what}: {pct}%", file=sys.stderr, flush=True)
            path, created = tree_mod.init_default_tree(report)
        t = tree_mod.open_tree(None)
        verb = "created" if created else "already provisioned"
        print(f"default tree {verb} in {time.monotonic() - start:.1f}s at {t.head[:12]}", file=sys.stderr)
        print(path)
    run_command(body)


@tree_app.command("path")
def path() -> None:
    """Print where the default tree is (the last line is the path)."""
    def body() -> None:
        p = tree_mod.default_tree_path()
        if not (p / "HEAD").exists():
            print("not provisioned yet: run `mmreview tree init`", file=sys.stderr)
        print(p)
    run_command(body)
