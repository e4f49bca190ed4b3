"""The worker heartbeat and the liveness command the StatefulSet runs."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from dataflow import heartbeat
from dataflow.settings import load_settings
from infra.workload import HEARTBEAT_FILE, liveness_command


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_one_stuck_worker_ages_the_file_while_others_beat(tmp_path: Path) -> None:
    clock = Clock()
    beat = heartbeat.Heartbeat(str(tmp_path / "hb"), clock=clock)
    stuck_ready = threading.Event()

    def stuck_worker() -> None:
        beat.beat()  # beats once, then never again
        stuck_ready.set()

    t = threading.Thread(target=stuck_worker)
    t.start()
    t.join()
    assert stuck_ready.is_set()
    for _ in range(600):  # the healthy worker keeps polling for 10 minutes
        clock.now += 1
        beat.beat()
    assert heartbeat.age_s(str(tmp_path / "hb"), now=clock.now) >= 599


def test_healthy_workers_keep_the_file_fresh_and_writes_are_rate_limited(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "hb"
    beat = heartbeat.Heartbeat(str(path), clock=clock)
    beat.beat()
    first = path.read_text()
    clock.now += 0.5
    beat.beat()
    assert path.read_text() == first  # not rewritten within a second
    clock.now += 0.6
    beat.beat()
    assert heartbeat.age_s(str(path), now=clock.now) == 0


def test_off_without_a_file(tmp_path: Path) -> None:
    beat = heartbeat.Heartbeat(None)
    beat.beat()
    assert list(tmp_path.iterdir()) == []
    assert load_settings({}).heartbeat_file is None
    assert load_settings({"HEARTBEAT_FILE": "/tmp/heartbeat"}).heartbeat_file == "/tmp/heartbeat"


def test_liveness_command_fails_on_stale_or_missing_and_passes_on_fresh(tmp_path: Path) -> None:
    path = tmp_path / "hb"
    command = liveness_command(60)
    assert command[:3] == ["python", "-m", "dataflow.heartbeat"] and command[3] == HEARTBEAT_FILE
    cli = [sys.executable, *command[1:3], str(path), command[4]]
    assert subprocess.run(cli, capture_output=True, timeout=30).returncode == 1  # missing
    heartbeat.Heartbeat(str(path)).beat()
    assert subprocess.run(cli, capture_output=True, timeout=30).returncode == 0
    path.write_text("0\n")  # 1970
    stale = subprocess.run(cli, capture_output=True, text=True, timeout=30)
    assert stale.returncode == 1 and stale.stdout.startswith("heartbeat.stale")


def test_the_kinesis_source_beats_on_every_poll() -> None:
    source = Path(heartbeat.__file__).parent.joinpath("kinesis_source", "partition.py").read_text()
    body = source.split("def next_batch(self)", 1)[1].split("\n    def ", 1)[0]
    assert "heartbeat.beat()" in body


def test_module_beat_is_configured_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "hb"
    monkeypatch.setenv("HEARTBEAT_FILE", str(path))
    monkeypatch.setattr(heartbeat, "_heartbeat", None)
    heartbeat.beat()
    assert heartbeat.age_s(str(path)) is not None
    path.unlink()
    monkeypatch.setenv("BEDROCK_MAX_CONCURRENCY", "not-a-number")  # a broken environment: off, never a crash
    monkeypatch.setattr(heartbeat, "_heartbeat", None)
    heartbeat.beat()
    assert not path.exists()  # off: nothing written, though HEARTBEAT_FILE names the file
