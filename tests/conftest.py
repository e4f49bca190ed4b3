"""Shared fixtures: the local services on free loopback ports, stopped after the session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import boto3
import pytest

from devstack.processes import ManagedProcess, start_kinesis, start_opensearch

pytest_plugins = ["tests.plugins.stack"]  # `stack` and `pipeline`: the whole local stack, a pipeline on it

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session", autouse=True)
def _fake_aws_credentials() -> Iterator[None]:
    """No test ever reaches real AWS: fake credentials, and the IMDS lookup disabled."""
    saved = {k: os.environ.get(k) for k in [*FAKE_CREDENTIALS, "AWS_EC2_METADATA_DISABLED"]}
    os.environ.update(FAKE_CREDENTIALS)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def kinesis_server() -> Iterator[ManagedProcess]:
    proc = start_kinesis()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def opensearch_server() -> Iterator[ManagedProcess]:
    proc = start_opensearch(parent_pid=os.getpid())
    yield proc
    proc.stop()


@pytest.fixture()
def kinesis_client(kinesis_server: ManagedProcess):
    return boto3.client("kinesis", endpoint_url=kinesis_server.url, region_name="us-east-1")


@pytest.fixture()
def stream_name() -> str:
    """A fresh stream name per test, so tests sharing the server never see each other's records."""
    return f"reviews-{uuid.uuid4().hex[:8]}"
