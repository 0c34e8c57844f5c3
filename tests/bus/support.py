"""Helpers for the bus tests: bounded waiting and stream clean-up."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from cityhub.bus import Event


def unique_stream() -> str:
    """A stream name no other test uses, so no test sees another's events."""
    return f"T{uuid.uuid4().hex[:10].upper()}"


def recorder() -> tuple[list[Event], Callable[[Event], Awaitable[None]]]:
    """A handler that records the events it gets, and the list it records them in."""
    received: list[Event] = []

    async def handle(event: Event) -> None:
        received.append(event)

    return received, handle


async def wait_until(
    predicate: Callable[[], Any | Awaitable[Any]], timeout: float = 15.0, what: str = ""
) -> Any:
    """Poll ``predicate`` (sync or async) until it is truthy; fail the test after ``timeout`` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def jetstream_client(url: str) -> AsyncIterator[JetStreamContext]:
    """A plain JetStream client, to look at streams and consumers from outside the bus."""
    nc = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


async def delete_stream(url: str, stream: str) -> None:
    """Drop ``stream`` (and its consumers) from the server at ``url``, if it is there."""
    async with jetstream_client(url) as js:
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream)
