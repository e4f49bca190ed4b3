"""The cluster's shape, read from `python -m bytewax.run`'s own flags and environment variables."""

from __future__ import annotations

import os

import pytest

from dataflow.cluster import ClusterShape

RUN = os.path.join("site-packages", "bytewax", "run.py")  # argv[0] of `python -m bytewax.run`


@pytest.mark.parametrize(
    ("argv", "env", "shape"),
    [
        ([RUN, "dataflow.flow"], {}, (1, 1)),
        ([RUN, "dataflow.flow", "-w", "2"], {}, (1, 2)),
        ([RUN, "dataflow.flow", "--workers-per-process", "3", "-i", "1", "-a", "a:1;b:1;c:1"], {}, (3, 3)),
        # the pods' entrypoint: flags from the environment it exports, the environment kept as well
        ([RUN, "dataflow.flow", "-w", "2", "-i", "0", "-a", "p0:2101;p1:2101"], {"BYTEWAX_ADDRESSES": "x"}, (2, 2)),
        ([RUN, "dataflow.flow"], {"BYTEWAX_WORKERS_PER_PROCESS": "2", "BYTEWAX_ADDRESSES": "a:1;b:1"}, (2, 2)),
        ([RUN, "dataflow.flow", "-s", "30", "-b", "0", "-r", "/tmp/r"], {}, (1, 1)),  # other flags: ignored
        # not bytewax.run (pytest, a script): its flags are not Bytewax's; the environment still counts
        (["pytest", "-w", "4", "-a", "x;y"], {}, (1, 1)),
        (["pytest"], {"BYTEWAX_WORKERS_PER_PROCESS": "4"}, (1, 4)),
        ([RUN, "dataflow.flow", "-a", "a:1;;b:1;"], {}, (2, 1)),  # empty entries are not processes
    ],
)
def test_shape_from_bytewax_run(argv: list[str], env: dict[str, str], shape: tuple[int, int]) -> None:
    got = ClusterShape.from_bytewax_run(argv, env)
    assert (got.processes, got.workers_per_process) == shape
    assert got.workers == shape[0] * shape[1]


def test_this_process_is_one_worker_under_pytest() -> None:
    assert ClusterShape.from_bytewax_run(env={}) == ClusterShape(1, 1)


def test_addresses_from_bytewax_run_s_hostfile(tmp_path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("pod-0:2101\npod-1:2101\n\npod-2:2101\n")
    env = {"BYTEWAX_HOSTFILE_PATH": str(hosts), "BYTEWAX_WORKERS_PER_PROCESS": "2"}
    assert ClusterShape.from_bytewax_run([RUN, "dataflow.flow", "-i", "0"], env) == ClusterShape(3, 2)
    missing = {"BYTEWAX_HOSTFILE_PATH": str(tmp_path / "none")}
    assert ClusterShape.from_bytewax_run([RUN, "dataflow.flow"], missing) == ClusterShape(1, 1)
