"""``veil.bench.rawhttp``: keep-alive, reconnecting once to a server that closed an idle
connection, and a pool that never opens more than its size."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import h11
import pytest

from veil.bench.rawhttp import RawConnection, RawPool, ServerClosed


@dataclass
class Server:
    """An HTTP/1.1 server (h11) that echoes each request's method, path and body, and
    counts connections. ``close_after``: answers per connection before it closes it
    (without saying so); ``say_close``: answers with ``Connection: close``; ``delay``:
    seconds before answering."""

    close_after: int | None = None
    say_close: bool = False
    delay: float = 0.0
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    headers_seen: list[dict[bytes, bytes]] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        http = h11.Connection(h11.SERVER)
        answered = 0
        try:
            while self.close_after is None or answered < self.close_after:
                request, body = await self._read(reader, http)
                if request is None:
                    return
                await asyncio.sleep(self.delay)
                self.headers_seen.append(dict(request.headers))
                echo = f"{request.method.decode()} {request.target.decode()} ".encode() + body
                headers = [("content-length", str(len(echo)))]
                if self.say_close:
                    headers.append(("connection", "close"))
                writer.write(
                    http.send(h11.Response(status_code=200, headers=headers))
                    + http.send(h11.Data(data=echo))
                    + http.send(h11.EndOfMessage())
                )
                await writer.drain()
                answered += 1
                if http.our_state is h11.MUST_CLOSE:
                    return
                http.start_next_cycle()
        finally:
            self.open_now -= 1
            writer.close()

    @staticmethod
    async def _read(
        reader: asyncio.StreamReader, http: h11.Connection
    ) -> tuple[h11.Request | None, bytes]:
        request, body = None, b""
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                http.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return request, body
            elif isinstance(event, h11.ConnectionClosed):
                return None, b""


@asynccontextmanager
async def serving(server: Server) -> AsyncIterator[int]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    async with listener:
        yield listener.sockets[0].getsockname()[1]


def test_requests_share_one_kept_alive_connection() -> None:
    async def main() -> None:
        server = Server()
        async with serving(server) as port:
            connection = RawConnection("127.0.0.1", port)
            for i in range(3):
                status, headers, body = await connection.request(
                    "POST", f"/echo/{i}", {"x-test": "yes"}, b"hello"
                )
                assert status == 200 and body == f"POST /echo/{i} hello".encode()
                assert (b"content-length", str(len(body)).encode()) in headers
            connection.close()
        assert server.connections == 1
        assert server.headers_seen[0][b"x-test"] == b"yes"
        assert server.headers_seen[0][b"host"] == f"127.0.0.1:{port}".encode()

    asyncio.run(main())


def test_a_connection_the_server_closed_while_idle_is_opened_again() -> None:
    async def main() -> None:
        server = Server(close_after=1)  # closes each connection after one answer
        async with serving(server) as port:
            connection = RawConnection("127.0.0.1", port)
            for i in range(3):
                assert (await connection.request("GET", f"/{i}"))[2] == f"GET /{i} ".encode()
            connection.close()
        assert server.connections == 3

    asyncio.run(main())


def test_a_close_the_client_has_not_seen_yet_is_retried_once() -> None:
    async def main() -> None:
        server = Server(close_after=1)
        async with serving(server) as port:
            connection = RawConnection("127.0.0.1", port)
            await connection.request("GET", "/first")
            # As if the server's end had not reached the client before it sent again.
            assert connection._reader is not None
            connection._reader.at_eof = lambda: False  # type: ignore[method-assign]
            assert (await connection.request("GET", "/second"))[2] == b"GET /second "
            connection.close()
        assert server.connections == 2

    asyncio.run(main())


def test_connection_close_is_honoured() -> None:
    async def main() -> None:
        server = Server(say_close=True)
        async with serving(server) as port:
            connection = RawConnection("127.0.0.1", port)
            for _ in range(2):
                assert (await connection.request("GET", "/"))[0] == 200
            connection.close()
        assert server.connections == 2

    asyncio.run(main())


def test_a_fresh_connection_closed_unanswered_is_an_error_not_a_loop() -> None:
    async def main() -> None:
        server = Server(close_after=0)  # closes every connection at once
        async with serving(server) as port:
            connection = RawConnection("127.0.0.1", port)
            with pytest.raises((ServerClosed, ConnectionResetError)):
                await connection.request("GET", "/")
        assert server.connections == 1

    asyncio.run(main())


def test_a_pool_never_opens_more_than_its_size() -> None:
    async def main() -> None:
        server = Server(delay=0.01)
        async with serving(server) as port:
            pool = RawPool(f"http://127.0.0.1:{port}", size=3)
            answers = await asyncio.gather(
                *(pool.request("POST", "/p", body=b"%d" % i) for i in range(30))
            )
            pool.close()
        assert sorted(body for _, _, body in answers) == sorted(
            b"POST /p %d" % i for i in range(30)
        )
        assert server.connections == 3 and server.most_open == 3

    asyncio.run(main())


def test_a_pool_takes_plain_http_only() -> None:
    with pytest.raises(ValueError, match="http://"):
        RawPool("https://127.0.0.1:1")
