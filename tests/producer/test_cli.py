"""The command line: --help, both ways of running it, dry runs, selection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from producer.main import build_parser, main

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, module: bool = False) -> subprocess.CompletedProcess[str]:
    entry = ["-m", "producer.main"] if module else ["producer/main.py"]
    return subprocess.run(
        [sys.executable, *entry, *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def test_help_as_script_explains_everything() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    for needle in (
        "--imdb",
        "--csv",
        "--synthetic",
        "--split",
        "--rate",
        "--max-retries",
        "--failed-file",
        "--dry-run",
        "--shuffle",
        "AWS_ENDPOINT_URL_KINESIS",
        "imdb-train-pos-123_8",
        "exit status",
    ):
        assert needle in proc.stdout


def test_dry_run_as_module_prints_json_lines() -> None:
    proc = run_cli("--dry-run", "--synthetic", "3", "--seed", "5", module=True)
    assert proc.returncode == 0, proc.stderr
    docs = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert [d["review_id"] for d in docs] == ["synthetic-5-0", "synthetic-5-1", "synthetic-5-2"]
    assert "dry_run=3" in proc.stderr


def dry_ids(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    assert main(["--dry-run", "--quiet", *argv]) == 0
    return [orjson.loads(line)["review_id"] for line in capsys.readouterr().out.splitlines()]


def test_limit_and_seeded_shuffle(capsys: pytest.CaptureFixture[str]) -> None:
    assert dry_ids(capsys, "--synthetic", "100", "--limit", "4") == [f"synthetic-42-{i}" for i in range(4)]
    shuffled = dry_ids(capsys, "--synthetic", "100", "--shuffle", "--limit", "10")
    assert shuffled == dry_ids(capsys, "--synthetic", "100", "--shuffle", "--limit", "10")
    assert shuffled != dry_ids(capsys, "--synthetic", "100", "--shuffle", "--limit", "10", "--seed", "1")
    assert len(set(shuffled)) == 10 and shuffled != [f"synthetic-42-{i}" for i in range(10)]


def test_default_source_is_synthetic(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(dry_ids(capsys)) == 1000


def test_csv_dry_run_and_bad_input_exit_code(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "mini.csv"
    good.write_text("review,sentiment\nGood.,positive\nBad.,negative\n", encoding="utf-8")
    assert dry_ids(capsys, "--csv", str(good)) == ["mini-1", "mini-2"]
    assert main(["--dry-run", "--quiet", "--imdb", str(tmp_path / "nope")]) == 2


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KINESIS_STREAM_NAME", "from-env")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    args = build_parser().parse_args([])
    assert (args.stream, args.region) == ("from-env", "eu-west-3")
    monkeypatch.delenv("KINESIS_STREAM_NAME")
    assert build_parser().parse_args([]).stream == "reviews"


def test_sources_are_mutually_exclusive() -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--csv", "a.csv", "--synthetic", "3"])
    assert exc.value.code == 2
