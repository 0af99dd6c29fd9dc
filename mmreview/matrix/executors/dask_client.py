"""The matrix on a Dask distributed cluster (`mmreview check|test --cluster tcp://HOST:PORT`).

The review stays on this machine: intake, apply, rules, planning, the result cache and the
verdicts.  Only builds travel: one Dask task per (target, suite, revision) build and the runs of
its binaries (dask_worker.run_build), placed by the worker resource `target-<name>` that
`mmreview worker` advertises for every target its machine runs.  A worker has no kernel tree:
each revision goes out as a compressed tar of what `build.export_revision` would export, named by
a hash of the git tree ids of those paths, and a worker keeps it; so the base of a series is sent
once, and not at all when every worker already has it.  Results come back parsed, with the log
lines the report quotes, and go into the local result cache like any other: a second series on
the same base sends only the tip's work.

This module is what the CLI loads to know whether to use a cluster (resolve_address); the
connection (Cluster, the Executor of executors/__init__.py) imports `distributed` when it
connects, the scheduler that sends builds is dask_scheduler.py, the worker's side
dask_worker.py.  A review without --cluster never imports `distributed`.
"""

from __future__ import annotations

import logging
import secrets
import tomllib
from pathlib import Path

from mmreview.common.config import config_path
from mmreview.common.errors import BadInput, InfraError
from mmreview.matrix.sandbox import Sandbox
from mmreview.matrix.targets import Availability, Target

ENV = "MMREVIEW_CLUSTER"
LOCAL = "local"             # --cluster local: run here even if the environment or config names one
CONNECT_TIMEOUT = 5         # seconds: an unreachable scheduler is an answer, not a wait


# ---------------------------------------------------------------- which cluster, if any

def resolve_address(option: str | None) -> str | None:
    """--cluster (typer also reads $MMREVIEW_CLUSTER into it), else `address` in the config
    file's [cluster]; None (run locally) when none is given or it is "local"."""
    address = option
    if address is None:
        try:
            address = tomllib.loads(config_path().read_text()).get("cluster", {}).get("address")
        except FileNotFoundError:
            address = None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise BadInput(str(config_path()), f"unreadable config: {exc}") from None
    if not address or address.strip() == LOCAL:
        return None
    return address.strip()


def connect(address: str) -> "Cluster":
    """Connect to the scheduler at `address`: InfraError (exit 3) naming it if it does not answer
    within CONNECT_TIMEOUT."""
    if "://" not in address or not address.split("://", 1)[1]:
        raise BadInput(f"--cluster {address}", "not a scheduler address (tcp://HOST:PORT)")
    # Dask logs every failed connection attempt; the user gets one line from us instead.
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    from distributed import Client
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "Timed out" in why:
            why = f"no answer within {CONNECT_TIMEOUT} s"
        raise InfraError(address, f"the Dask scheduler is unreachable ({why})") from None
    try:
        return Cluster(address, client)
    except BaseException:
        client.close()
        raise


# ---------------------------------------------------------------- the connection

class Cluster:
    """The Executor (executors/__init__.py) that runs the matrix on a Dask cluster: which targets
    the workers offer and with which toolchain, and the scheduler that sends builds to them."""

    def __init__(self, address: str, client) -> None:
        self.address = address
        self.client = client
        self.review = secrets.token_hex(6)
        from mmreview.matrix.executors.dask_worker import describe
        try:
            self.workers: dict[str, dict] = client.run(describe, on_error="return")
        except Exception as exc:
            raise InfraError(address, f"could not ask the workers what they run: {exc}") from None
        # A worker that could not answer (an old mmreview, a plain `dask worker`) offers nothing.
        self.workers = {a: w for a, w in self.workers.items() if isinstance(w, dict)}
        self.threads = max(1, sum(w["threads"] for w in self.workers.values()))
        self._chosen: dict[str, tuple[dict, list[str]]] = {}
        for name in sorted({t for w in self.workers.values() for t in w["targets"]}):
            offering = sorted(a for a, w in self.workers.items() if name in w["targets"])
            first = self.workers[offering[0]]["targets"][name]
            # Workers built with another compiler would give results under the wrong cache key:
            # a target goes only to the workers with the first one's toolchain.
            same = [a for a in offering if self.workers[a]["targets"][name] == first]
            self._chosen[name] = (first, same)

    def close(self) -> None:
        try:
            self.client.close(timeout=CONNECT_TIMEOUT)
        except Exception:     # the scheduler went away: nothing is left to close
            pass

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what run_matrix asks

    def availability(self, target: Target) -> Availability:
        if target.name not in self._chosen:
            who = f"{len(self.workers)} worker(s)" if self.workers else "no worker is connected"
            return Availability(target=target.name, available=False,
                                reason=f"no worker of {self.address} offers it ({who}; start "
                                       f"`mmreview worker {self.address}` on a machine where "
                                       f"`mmreview targets` lists it)")
        info, _ = self._chosen[target.name]
        return Availability(target=target.name, available=True, sanitizers=list(info["sanitizers"]),
                            urcu_prefix=info["urcu_prefix"])

    def toolchain(self, target: Target) -> tuple[str, str]:
        info, _ = self._chosen[target.name]
        return info["toolchain"][0], info["toolchain"][1]

    def eligible(self, target: str) -> list[str] | None:
        """The workers a build of `target` may go to, when not every worker offering it may
        (they differ in toolchain); None: any worker with the target's resource, including one
        that joins (or a nanny restarts, under another address) during the review."""
        same = self._chosen[target][1]
        offering = [a for a, w in self.workers.items() if target in w["targets"]]
        return None if len(same) == len(offering) else same

    def require(self, targets: list[Target]) -> None:
        """Exit 3 before anything runs when a named target is offered by no worker."""
        for t in targets:
            a = self.availability(t)
            if not a.available:
                raise InfraError(f"--arch {t.name}", a.reason)

    def has_export(self, digest: str, workers: list[str]) -> bool:
        return all(digest in self.workers[a]["exports"] for a in workers)

    def confinement(self, tree_path: Path, no_sandbox: bool = False) -> Sandbox:
        """The workers confine (`mmreview worker` does not start without bubblewrap): this
        machine runs no series code and needs none."""
        return Sandbox(confined=not no_sandbox, tool="bubblewrap on each cluster worker")

    def scheduler(self, procs, progress, co, workdir, use_cache, **kw):
        from mmreview.matrix.executors.dask_scheduler import ClusterScheduler
        return ClusterScheduler(self, self.threads, procs, progress, co, workdir, use_cache, **kw)
