"""`mmreview worker tcp://HOST:PORT`: this machine as a Dask worker for the targets it runs.

A thin wrapper over `dask worker`: it asks the same availability code as `mmreview targets`
which targets this machine builds and runs, and starts `dask worker` with one resource
`target-<name>` per target (as many as it has threads, so each of its cores takes one build), so
the scheduler sends a build only to a worker that can run it.  Everything else (nanny, retries,
reconnecting) is Dask's.  Nothing of Dask is imported here: the command execs it.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from mmreview.cli.app import app, run_command
from mmreview.common.errors import BadInput, InfraError
from mmreview.matrix import targets as targets_mod


# `check` and `test` take it: where their matrix runs.
ClusterOption = typer.Option(None, "--cluster", envvar="MMREVIEW_CLUSTER", metavar="tcp://HOST:PORT",
                             help="Run the matrix on this Dask scheduler's `mmreview worker`s "
                                  "(default: [cluster] address in ~/.config/mmreview/config.toml; "
                                  "'local': here). See docs/cluster.md.")


def worker_argv(address: str, offered: list[str], threads: int, name: str | None) -> list[str]:
    from mmreview.matrix.executors.dask_worker import resource
    from mmreview.common.paths import cluster_dir
    argv = [sys.executable, "-m", "distributed.cli.dask_worker", address,
            "--nworkers", "1", "--nthreads", str(threads),
            "--resources", ",".join(f"{resource(t)}={threads}" for t in offered),
            # Dask's spill files next to mmreview's cache, not in a /tmp other workers share.
            "--local-directory", str(cluster_dir() / "dask"),
            "--no-dashboard"]
    if name:
        argv += ["--name", name]
    return argv


@app.command("worker")
def worker(
    address: str = typer.Argument(..., metavar="tcp://HOST:PORT", help="The Dask scheduler."),
    only: Optional[str] = typer.Option(None, "--targets", help="Offer only these targets, "
                                       "comma-separated (default: every target available here)."),
    threads: Optional[int] = typer.Option(None, "--nthreads", help="Builds at once (default: cores)."),
    name: Optional[str] = typer.Option(None, "--name", help="The worker's name on the scheduler."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the dask worker command, start nothing."),
) -> None:
    """Serve `mmreview check|test --cluster` from this machine: a Dask worker that offers the
    targets `mmreview targets` says this machine runs.

    Exit 3 when a target named with --targets is not available here (it says why), or none is,
    or when this machine cannot confine series code (bubblewrap)."""
    def body() -> int:
        if "://" not in address:
            raise BadInput(address, "not a scheduler address (tcp://HOST:PORT)")
        if threads is not None and threads < 1:
            raise BadInput(f"--nthreads {threads}", "must be at least 1")
        offered = []
        for t in targets_mod.parse_arch_list(only):
            a = targets_mod.availability(t)
            if a.available:
                offered.append(t.name)
            elif only:
                raise InfraError(f"--targets {t.name}", a.explained())
        if not offered:
            raise InfraError("mmreview worker", "no target is available on this machine "
                                                "(see `mmreview targets`)")
        from mmreview.matrix.sandbox import INSTALL_HINT, probe
        if not probe()[0]:      # a cluster runs strangers' series: a worker that cannot confine them
            raise InfraError("mmreview worker", f"cannot confine series code here: {probe()[1]}; "
                                                f"{INSTALL_HINT}")
        n = threads or targets_mod.cpu_count()
        argv = worker_argv(address, offered, n, name)
        if dry_run:
            print(" ".join(argv))
            return 0
        print(f"mmreview: worker for {address}: {', '.join(offered)}, {n} thread(s)",
              file=sys.stderr, flush=True)
        try:
            import distributed  # noqa: F401  (only to say what is missing before exec-ing)
        except ImportError:
            raise InfraError("mmreview worker", "Dask distributed is not installed "
                                                "(pip install 'mmreview[cluster]')") from None
        os.execv(argv[0], argv)
        return 0
    raise typer.Exit(run_command(body))
