"""Servers on loopback for the token tests: ``serve(app)`` runs an ASGI app with uvicorn
in a background thread (its own event loop, real HTTP), and ``oidc`` is a small OIDC
provider whose discovery document and JWKS endpoint can be made slow, failing or
malformed, counting what it is asked."""

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from veil.idp import DevIdentityProvider


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Served:
    """An ASGI app served on a free loopback port until ``stop``."""

    def __init__(self, app: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Any], Served]]:
    started: list[Served] = []

    def start(app: Any) -> Served:
        started.append(Served(app))
        return started[-1]

    yield start
    for served in reversed(started):
        served.stop()


class FakeOidc:
    """An OIDC provider on loopback: ``/.well-known/openid-configuration`` and ``/jwks``,
    signing with a ``DevIdentityProvider`` whose issuer is this server's URL.

    Tests change ``discovery`` (fields merged into the document), ``jwks`` (the
    document served, the provider's by default), ``status``, ``body`` (raw bytes
    instead of JSON) and ``delay`` (seconds the JWKS endpoint waits before answering);
    ``hits`` counts requests by path."""

    def __init__(self) -> None:
        self.provider = DevIdentityProvider()
        self.discovery: dict[str, Any] = {}
        self.jwks: dict[str, Any] | None = None
        self.status = 200
        self.body: bytes | None = None
        self.delay = 0.0
        self.hits: Counter[str] = Counter()
        self.release = threading.Event()
        self.url = ""

    def app(self) -> Starlette:
        async def discovery(request: Request) -> Response:
            self.hits["discovery"] += 1
            document = {"issuer": self.url, "jwks_uri": self.url + "/jwks", **self.discovery}
            return JSONResponse({k: v for k, v in document.items() if v is not None})

        async def jwks(request: Request) -> Response:
            self.hits["jwks"] += 1
            deadline = time.monotonic() + self.delay
            while time.monotonic() < deadline and not self.release.is_set():
                await asyncio.sleep(0.02)
            if self.body is not None:
                return Response(self.body, status_code=self.status)
            return JSONResponse(self.jwks or self.provider.jwks(), status_code=self.status)

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/jwks", jwks),
            ]
        )

    def issue(self, sub: str = "alice", **claims: Any) -> str:
        return self.provider.issue(sub, **claims)


@pytest.fixture
def oidc(serve: Callable[[Any], Served], clock: Clock) -> Iterator[FakeOidc]:
    fake = FakeOidc()
    fake.provider.clock = clock
    fake.url = serve(fake.app()).url
    fake.provider.issuer = fake.url
    yield fake
    fake.release.set()  # let sleeping answers end, so the server stops at once
