"""A minimal keep-alive HTTP/1.1 client on asyncio streams, for the benchmarks' simulated
devices.

``veil bench meeting`` runs thousands of devices in one process. Through httpx, the
per-request overhead of that one process dominated what the benchmark measured (at
N = 200, every device had its answer after 2.7 s with httpx against 1.2 s with this
client), where a real device pays it on its own CPU. This client does no more than the
benchmark needs: one request at a time per connection, ``Content-Length`` bodies (h11
also reads chunked answers), connections kept alive and shared through a ``RawPool``.
It is not a general client: no TLS, no redirects, no proxies, no cookies.
"""

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import h11

Headers = list[tuple[bytes, bytes]]

READ_CHUNK = 65536


class ServerClosed(ConnectionError):
    """The server closed the connection before answering."""


class RawConnection:
    """One socket to ``host:port``, one request at a time, kept alive between requests.

    A kept-alive connection may have been closed by the server while idle (uvicorn
    closes them after a few seconds): ``request`` then reconnects once and sends the
    request again. That is safe only because nothing of an answer had arrived, so the
    server had not taken the request (a server that took it would answer it first).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._host_header = f"{host}:{port}".encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._http = h11.Connection(h11.CLIENT)
        self.requests = 0  # answered on the current socket

    async def _open(self) -> None:
        self.close()
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._http = h11.Connection(h11.CLIENT)
        self.requests = 0

    def _usable(self) -> bool:
        """Whether the socket can take another request (it exists, the server has not
        sent its end, and h11 is ready for a new cycle)."""
        return (
            self._reader is not None
            and not self._reader.at_eof()
            and self._http.our_state is h11.IDLE
            and self._http.their_state is h11.IDLE
        )

    async def request(
        self, method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, Headers, bytes]:
        """(status, response headers, body) of one request."""
        if not self._usable():
            await self._open()
        reused = self.requests > 0
        try:
            return await self._exchange(method, path, headers or {}, body)
        except (ServerClosed, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
        # The server closed the idle connection as the request went out: once more, on a
        # fresh one (which raises if this fails too).
        await self._open()
        return await self._exchange(method, path, headers or {}, body)

    async def _exchange(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Headers, bytes]:
        assert self._reader is not None and self._writer is not None
        http = self._http
        fields = [
            (b"host", self._host_header),
            (b"content-length", str(len(body)).encode()),
            *((name.encode(), value.encode()) for name, value in headers.items()),
        ]
        # One write per request: the headers, the body and its end together.
        self._writer.write(
            http.send(h11.Request(method=method, target=path, headers=fields))
            + http.send(h11.Data(data=body))
            + http.send(h11.EndOfMessage())
        )
        await self._writer.drain()
        status, response_headers, chunks = 0, [], []
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                data = await self._reader.read(READ_CHUNK)
                if not data and status == 0:
                    raise ServerClosed(f"{self.host}:{self.port} closed the connection")
                http.receive_data(data)
            elif isinstance(event, h11.Response):
                status, response_headers = event.status_code, list(event.headers)
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ServerClosed(f"{self.host}:{self.port} closed the connection mid-answer")
        self.requests += 1
        if http.our_state is h11.DONE and http.their_state is h11.DONE:
            http.start_next_cycle()
        else:  # "Connection: close", or an answer before the whole request: not reusable
            self.close()
        return status, response_headers, b"".join(chunks)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class RawPool:
    """At most ``size`` ``RawConnection``s to one server, shared by every caller: a request
    waits for a free connection, and connections are opened only when needed."""

    def __init__(self, base_url: str, size: int = 64) -> None:
        where = urlsplit(base_url)
        if where.scheme != "http" or where.hostname is None:
            raise ValueError("RawPool speaks plain http:// only")
        self.host, self.port = where.hostname, where.port or 80
        self._idle: list[RawConnection] = []
        self._free = asyncio.Semaphore(size)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[RawConnection]:
        async with self._free:
            connection = self._idle.pop() if self._idle else RawConnection(self.host, self.port)
            try:
                yield connection
            except BaseException:
                connection.close()  # in an unknown state (cancelled mid-request, say)
                raise
            self._idle.append(connection)

    async def request(
        self, method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, Headers, bytes]:
        async with self.connection() as connection:
            return await connection.request(method, path, headers, body)

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
