"""Per-test Pulumi mocks and a helper that builds the whole program and waits for every registration."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pulumi
import pytest

from infra import program
from infra.config import StackConfig
from tests.infra.mocks import NoResourceRefsMonitor, RecordingMocks

_INFRA_LOOP = asyncio.new_event_loop()


@pytest.fixture()
def mocks() -> Iterator[RecordingMocks]:
    # Pulumi's runtime uses the current event loop and keeps futures on it across tests; other tests
    # (asyncio.run, aiohttp) may have closed or unset the thread's loop, so the infra tests share their own.
    asyncio.set_event_loop(_INFRA_LOOP)
    recording = RecordingMocks()
    pulumi.runtime.set_mocks(
        recording, project="reviewstream", stack="dev", preview=False, monitor=NoResourceRefsMonitor(recording)
    )
    yield recording


def run(fn: Callable[[], Any]) -> Any:
    """Run `fn` as a Pulumi program; return its value once all its outputs and resources resolved."""
    holder: dict[str, Any] = {}

    @pulumi.runtime.test
    def _program() -> pulumi.Output:
        holder["value"] = fn()
        return pulumi.Output.from_input(holder.get("wait"))

    _program()
    return holder["value"]


def resolve(output: pulumi.Input[Any]) -> Any:
    """Resolved value of an output, read after the program ran."""
    box: dict[str, Any] = {}

    @pulumi.runtime.test
    def _read() -> pulumi.Output:
        return pulumi.Output.from_input(output).apply(lambda v: box.setdefault("v", v))

    _read()
    return box["v"]


@pytest.fixture()
def stack(mocks: RecordingMocks) -> tuple[program.Program, RecordingMocks]:
    """The default stack, fully registered in the mocks."""
    built = run(lambda: program.build(StackConfig()))
    return built, mocks
