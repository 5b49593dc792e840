"""The dev IdP, the key service and the conference service, run together in this
process on loopback (the embedded default behind ``veil demo``, ``veil serve`` and the
end-to-end tests). Each service listens on its own port, as separate deployments would.

``running_stack`` (and ``threaded_stack``, from another thread) also let a test stop
the conference service and start it again on the same port with the same database, as
a rolling deploy or a crash would: clients see their connections close and the port
refuse connections until it is back, and nothing held in the service's memory
survives.
"""

import asyncio
import contextlib
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from veil.conference import ConferenceSettings
from veil.conference import create_app as create_conference
from veil.conference.fanout import Fanout
from veil.idp import DevIdentityProvider
from veil.idp import create_app as create_idp
from veil.keyserver import KeyServerSettings
from veil.keyserver import create_app as create_keyserver
from veil.protocol import CONFERENCE_AUDIENCE, KEYSERVER_AUDIENCE


@dataclass(frozen=True)
class Endpoints:
    idp_url: str
    keyserver_url: str
    conference_url: str


SHUTDOWN_SECONDS = 5
"""How long a stopping service waits for open connections before it closes them."""


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to whoever runs the stack. Three servers
    on one loop each capturing SIGINT passed it on one after another, and the last
    re-raised it under the process's original disposition: where that was "ignore"
    (a job started in the background by a script), ``veil serve`` never stopped."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets, and
    # without it every response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


