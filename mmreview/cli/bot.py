"""`mmreview bot --config bot.toml [--once] [--cluster ADDR]`, `mmreview bot status --config bot.toml`:
the review bot (docs/bot.md) and what it is doing."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mmreview.cli.app import app, run_command, stdout

bot_app = typer.Typer(help="The review bot: watch inboxes, review each new series once, answer by "
                           "policy (muted by default). See docs/bot.md.",
                      invoke_without_command=True)
app.add_typer(bot_app, name="bot")

ConfigOption = typer.Option(..., "--config", "-c", metavar="BOT.TOML",
                            help="The bot's configuration (docs/bot.md).")


@bot_app.callback()
def bot_cmd(ctx: typer.Context,
            config: Optional[Path] = typer.Option(None, "--config", "-c", metavar="BOT.TOML",
                                                  help="The bot's configuration (docs/bot.md)."),
            once: bool = typer.Option(False, "--once", help="One poll, review what is complete, send "
                                                            "what is due, exit (for cron)."),
            cluster: Optional[str] = typer.Option(None, "--cluster", metavar="tcp://HOST:PORT",
                                                  help="Run the reviews' matrix on this Dask scheduler "
                                                       "(overrides the configuration's cluster).")) -> None:
    """Run the bot until stopped (SIGTERM), or once with --once."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        from mmreview.cli.app import fail_usage
        fail_usage("bot: --config BOT.TOML is required")

    def body() -> int:
        from mmreview.bot.config import load_config
        from mmreview.bot.service import Bot
        cfg = load_config(config)
        if cluster:
            cfg.cluster = cluster
        return Bot(cfg).run(once=once)
    raise typer.Exit(run_command(body))


@bot_app.command("status")
def status_cmd(config: Path = ConfigOption) -> None:
    """Queue, reviews in flight, mails pending, last errors."""
    def body() -> int:
        from mmreview.bot.config import load_config
        from mmreview.bot.status import status_text
        from mmreview.bot.store import Store
        cfg = load_config(config)
        store = Store(cfg.state, readonly=True)
        stdout.file.write(status_text(store))
        return 0
    raise typer.Exit(run_command(body))
