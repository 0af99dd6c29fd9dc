"""`mmreview hook install|uninstall`: a git pre-push hook that reviews what is pushed."""

from __future__ import annotations

from typing import List, Optional

import typer

from mmreview.cli.app import FailOnOption, app, run_command
from mmreview.common.errors import EXIT_OK

hook_app = typer.Typer(help="A git pre-push hook in a kernel tree: review the pushed commits, "
                            "block the push when the review is not clean.", no_args_is_help=True)
app.add_typer(hook_app, name="hook")

_TreeOpt = typer.Option(None, "--tree", help="The kernel work tree (default: the current directory).")


@hook_app.command("install")
def install_cmd(
    tree: Optional[str] = _TreeOpt,
    profile: str = typer.Option("rules", "--profile", help="rules (fast: the review rules only) or "
                                                           "quick (plus a native quick build/run)."),
    ignore: List[str] = typer.Option([], "--ignore", help="Skip this rule id in the hook (repeatable), "
                                                          "e.g. checkpatch when b4 prep --check runs it."),
    fail_on: str = FailOnOption,
) -> None:
    """Install the pre-push hook; an existing pre-push hook is kept and run first.  It blocks the
    push exactly when `mmreview rules` (or check) would exit non-zero on what is pushed."""
    def body() -> int:
        from mmreview.review import prepush as hook
        res = hook.install(tree, profile, tuple(ignore), fail_on)
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
        from mmreview.review import prepush as hook
        path, restored = hook.uninstall(tree)
        print(f"removed {path}" + ("; restored the previous pre-push hook" if restored else ""))
        return EXIT_OK
    raise typer.Exit(run_command(body))


@hook_app.command("run", hidden=True)
def run_cmd(
    profile: str = typer.Option("rules", "--profile"),
    ignore: List[str] = typer.Option([], "--ignore"),
    fail_on: str = FailOnOption,
    args: Optional[List[str]] = typer.Argument(None, help="git's pre-push arguments: remote, url."),
) -> None:
    """What the installed hook calls: reads git's pre-push lines on stdin (or the pre-commit
    framework's PRE_COMMIT_FROM_REF/PRE_COMMIT_TO_REF)."""
    def body() -> int:
        from mmreview.review import prepush as hook
        remote = (args or [])[1:2] or (args or [])[:1] or [None]
        return hook.run_hook(profile, tuple(ignore), fail_on=fail_on, remote=remote[0])
    raise typer.Exit(run_command(body))
