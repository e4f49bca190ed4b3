"""The pods of a StatefulSet played on one machine with the containers' own scripts (the day-2 fault tests).

Each pod is one process tree started by deploy/entrypoint.sh, after its init container's command
(infra.workload.INIT_COMMAND), with its own directory standing for its emptyDir; the recovery store is moto's S3
(the local Kinesis server answers S3 as well). `Progress` follows what the model enriched, to tell when a dead
cluster's requests have all come back and when a cluster has caught up.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from dataflow.recovery.store import Store
from devstack.stack import FAKE_AWS
from infra.workload import APP, INIT_COMMAND, recovery_env
from tests.faults.accounting import bedrock_stats, kill_group
from tests.plugins.stack import ROOT, Pipeline

ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"


def recovery_bucket(pipeline: Pipeline, versioned: bool = False) -> tuple[Any, str, Store]:
    """A fresh bucket on moto's S3 (the local Kinesis server answers every service): its client, name, Store."""
    assert pipeline.stack.kinesis is not None
    s3 = boto3.client(
        "s3",
        endpoint_url=pipeline.stack.kinesis.url,
        region_name=FAKE_AWS["AWS_REGION"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    bucket = f"recovery-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    if versioned:  # as infra/ creates the recovery bucket
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return s3, bucket, Store(bucket, APP, s3)


def pod_template(pipeline: Pipeline, bucket: str, partitions: int, snapshot_s: float, workers: int) -> dict[str, str]:
    """The StatefulSet's recovery environment (infra.workload.recovery_env) on the local stack."""
    assert pipeline.stack.kinesis is not None
    return {
        **{k: str(v) for k, v in recovery_env(f"s3://{bucket}/{APP}", partitions, "unused").items()},
        "RECOVERY_SNAPSHOT_INTERVAL_S": str(snapshot_s),
        "RECOVERY_RETAIN_S": "30",
        "RECOVERY_ALIGN_WAIT_S": "5",
        "AWS_ENDPOINT_URL_S3": pipeline.stack.kinesis.url,
        "KINESIS_STOP_AT_END": "false",
        "BYTEWAX_WORKERS_PER_PROCESS": str(workers),
        "KINESIS_DISCOVERY_INTERVAL_S": "30",  # the deployment's (the test environment lists every second)
        "BEDROCK_MAX_CONCURRENCY": "4",
    }


def listen_port() -> int:
    """A free port below the ephemeral range: the producers' and clients' connections, opened while a pod
    restarts, take ports from that range and could take a pod's between the pick and its bind (on EKS each pod
    has its own address)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


@dataclass
class Cluster:
    """The pods of one StatefulSet revision: same template (env), one directory per pod."""

    pipeline: Pipeline
    root: Path
    replicas: int
    env: dict[str, str]
    generation: int
    procs: dict[int, subprocess.Popen] = field(default_factory=dict)
    starts: int = 0
    replaced: dict[int, int] = field(default_factory=dict)  # ordinal -> how often its pod was replaced elsewhere

    def directory(self, ordinal: int) -> Path:
        """The pod's emptyDir: a replacement on another node gets a new one, the old one may still be in use."""
        again = self.replaced.get(ordinal, 0)
        return self.root / f"gen{self.generation}-pod{ordinal}{f'-r{again}' if again else ''}"

    def replace(self, ordinal: int) -> subprocess.Popen:
        """A new pod for `ordinal` on a new directory (the old pod's process is returned, left as it is)."""
        self.replaced[ordinal] = self.replaced.get(ordinal, 0) + 1
        return self.procs.pop(ordinal)

    def pod_env(self, ordinal: int, addresses: str) -> dict[str, str]:
        directory = self.directory(ordinal)
        return {
            **self.pipeline.env,
            **self.env,
            "RECOVERY_DIR": str(directory),
            "BYTEWAX_POD_NAME": f"{APP}-{ordinal}",
            "BYTEWAX_REPLICAS": str(self.replicas),
            "BYTEWAX_SERVICE": APP,
            "BYTEWAX_ADDRESSES": addresses,
            "METRICS_PORT": str(listen_port()),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT),
        }

    def init(self, only: tuple[int, ...] | None = None, check: bool = True) -> list[int]:
        """Every pod's init container, in parallel (podManagementPolicy: Parallel), or those of new pods; their
        exit codes (asserted 0 when `check`)."""
        procs = []
        for ordinal in only if only is not None else range(self.replicas):
            log = open(self.root / f"gen{self.generation}-init{ordinal}.log", "wb")  # noqa: SIM115
            env = self.pod_env(ordinal, "")
            procs.append((subprocess.Popen(INIT_COMMAND, env=env, cwd=ROOT, stdout=log, stderr=log), log))
        codes = []
        for proc, log in procs:
            codes.append(proc.wait(timeout=120))
            log.close()
            assert codes[-1] == 0 or not check, (self.root / Path(log.name).name).read_text()[-3000:]
        return codes

    def start(self) -> None:
        """Every pod's main container (the entrypoint), on the directories the init step filled."""
        addresses = ";".join(f"127.0.0.1:{listen_port()}" for _ in range(self.replicas))
        self.starts += 1
        for ordinal in range(self.replicas):
            log = open(self.root / f"gen{self.generation}-pod{ordinal}-start{self.starts}.log", "wb")  # noqa: SIM115
            self.procs[ordinal] = subprocess.Popen(
                ["sh", str(ENTRYPOINT)],
                env=self.pod_env(ordinal, addresses),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.root.glob(f"gen{self.generation}-*.log")))

    def wait_exit(self, timeout: float = 90) -> list[int]:
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                kill_group(proc)
        return [proc.returncode for proc in self.procs.values()]

    def stop(self) -> list[int]:
        """What deleting the pods does: SIGTERM to each container's main process (PID 1 only), then wait."""
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        return self.wait_exit()

    def kill_all(self) -> None:
        for proc in self.procs.values():
            kill_group(proc)


class Progress:
    """The model's count of reviews enriched: how far the cluster has got, and when a dead cluster's requests
    have all come back (`settle`). Which reviews a restart asked for again is named review by review from the
    model's own log (`accounting.bedrock_answered`), not from this count."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def now(self) -> int:
        return int(bedrock_stats(self.pipeline)["reviews"])

    def settle(self, quiet_s: float = 1.0, timeout: float = 30.0) -> None:
        """Wait until the model's count stops moving: requests a dead cluster left in flight still complete at the
        model (and are paid for); they belong to what the restart may enrich again."""
        deadline, last, still_since = time.monotonic() + timeout, self.now(), time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - still_since < quiet_s:
            time.sleep(0.1)
            count = self.now()
            if count != last:
                last, still_since = count, time.monotonic()
