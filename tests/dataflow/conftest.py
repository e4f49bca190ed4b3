"""Fixtures of the Kinesis source tests: clients of the local Kinesis (strict, as the tests see AWS)."""

from __future__ import annotations

import boto3
import pytest


@pytest.fixture()
def client(kinesis_server):
    return boto3.client("kinesis", endpoint_url=kinesis_server.url, region_name="us-east-1")


@pytest.fixture()
def factory(kinesis_server):
    """A new client per call: each partition of the source gets its own, as in production."""
    return lambda: boto3.client("kinesis", endpoint_url=kinesis_server.url, region_name="us-east-1")
