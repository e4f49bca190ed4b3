"""deploy/entrypoint.sh: process id and peer addresses derived from the pod, then exec of the dataflow."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
FAKE_PYTHON = """#!/bin/sh
echo "ARGS $*"
echo "ID ${BYTEWAX_PROCESS_ID:-}"
echo "ADDR ${BYTEWAX_ADDRESSES:-}"
"""


def run_entrypoint(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    base = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], env={**base, **env}, capture_output=True, text=True, timeout=10
    )


def test_multi_process_addresses_from_the_pod_ordinal(tmp_path: Path) -> None:
    env = {
        "BYTEWAX_REPLICAS": "3",
        "BYTEWAX_POD_NAME": "reviewstream-dataflow-2",
        "BYTEWAX_SERVICE": "reviewstream-dataflow",
        "BYTEWAX_NAMESPACE": "reviewstream",
        "BYTEWAX_PORT": "2101",
        "BYTEWAX_WORKERS_PER_PROCESS": "4",
    }
    out = run_entrypoint(tmp_path, env, "-r", "/var/recovery/x", "-s", "30", "-b", "300")
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())
    peers = ";".join(
        f"reviewstream-dataflow-{i}.reviewstream-dataflow.reviewstream.svc.cluster.local:2101" for i in range(3)
    )
    assert lines["ID"] == "2"
    assert lines["ADDR"] == peers
    assert lines["ARGS"] == f"-m bytewax.run dataflow.flow -w 4 -i 2 -a {peers} -r /var/recovery/x -s 30 -b 300"


def test_single_process_needs_no_addresses(tmp_path: Path) -> None:
    out = run_entrypoint(tmp_path, {"BYTEWAX_REPLICAS": "1", "BYTEWAX_POD_NAME": "anything"})
    assert out.returncode == 0, out.stderr
    assert "ARGS -m bytewax.run dataflow.flow -w 1\n" in out.stdout


@pytest.mark.parametrize("pod", ["reviewstream-dataflow-7", "not-a-statefulset-pod"])
def test_bad_ordinal_fails_with_one_line(tmp_path: Path, pod: str) -> None:
    env = {"BYTEWAX_REPLICAS": "2", "BYTEWAX_POD_NAME": pod, "BYTEWAX_SERVICE": "svc"}
    out = run_entrypoint(tmp_path, env)
    assert out.returncode == 64
    assert out.stderr.startswith("entrypoint:")


def test_dockerfile_runs_as_non_root_with_runtime_package_only() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("FROM python:3.12-slim") == 2
    assert "USER 10001:10001" in text
    assert "pip install --require-hashes --no-deps -r requirements/runtime.txt\n" in text
    assert "pip install --no-deps .\n" in text
    assert 'ENTRYPOINT ["/app/entrypoint.sh"]' in text


def test_preset_addresses_and_the_recovery_supervisor(tmp_path: Path) -> None:
    """The pods' life played on one machine sets BYTEWAX_ADDRESSES; a recovery store runs the supervisor."""
    env = {
        "BYTEWAX_REPLICAS": "2",
        "BYTEWAX_POD_NAME": "reviewstream-dataflow-1",
        "BYTEWAX_SERVICE": "svc",
        "BYTEWAX_ADDRESSES": "127.0.0.1:1;127.0.0.1:2",
        "RECOVERY_STORE_URL": "s3://bucket/prefix",
    }
    out = run_entrypoint(tmp_path, env)
    assert out.returncode == 0, out.stderr
    assert (
        "ARGS -m dataflow.recovery run -- python -m bytewax.run dataflow.flow -w 1 -i 1 -a 127.0.0.1:1;127.0.0.1:2\n"
        in out.stdout
    )
