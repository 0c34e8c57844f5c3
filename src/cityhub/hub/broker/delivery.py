"""Posting notifications over HTTP/1.1: a small client with a pool of kept-alive connections per
endpoint.

A notification is one POST with a ``Content-Length`` body whose answer is read only for its
status: a general-purpose client (redirects, cookies, proxies from the environment, connection
bookkeeping) cost several times more per request than the rest of a delivery, and deliveries are
the broker's most frequent requests. Connections are kept per scheme, host and port and reused;
one the server closed while it sat idle is noticed before use, and a request that fails on a
reused connection before any answer arrived is tried once more on a new one (a notification may
come twice, never be lost: delivery is at least once anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

#: the longest status line and headers read from an answer
MAX_HEAD = 64 * 1024


class DeliveryError(Exception):
    """The request could not be made or its answer not read."""


@dataclass(frozen=True)
class _Target:
    key: tuple[str, str, int]  # scheme, host, port
    host_header: str
    path: str


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class Endpoints:
    """Posts bodies to endpoints, keeping up to ``keep`` idle connections to each."""

    def __init__(self, *, timeout: float, keep: int = 16) -> None:
        self.timeout = timeout
        self.keep = keep
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._targets: dict[str, _Target] = {}
        self._tls: ssl.SSLContext | None = None
        self.opened = 0  # connections opened, for tests and metrics

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST ``body`` to ``url`` and return the answer's status. Raises DeliveryError, or
        TimeoutError after ``timeout`` seconds."""
        target = self._target(url)
        head = _head(target, len(body), headers)
        async with asyncio.timeout(self.timeout):
            connection, reused = await self._connection(target)
            try:
                status, keep = await _attempt(connection, head, body)
            except _Dropped as dropped:
                if not reused:
                    raise DeliveryError(str(dropped)) from dropped
                # the server dropped a kept-alive connection before answering: once more, anew
                connection, _ = await self._connection(target, fresh=True)
                try:
                    status, keep = await _attempt(connection, head, body)
                except _Dropped as again:
                    raise DeliveryError(str(again)) from again
        idle = self._idle.setdefault(target.key, [])
        if keep and len(idle) < self.keep:
            idle.append(connection)
        else:
            connection.close()
        return status

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise DeliveryError(f"not an HTTP URL: {url}")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
            netloc = host if parts.port is None else f"{host}:{parts.port}"
            target = _Target((parts.scheme, parts.hostname, port), netloc, path)
            if len(self._targets) < 10_000:
                self._targets[url] = target
        return target

    async def _connection(self, target: _Target, *, fresh: bool = False) -> tuple[_Connection, bool]:
        idle = self._idle.get(target.key)
        while idle and not fresh:
            connection = idle.pop()
            if connection.usable():
                return connection, True
            connection.close()
        scheme, host, port = target.key
        if scheme == "https" and self._tls is None:
            self._tls = ssl.create_default_context()
        try:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=self._tls if scheme == "https" else None, limit=MAX_HEAD
            )
        except OSError as error:
            raise DeliveryError(f"{type(error).__name__}: {error}") from error
        self.opened += 1
        return _Connection(reader, writer), False


def _head(target: _Target, length: int, headers: dict[str, str]) -> bytes:
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {target.host_header}", f"Content-Length: {length}"]
    for key, value in headers.items():
        if any(c in key or c in value for c in "\r\n\0") or ":" in key:
            raise DeliveryError(f"header {key!r} cannot be sent")
        lines.append(f"{key}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class _Dropped(Exception):
    """The connection ended before any answer came."""


async def _attempt(connection: _Connection, head: bytes, body: bytes) -> tuple[int, bool]:
    """One exchange on ``connection``, closed if it fails (in any way, a timeout included)."""
    try:
        return await _exchange(connection, head, body)
    except (ConnectionError, asyncio.IncompleteReadError) as error:
        connection.close()
        if isinstance(error, asyncio.IncompleteReadError) and error.partial:
            raise DeliveryError("the answer was cut short") from error
        raise _Dropped(f"{type(error).__name__}: {error}".rstrip(": ")) from error
    except BaseException:
        connection.close()
        raise


async def _exchange(connection: _Connection, head: bytes, body: bytes) -> tuple[int, bool]:
    """Send one request and read its whole answer; returns the status and whether the
    connection can be used again."""
    connection.writer.write(head + body)
    await connection.writer.drain()
    reader = connection.reader
    while True:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as error:
            raise DeliveryError("the answer's headers are too long") from error
        lines = raw.decode("latin-1").split("\r\n")
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit():
            raise DeliveryError(f"not an HTTP answer: {lines[0][:100]!r}")
        status = int(status_line[1])
        fields: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if colon:
                fields[name.strip().lower()] = value.strip().lower()
        if 100 <= status < 200:
            continue  # an interim answer (100 Continue): the final one follows
        break
    keep = status_line[0] != "HTTP/1.0" and "close" not in fields.get("connection", "")
    if "chunked" in fields.get("transfer-encoding", ""):
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError as error:
                raise DeliveryError("a malformed chunked answer") from error
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                break
            await reader.readexactly(size + 2)
    elif "content-length" in fields:
        try:
            length = int(fields["content-length"])
        except ValueError as error:
            raise DeliveryError("a malformed Content-Length") from error
        await reader.readexactly(length)
    elif status in (204, 304):
        pass
    else:  # the body runs until the server closes the connection
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        keep = False
    return status, keep