class _Service:
    """One service of the stack: an app served by uvicorn on one port. ``stop`` closes
    the port; ``start`` binds it again and serves a new app from the factory."""

    def __init__(
        self,
        make_app: Callable[[], Any],
        sock: socket.socket,
        log_level: str,
        log_config: dict[str, Any] | None = None,
    ) -> None:
        self._make_app, self._log_level, self._log_config = make_app, log_level, log_config
        self._sock: socket.socket | None = sock
        self._address = sock.getsockname()[:2]
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        sock = self._sock = self._sock or _bind(*self._address)
        self._server = _Server(
            uvicorn.Config(
                self._make_app(),
                log_level=self._log_level,
                log_config=self._log_config or LOGGING_CONFIG,
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=SHUTDOWN_SECONDS,
            )
        )
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))

    def started(self) -> bool:
        """True once serving; raises if the server ended before it started."""
        assert self._server is not None and self._task is not None
        if self._task.done() and not self._server.started:
            raise RuntimeError("a service failed to start") from self._task.exception()
        return bool(self._server.started)

    def request_stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True

    async def stopped(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._sock is not None:
            self._sock.close()
        self._server = self._task = self._sock = None


async def _start(services: list[_Service]) -> None:
    for service in services:
        service.start()
    while not all(service.started() for service in services):
        await asyncio.sleep(0.02)


async def _stop(services: list[_Service]) -> None:
    for service in services:
        service.request_stop()
    for service in services:
        await service.stopped()


class Stack:
    """The three services running on one event loop (``running_stack``'s block)."""

    def __init__(self, endpoints: Endpoints, conference: _Service) -> None:
        self.endpoints, self._conference = endpoints, conference

    async def stop_conference(self) -> None:
        """Stop the conference service as a deploy stops a replica: it closes its
        connections (WebSocket close 1012) and stops listening; until
        ``start_conference``, connecting to its port is refused."""
        await _stop([self._conference])

    async def start_conference(self) -> None:
        """Start the conference service again: on the same port, with the same settings
        and database, and nothing else of the stopped one (rooms' fan-out and caches
        start empty, as in a new process)."""
        await _start([self._conference])

    async def restart_conference(self) -> None:
        await self.stop_conference()
        await self.start_conference()


@contextlib.asynccontextmanager
async def run_stack(data_dir: Path, **options: Any) -> AsyncIterator[Endpoints]:
    """Serve the three services on this event loop until the block exits, then stop
    them together (options: see ``running_stack``). Signals are the caller's to handle
    (``veil serve`` stops on SIGINT and SIGTERM; ``asyncio.run`` turns Ctrl-C into a
    cancellation)."""
    async with running_stack(data_dir, **options) as stack:
        yield stack.endpoints


@contextlib.asynccontextmanager
async def running_stack(
    data_dir: Path,
    *,
    idp: DevIdentityProvider,
    discovery: bool = False,
    host: str = "127.0.0.1",
    ports: tuple[int, int, int] = (0, 0, 0),
    database_url: str | None = None,
    fanout_url: str | None = None,
    fanout: Fanout | None = None,
    transform_workers: int = 0,
    service_secret: bytes | None = None,
    log_level: str = "warning",
    log_config: dict[str, Any] | None = None,
    user_id_claim: str = "sub",
    web_dir: Path | None = None,
    cors_origins: Sequence[str] = (),
) -> AsyncIterator[Stack]:
    """``run_stack``, yielding the ``Stack`` (whose conference service can be stopped
    and started again). A ``fanout`` object is handed to each conference app in turn,
    so a restart needs one that still works after the app closed it (``MemoryFanout``
    does; or leave it to ``fanout_url``). ``log_config``: uvicorn's (its own default
    when ``None``), e.g. ``veil.web.logs.logging_config()``. ``user_id_claim``: the
    token claim both services take the user id from. ``web_dir``: a built ``web/``
    whose example page the conference service serves at ``/app/``. ``cors_origins``:
    web origins whose pages may call the three services, beside the conference's own."""
    sockets = [_bind(host, port) for port in ports]
    endpoints = Endpoints(*(_url(s) for s in sockets))
    common: dict[str, Any] = {"issuer": idp.issuer, "jwks": idp.jwks()}
    if discovery:  # the services find the dev IdP's keys as they would a real IdP's
        idp.issuer = endpoints.idp_url  # OIDC: the issuer is the URL discovery starts from
        common = {"issuer_url": endpoints.idp_url}
    common["user_id_claim"] = user_id_claim
    # The conference's own origin, where the stack's web page is served, may call all three.
    common["cors_origins"] = (endpoints.conference_url, *cors_origins)
    keyserver = KeyServerSettings(
        database_url=database_url or f"sqlite:///{(data_dir / 'keyserver.sqlite3').as_posix()}",
        service_secret=service_secret or secrets.token_bytes(32),
        transform_workers=transform_workers,
        audience=KEYSERVER_AUDIENCE,
        **common,
    )
    conference = ConferenceSettings(
        database_url=database_url or f"sqlite:///{(data_dir / 'conference.sqlite3').as_posix()}",
        keyserver_url=endpoints.keyserver_url,
        fanout_url=fanout_url,
        audience=CONFERENCE_AUDIENCE,
        web_dir=web_dir,
        **common,
    )
    factories: list[Callable[[], Any]] = [
        lambda: create_idp(idp, cors_origins=common["cors_origins"]),
        lambda: create_keyserver(keyserver),
        lambda: create_conference(conference, fanout=fanout),
    ]
    services = [
        _Service(make, sock, log_level, log_config)
        for make, sock in zip(factories, sockets, strict=True)
    ]
    try:
        await _start(services)
        yield Stack(endpoints, services[2])
    finally:
        await _stop(services)


class ThreadedStack:
    """A ``Stack`` running on its own event loop in a background thread
    (``threaded_stack``); its methods are awaited from the caller's loop."""

    def __init__(self, stack: Stack, loop: asyncio.AbstractEventLoop) -> None:
        self.endpoints, self._stack, self._loop = stack.endpoints, stack, loop

    def _on_stack(self, work: Callable[[], Awaitable[None]]) -> "asyncio.Future[None]":
        async def run() -> None:
            await work()

        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), self._loop))

    async def stop_conference(self) -> None:
        await self._on_stack(self._stack.stop_conference)

    async def start_conference(self) -> None:
        await self._on_stack(self._stack.start_conference)

    async def restart_conference(self) -> None:
        await self._on_stack(self._stack.restart_conference)


@contextlib.contextmanager
def threaded_stack(data_dir: Path, **options: Any) -> Iterator[ThreadedStack]:
    """``running_stack`` on its own event loop in a background thread (for synchronous
    callers such as tests, whose client code then runs on another loop)."""
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"], box["loop"] = stop, asyncio.get_running_loop()
        try:
            async with running_stack(data_dir, **options) as stack:
                box["stack"] = ThreadedStack(stack, box["loop"])
                started.set()
                await stop.wait()
        except BaseException as exc:
            box["error"] = exc
            started.set()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    started.wait(120)
    if "error" in box:
        raise RuntimeError("the services did not start") from box["error"]
    try:
        yield box["stack"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)


@contextlib.contextmanager
def stack_in_thread(data_dir: Path, **options: Any) -> Iterator[Endpoints]:
    """``threaded_stack``, yielding its endpoints only."""
    with threaded_stack(data_dir, **options) as stack:
        yield stack.endpoints
