"""Which web origins may call a service from a browser: CORS for HTTP (Starlette's
``CORSMiddleware``) and an ``Origin`` check for WebSockets, which browsers open across
origins without asking and which CORS does not cover (RFC 6455 §10.2).

Clients that are not browsers send no ``Origin``; they authenticate like everyone
else (tokens, signed requests, signed hellos) and are not affected. A browser page
from an origin not listed gets no CORS headers (its script cannot read the answer)
and its WebSocket is refused with 403 before the handshake completes. An origin is
``scheme://host[:port]``, as browsers send it (RFC 6454 §6.2)."""

from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from veil.protocol import (
    DEVICE_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
)

_REQUEST_HEADERS = (
    "authorization", "content-type", "x-request-id",
    DEVICE_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER,
)  # fmt: skip


def parse_origins(value: Any) -> tuple[str, ...]:
    """A comma-separated list (or a sequence) of origins, checked; ``ValueError`` names
    what is not an origin."""
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    origins = tuple(str(item).strip() for item in items if str(item).strip())
    for origin in origins:
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path
            or parts.query
            or parts.fragment
            or parts.username is not None
            or origin != origin.lower()
        ):
            raise ValueError(
                f"{origin!r} is not an origin (scheme://host[:port], lower case, no path)"
            )
    return origins


def allow_browsers(app: FastAPI, origins: Sequence[str]) -> None:
    """CORS for ``origins``: the methods and headers Veil's requests use, and the
    request id readable by the page."""
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=list(_REQUEST_HEADERS),
            expose_headers=["x-request-id"],
            max_age=600,
        )


def origin_allowed(origin: str | None, origins: Iterable[str]) -> bool:
    """Whether a WebSocket whose handshake carried ``origin`` may open: any client that
    sent none (not a browser), and browsers on the listed origins."""
    return origin is None or origin in origins
