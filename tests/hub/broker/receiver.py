"""A real HTTP server on 127.0.0.1 that takes notifications, for subscription tests.

It speaks just enough HTTP/1.1 (Content-Length bodies, keep-alive) to be a subscriber. ``status``
sets the answer; ``hang`` makes it hold requests without answering, like a dead endpoint;
``hold`` makes them wait for an event, like a slow one.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    status: int = 200
    hang: bool = False
    #: when set, requests wait for it before they are answered (a slow subscriber)
    hold: asyncio.Event | None = None
    received: asyncio.Queue[Received] = field(default_factory=asyncio.Queue)
    attempts: int = 0
    _server: asyncio.Server | None = None
    _port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/notify"

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def next(self, timeout: float = 10.0) -> Received:
        return await asyncio.wait_for(self.received.get(), timeout)

    async def nothing(self, wait: float = 1.0) -> bool:
        """True if no notification arrives within ``wait`` seconds."""
        try:
            await asyncio.wait_for(self.received.get(), wait)
        except TimeoutError:
            return True
        return False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                _, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        key, _, value = line.partition(":")
                        headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.attempts += 1
                if self.hang:
                    await asyncio.sleep(3600)
                if self.hold is not None:
                    await self.hold.wait()
                if 200 <= self.status < 300:
                    await self.received.put(Received(path, headers, orjson.loads(body) if body else None))
                writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
