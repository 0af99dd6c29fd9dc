"""`mmreview hook install|uninstall`: a git pre-push hook that reviews what is pushed."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from ..cliapp import app, run_command
from ..errors import EXIT_OK

hook_app = typer.Typer(help="A git pre-push hook in a kernel tree: review the pushed commits, "
                            "block the push when the review is not clean.", no_args_is_help=True)
app.add_typer(hook_app, name="hook")

_TreeOpt = typer.Option(None, "--tree", help="The kernel work tree (default: the current directory).")


@hook_app.command("install")
def install_cmd(
    tree: Optional[str] = _TreeOpt,
    profile: str = typer.Option("rules", "--profile", help="rules (fast: the review rules only) or "
                                                           "quick (plus a native quick build/run)."),
) -> None:
    """Install the pre-push hook; an existing pre-push hook is kept and run first."""
    def body() -> int:
        from .. import hook
        res = hook.install(tree, profile)
        verb = "updated" if res.replaced_ours else "installed"
        print(f"mmreview pre-push hook {verb}: {res.hook} (profile {profile})")
        if res.chained:
            print(f"the previous pre-push hook runs first: {res.chained}")
        return EXIT_OK
    raise typer.Exit(run_command(body))


@hook_app.command("uninstall")
def uninstall_cmd(tree: Optional[str] = _TreeOpt) -> None:
    """Remove mmreview's pre-push hook and restore the one it chained, if any."""
    def body() -> int:
        from .. import hook
        path, restored = hook.uninstall(tree)
        print(f"removed {path}" + ("; restored the previous pre-push hook" if restored else ""))
        return EXIT_OK
    raise typer.Exit(run_command(body))


@hook_app.command("run", hidden=True)
def run_cmd(
    profile: str = typer.Option("rules", "--profile"),
    args: Optional[List[str]] = typer.Argument(None, help="git's pre-push arguments: remote, url."),
) -> None:
    """What the installed hook calls: reads git's pre-push lines on stdin."""
    def body() -> int:
        from .. import hook
        from ..pipeline import CheckRequest, progress_display, run_check
        from ..render.terminal import print_review, report_console
        from ..cliapp import stderr
        root = hook.repo_root(None)
        ranges = hook.push_ranges(root, sys.stdin.read())
        worst = EXIT_OK
        out = report_console(sys.stderr)
        for r in ranges:
            native = None
            if profile == "quick":
                from ..targets import all_targets
                native = ",".join(t.name for t in all_targets() if t.native)
            req = CheckRequest(source=r.range, tree=str(root), base=r.base, arch=native,
                               profile=profile, notes=[f"pre-push of {r.local_ref} -> {r.remote_ref}"])
            with progress_display(stderr) as progress:
                review = run_check(req, progress)
            print_review(review, out)
            worst = max(worst, review.exit_code)
        if worst:
            print("mmreview: push blocked: the review is not clean "
                  "(push anyway with `git push --no-verify`)", file=sys.stderr)
        return worst
    raise typer.Exit(run_command(body))
