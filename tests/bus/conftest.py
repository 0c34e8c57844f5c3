"""Fixtures for the bus tests: a private stream per test, and buses that are stopped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from nats.js import JetStreamContext

from cityhub.bus.nats import NatsBus
from tests.bus.support import jetstream_client
from tests.conftest import NATS_URL


@pytest.fixture
async def jetstream() -> AsyncIterator[JetStreamContext]:
    """A plain JetStream client on the shared server, to look at streams and consumers."""
    async with jetstream_client(NATS_URL) as js:
        yield js


@pytest.fixture
async def make_bus(stream: str) -> AsyncIterator[Callable[..., NatsBus]]:
    """Build NatsBus instances on this test's stream; every one is stopped after the test."""
    buses: list[NatsBus] = []

    def make(instance: str = "hub", **options: Any) -> NatsBus:
        bus = NatsBus(NATS_URL, stream=stream, instance_name=instance, **options)
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.stop()
