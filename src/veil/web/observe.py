"""Each request's id, metrics and access-log line (an ASGI middleware, outermost).

The request id is the request's ``X-Request-ID`` header when it is well formed (1 to
64 of ``A-Z a-z 0-9 . _ : @ + = / -``), else a fresh one (32 hex digits). It is echoed
in the response's ``X-Request-ID`` (in the WebSocket handshake's answer for a
WebSocket) and held in ``veil.web.logs.REQUEST_ID`` while the request is served, so
every line logged for it carries it.

Each HTTP request ends with one ``veil.access`` line (info; warning for a 5xx; debug for
``/healthz``, ``/readyz`` and ``/metrics``) and one observation in ``HttpMetrics``
under its route template. A WebSocket connection ends with one line saying how long it
lasted and the close code the server sent. Query strings are never logged (one route
carries a proof in its query).
"""

import logging
import random
import re
import time
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from veil.web.logs import REQUEST_ID
from veil.web.metrics import HttpMetrics

HEADER = b"x-request-id"
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:@+=/-]{1,64}")
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probed every few seconds: their lines are debug."""
UNROUTED = "unrouted"
"""The route label of a request no route served: a 404, or a 413 answered before
routing."""

access = logging.getLogger("veil.access")


def request_id(headers: Sequence[tuple[bytes, bytes]]) -> str:
    """The request's own id if it sent a well-formed one, else a new one."""
    for name, value in headers:
        if name == HEADER:
            if _WELL_FORMED.fullmatch(value):
                return value.decode("ascii")
            break
    # Unique, not secret: Python's generator is reseeded in forked workers, and is
    # faster than os.urandom here.
    return f"{random.getrandbits(128):032x}"


class Observe:
    def __init__(self, app: ASGIApp, *, service: str, metrics: HttpMetrics) -> None:
        self.app, self.service, self.metrics = app, service, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        rid = request_id(scope["headers"])
        token = REQUEST_ID.set(rid)
        echo = (HEADER, rid.encode("ascii"))
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), echo]}
            await send(message)

        self.metrics.in_flight += 1
        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            # REQUEST_ID stays set: the server logs the traceback next, in this context.
            self._http_done(scope, status or 500, started)
            raise
        finally:
            self.metrics.in_flight -= 1
        self._http_done(scope, status or 500, started)
        REQUEST_ID.reset(token)

    def _http_done(self, scope: Scope, status: int, started: float) -> None:
        seconds = time.perf_counter() - started
        route = self._route(scope)
        method = scope["method"]
        self.metrics.observe(method, route, status, seconds)
        if route in QUIET_ROUTES:
            level = logging.DEBUG
        else:
            level = logging.WARNING if status >= 500 else logging.INFO
        if access.isEnabledFor(level):
            path = scope["path"]
            access.log(
                level,
                "%s %s %d",
                method,
                path,
                status,
                extra={
                    "service": self.service,
                    "method": method,
                    "route": route,
                    "path": path,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                },
            )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        rid = request_id(scope["headers"])
        token = REQUEST_ID.set(rid)
        echo = (HEADER, rid.encode("ascii"))
        close_code: int | None = None
        close_reason = ""

        async def send_with_id(message: Message) -> None:
            nonlocal close_code, close_reason
            kind = message["type"]
            if kind == "websocket.accept":
                message = {**message, "headers": [*(message.get("headers") or ()), echo]}
            elif kind == "websocket.close":
                close_code, close_reason = message.get("code", 1000), message.get("reason") or ""
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if access.isEnabledFor(logging.INFO):
                seconds = time.perf_counter() - started
                path = scope["path"]
                access.info(
                    "WEBSOCKET %s closed (%s)",
                    path,
                    close_code if close_code is not None else "by the client",
                    extra={
                        "service": self.service,
                        "method": "WEBSOCKET",
                        "route": self._route(scope),
                        "path": path,
                        "close_code": close_code,
                        "close_reason": close_reason[:64],
                        "duration_ms": round(seconds * 1000, 3),
                    },
                )
        REQUEST_ID.reset(token)

    @staticmethod
    def _route(scope: Scope) -> str:
        """The template of the route that served the request (FastAPI records it)."""
        route = scope.get("route")
        return str(getattr(route, "path", UNROUTED))
