"""The shell lines docs/DEPLOY.md tells a user to run, run with bash against stub `aws`, `pulumi` and `docker`.

The stubs parse their arguments the way the real CLIs do for these commands (tests/infra/stubs/aws), and
`pulumi stack output` answers with the outputs of the mocked program, so a line passes only when the
documented quoting and the exported values fit together.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from infra import program
from infra.config import StackConfig
from tests.infra.conftest import resolve, run

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "DEPLOY.md"
STUBS = Path(__file__).resolve().parent / "stubs"
CIDR = ("203.0.113.7/32",)


def shell_lines() -> list[str]:
    """Every command of the ```sh blocks of DEPLOY.md, continuation lines joined, comments dropped."""
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", DEPLOY.read_text(), flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def documented(fragment: str) -> list[str]:
    found = [line for line in shell_lines() if fragment in line]
    assert found, f"DEPLOY.md documents no command containing {fragment!r}"
    return found


@pytest.fixture()
def shell(mocks, tmp_path: Path):
    """Run a line with bash, the stubs first on PATH, the mocked stack's outputs behind `pulumi stack output`."""
    built = run(lambda: program.build(StackConfig(cluster_public_access_cidrs=CIDR)))
    outputs = {k: resolve(v) for k, v in built.outputs().items() if k != "kubeconfig"}
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    (tmp_path / "config.json").write_text(json.dumps({k: str(v) for k, v in config.items()}))
    log = tmp_path / "aws.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # no default region to lean on
    env.update(
        PATH=f"{STUBS}:{env['PATH']}",
        STUB_AWS_LOG=str(log),
        STUB_PULUMI_OUTPUTS=str(tmp_path / "outputs.json"),
        STUB_PULUMI_CONFIG=str(tmp_path / "config.json"),
    )

    def _run(line: str) -> list[dict]:
        log.write_text("")
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", line], env=env, cwd=ROOT, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        return [json.loads(x) for x in log.read_text().splitlines()]

    _run.outputs = outputs  # type: ignore[attr-defined]
    return _run


def test_documented_dashboards_tunnel_lines_parse(shell) -> None:
    lines = documented("AWS-StartPortForwardingSession ")
    for line in lines:
        (call,) = shell(line)
        assert call["options"]["target"] == "i-0123456789abcdef0"
        assert call["parameters"] == {"portNumber": ["9200"], "localPortNumber": ["9200"]}
        assert call["region"] == "us-east-1"


def test_tunnel_command_outputs_work_pasted_and_substituted(shell) -> None:
    """The exported commands work typed as they are and through `$(...)` (no quotes left for the CLI)."""
    for name in ("dashboardsTunnelCommand", "portForwardCommand"):
        command = shell.outputs[name]
        (pasted,) = shell(command)
        (substituted,) = shell(f"$(pulumi stack output {name})")
        assert pasted["parameters"] == substituted["parameters"]
        assert pasted["options"]["target"] == "i-0123456789abcdef0"
    (remote,) = shell("$(pulumi stack output portForwardCommand)")
    assert remote["parameters"]["host"] == [shell.outputs["opensearchEndpoint"]]


def test_ecr_login_names_its_region(shell) -> None:
    (line,) = documented("aws ecr get-login-password")
    (call,) = shell(line.replace('"$REPO"', "example").replace('"${REPO%%/*}"', "example"))
    assert call["region"] == "us-east-1"


def test_bedrock_check_line_before_deploy(shell) -> None:
    (line,) = documented("aws bedrock-runtime converse")
    (call,) = shell(line)
    assert call["options"]["model-id"] == "us.anthropic.claude-haiku-4-5-20251001-v1:0"
    assert call["region"] == "us-east-1"


def test_producer_command_takes_the_region_from_the_stack() -> None:
    (line,) = documented("producer/main.py")
    assert "--region" in line and not re.search(r"--region\s+[a-z]{2}-", line), line
