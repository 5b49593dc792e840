"""The dev IdP, the key service and the conference service, run together in this
process on loopback (the embedded default behind ``veil demo``, ``veil serve`` and the
end-to-end tests). Each service listens on its own port, as separate deployments would.
"""

import asyncio
import contextlib
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

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


@contextlib.asynccontextmanager
async def run_stack(
    data_dir: Path,
    *,
    idp: DevIdentityProvider,
    host: str = "127.0.0.1",
    ports: tuple[int, int, int] = (0, 0, 0),
    database_url: str | None = None,
    fanout_url: str | None = None,
    fanout: Fanout | None = None,
    transform_workers: int = 0,
    service_secret: bytes | None = None,
    log_level: str = "warning",
) -> AsyncIterator[Endpoints]:
    """Serve the three services on this event loop until the block exits, then stop
    them together. Signals are the caller's to handle (``veil serve`` stops on SIGINT
    and SIGTERM; ``asyncio.run`` turns Ctrl-C into a cancellation)."""
    sockets = [_bind(host, port) for port in ports]
    endpoints = Endpoints(*(_url(s) for s in sockets))
    common: dict[str, Any] = {"issuer": idp.issuer, "jwks": idp.jwks()}
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
        **common,
    )
    apps = [
        create_idp(idp),
        create_keyserver(keyserver),
        create_conference(conference, fanout=fanout),
    ]
    servers = [
        _Server(
            uvicorn.Config(
                app,
                log_level=log_level,
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=SHUTDOWN_SECONDS,
            )
        )
        for app in apps
    ]
    tasks = [
        asyncio.create_task(server.serve(sockets=[sock]))
        for server, sock in zip(servers, sockets, strict=True)
    ]
    try:
        while not all(server.started for server in servers):
            if any(task.done() for task in tasks):
                for task in tasks:
                    if task.done() and task.exception():
                        raise RuntimeError("a service failed to start") from task.exception()
                raise RuntimeError("a service exited during start-up")
            await asyncio.sleep(0.02)
        yield endpoints
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def stack_in_thread(data_dir: Path, **options: Any) -> Iterator[Endpoints]:
    """``run_stack`` on its own event loop in a background thread (for synchronous
    callers such as tests, whose client code then runs on another loop)."""
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"], box["loop"] = stop, asyncio.get_running_loop()
        try:
            async with run_stack(data_dir, **options) as endpoints:
                box["endpoints"] = endpoints
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
        yield box["endpoints"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)
