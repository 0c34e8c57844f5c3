"""The notifications' HTTP client against real servers on 127.0.0.1: kept-alive connections,
servers that close them, answers of every framing, and requests it must refuse to make."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from cityhub.hub.broker.delivery import DeliveryError, Endpoints

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Seen = list[tuple[str, dict[str, str], bytes]]


@contextlib.asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[str]:
    listening = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/notify?x=1"
    finally:
        listening.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return lines[0], headers, body


def answering(answer: bytes, *, close_after: int = 0) -> tuple[Handler, Seen]:
    """A server answering every request with ``answer``; with ``close_after``, it closes each
    connection after that many requests."""
    seen: Seen = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        try:
            while True:
                seen.append(await read_request(reader))
                writer.write(answer)
                await writer.drain()
                served += 1
                if close_after and served >= close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return handle, seen


async def test_connections_are_kept_alive_and_requests_are_whole() -> None:
    handle, seen = answering(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
    endpoints = Endpoints(timeout=5)
    async with server(handle) as url:
        for n in range(5):
            status = await endpoints.post(url, b'{"n": %d}' % n, {"Content-Type": "application/json"})
            assert status == 201
    await endpoints.aclose()
    assert endpoints.opened == 1
    assert [body for _, _, body in seen] == [b'{"n": %d}' % n for n in range(5)]
    request_line, headers, _ = seen[0]
    assert request_line == "POST /notify?x=1 HTTP/1.1"
    assert headers["content-type"] == "application/json"
    assert headers["host"].startswith("127.0.0.1:")


async def test_a_connection_the_server_closed_is_replaced() -> None:
    """A server that closes each connection after one answer (with or without saying so)."""
    for answer in (
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    ):
        handle, seen = answering(answer, close_after=1)
        endpoints = Endpoints(timeout=5)
        async with server(handle) as url:
            for _ in range(3):
                assert await endpoints.post(url, b"{}", {}) in (200, 204)
                await asyncio.sleep(0.05)  # the server's close arrives
        await endpoints.aclose()
        assert len(seen) == 3  # each sent once
        assert endpoints.opened == 3


async def test_answers_of_every_framing_are_read_whole() -> None:
    for answer in (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy",
    ):
        handle, seen = answering(answer)
        endpoints = Endpoints(timeout=5)
        async with server(handle) as url:
            statuses = [await endpoints.post(url, b"{}", {}) for _ in range(2)]
        await endpoints.aclose()
        assert statuses[0] == statuses[1] in (200, 202, 503)
        assert endpoints.opened == 1  # the first answer was read to its end: the connection reused
        assert len(seen) == 2


async def test_an_answer_until_close_is_read_and_the_connection_dropped() -> None:
    handle, _ = answering(b"HTTP/1.1 200 OK\r\n\r\nto the end", close_after=1)
    endpoints = Endpoints(timeout=5)
    async with server(handle) as url:
        assert await endpoints.post(url, b"{}", {}) == 200
        assert await endpoints.post(url, b"{}", {}) == 200
    assert endpoints.opened == 2


async def test_failures_are_errors_not_hangs() -> None:
    endpoints = Endpoints(timeout=0.5)

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)
        writer.close()

    async with server(hang) as url:
        with pytest.raises(TimeoutError):
            await endpoints.post(url, b"{}", {})

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        writer.close()

    async with server(garbage) as url:
        with pytest.raises(DeliveryError, match="not an HTTP answer"):
            await endpoints.post(url, b"{}", {})
        closed = url  # nobody listens there any more
    with pytest.raises(DeliveryError):
        await endpoints.post(closed, b"{}", {})


async def test_headers_that_would_split_the_request_are_refused() -> None:
    handle, seen = answering(b"HTTP/1.1 204 No Content\r\n\r\n")
    endpoints = Endpoints(timeout=5)
    async with server(handle) as url:
        with pytest.raises(DeliveryError, match="cannot be sent"):
            await endpoints.post(url, b"{}", {"X-Token": "a\r\nX-Admin: yes"})
        with pytest.raises(DeliveryError, match="not an HTTP URL"):
            await endpoints.post("ftp://127.0.0.1/x", b"{}", {})
    assert seen == []
