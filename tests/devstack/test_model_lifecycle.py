"""The start-up lifecycle check (dataflow/enrich/lifecycle.py) through botocore's real `bedrock` client, pointed
at the local server's GetFoundationModel by AWS_ENDPOINT_URL_BEDROCK, as the flow runs it."""

from __future__ import annotations

import logging

import pytest

from dataflow.enrich.lifecycle import check_model_lifecycle
from dataflow.settings import load_settings
from tests.devstack.conftest import MODEL_ID, admin

BASE = MODEL_ID.split(".", 1)[1]


@pytest.fixture()
def settings(bedrock_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK", bedrock_url)
    monkeypatch.setenv("BEDROCK_MODEL_ID", MODEL_ID)  # the child process reads the environment, as the flow does
    credentials = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    return load_settings({"BEDROCK_MODEL_ID": MODEL_ID, "AWS_REGION": "us-east-1"})


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "dataflow.enrich.lifecycle"]


def test_an_active_model_is_one_info_line(settings, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert check_model_lifecycle(settings) == "ACTIVE"
    assert lines(caplog) == [f"bedrock.model_lifecycle model={BASE} status=ACTIVE"]


def test_a_legacy_model_is_one_warning_naming_the_setting(
    settings, bedrock_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin(bedrock_url, "/_admin/config", {"legacy_model_ids": [BASE]})
    with caplog.at_level(logging.INFO):
        assert check_model_lifecycle(settings) == "LEGACY"
    (line,) = lines(caplog)
    assert "status=LEGACY" in line and "end_of_life=2027-01-01" in line and "set BEDROCK_MODEL_ID" in line
    assert [r.levelno for r in caplog.records if r.name == "dataflow.enrich.lifecycle"] == [logging.WARNING]


def test_the_flow_runs_it_as_a_child_process_with_its_own_environment(settings, bedrock_url: str) -> None:
    """Off the flow's interpreter: building botocore's client in a thread held up the flow's start."""
    import os

    from dataflow.enrich.lifecycle import check_in_background

    admin(bedrock_url, "/_admin/config", {"legacy_model_ids": [BASE]})
    read, write = os.pipe()
    saved = os.dup(2)
    os.dup2(write, 2)  # the child writes its log line to the flow's stderr
    try:
        child = check_in_background(settings)
    finally:
        os.dup2(saved, 2)
        os.close(write)
    assert child is not None and child.wait(timeout=60) == 1
    with os.fdopen(read) as err:
        logged = err.read()
    assert "logger=dataflow.enrich.lifecycle event=bedrock.model_lifecycle" in logged, logged
    assert "status=LEGACY" in logged
    assert child.pid != os.getpid()
    assert check_in_background(load_settings({"BEDROCK_CHECK_LIFECYCLE": "false"})) is None


def test_a_missing_permission_is_a_warning_and_the_flow_goes_on(
    settings, bedrock_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin(bedrock_url, "/_admin/config", {"auth_error": "AccessDeniedException"})
    with caplog.at_level(logging.INFO):
        assert check_model_lifecycle(settings) == "unknown"
    (line,) = lines(caplog)
    assert "error=AccessDeniedException" in line and "bedrock:GetFoundationModel" in line


def test_the_server_takes_foundation_model_ids_only(bedrock_url: str) -> None:
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client(
        "bedrock", endpoint_url=bedrock_url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    details = client.get_foundation_model(modelIdentifier=BASE)["modelDetails"]
    assert details["modelId"] == BASE and details["modelLifecycle"] == {"status": "ACTIVE"}
    assert details["modelArn"] == f"arn:aws:bedrock:us-east-1::foundation-model/{BASE}"
    with pytest.raises(ClientError) as err:
        client.get_foundation_model(modelIdentifier=MODEL_ID)  # a profile id: not a foundation model
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_unchecked_when_turned_off() -> None:
    settings = load_settings({"BEDROCK_MODEL_ID": MODEL_ID, "BEDROCK_CHECK_LIFECYCLE": "false"})
    assert check_model_lifecycle(settings) == "unchecked"
