"""Fixtures for the fault-injection suite: one local stack for the whole package, a fresh pipeline per test.

`pipeline` comes from the tests.plugins.stack plugin (an isolated stream and indices); `stack` is overridden
here with package scope so the services start once for every fault test, not once per module.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.stack import LocalStack, StackConfig
from tests.faults.accounting import reset_bedrock
from tests.plugins.stack import Pipeline


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    logs = tmp_path_factory.mktemp("fault-stack-logs")
    with LocalStack(StackConfig(shards=1, backend="lexicon", log_dir=logs)) as running:
        yield running


@pytest.fixture()
def faulty(pipeline: Pipeline) -> Iterator[Pipeline]:
    """A pipeline whose Bedrock server starts with no fault and zeroed stats, and is left without faults."""
    reset_bedrock(pipeline)
    yield pipeline
    reset_bedrock(pipeline)
