"""The shape of the Bytewax cluster this process belongs to: how many processes, how many workers in each.

Bytewax does not tell a flow how many workers run it, but its command line does, and that command line is
public: `python -m bytewax.run <flow> -w N -i I -a "host:port;host:port"`, each flag falling back to an
environment variable (BYTEWAX_WORKERS_PER_PROCESS, BYTEWAX_PROCESS_ID, BYTEWAX_ADDRESSES, and for the addresses
a BYTEWAX_HOSTFILE_PATH of one address per line); the pods' entrypoint (deploy/entrypoint.sh) passes flags.
This reads them the same way. A flow run any other way (`bytewax.testing.run_main`, `cluster_main` in a test)
gets the environment's values, or one process with one worker.

The enrichment's key routing needs it (dataflow/channels/routes.py): whether the stream has fewer shards than
the cluster has workers.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterShape:
    processes: int = 1
    workers_per_process: int = 1

    @property
    def workers(self) -> int:
        return self.processes * self.workers_per_process

    @classmethod
    def from_bytewax_run(cls, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> ClusterShape:
        """The shape `python -m bytewax.run` was started with (flags first, then its environment variables)."""
        argv = sys.argv if argv is None else argv
        env = os.environ if env is None else env
        workers, addresses = env.get("BYTEWAX_WORKERS_PER_PROCESS"), env.get("BYTEWAX_ADDRESSES")
        if argv and _is_bytewax_run(argv[0]):
            parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
            parser.add_argument("-w", "--workers-per-process")
            parser.add_argument("-a", "--addresses")
            known, _ = parser.parse_known_args(list(argv[1:]))
            workers = known.workers_per_process or workers
            addresses = known.addresses or addresses
        if not addresses and env.get("BYTEWAX_HOSTFILE_PATH"):
            addresses = _hostfile(env["BYTEWAX_HOSTFILE_PATH"])  # bytewax.run's fallback (its Helm chart's)
        processes = len([a for a in (addresses or "").split(";") if a.strip()]) or 1
        try:
            per_process = max(1, int(workers)) if workers else 1
        except ValueError:
            per_process = 1  # bytewax.run itself refuses a count that is not a number, before any flow runs
        return cls(processes, per_process)


def _hostfile(path: str) -> str:
    """The addresses of a hostfile, one per line, as bytewax.run joins them; unreadable: none (one process)."""
    try:
        with open(path) as hostfile:
            return ";".join(line.strip() for line in hostfile if line.strip())
    except OSError:
        return ""


def _is_bytewax_run(program: str) -> bool:
    """Whether this process is `python -m bytewax.run` (its argv[0] is the module's file)."""
    parts = os.path.normpath(program).split(os.sep)
    return len(parts) >= 2 and parts[-2] == "bytewax" and parts[-1] in ("run.py", "run")
