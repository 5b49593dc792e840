"""FastAPI dependencies: the service, and the two ways a caller authenticates.

Each takes its credentials through FastAPI security schemes (``veil.web.openapi``), so
the OpenAPI document says which a route needs; the refusals are Veil's own.
"""

from typing import Annotated

from fastapi import Depends, Request

from veil.keyserver.auth import SignedCall, parse_signed_request
from veil.keyserver.service import KeyService
from veil.protocol import (
    DEVICE_HEADER,
    KEYSERVER_AUDIENCE,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
)
from veil.web.errors import unprocessable
from veil.web.openapi import bearer_jwt, signature_schemes
from veil.web.tokens import Identity, bearer_token

BEARER = bearer_jwt(
    service="key service", audience=KEYSERVER_AUDIENCE, setting="VEIL_KEYSERVER_AUDIENCE"
)
SIGNATURE = signature_schemes()
"""The security schemes the routes' dependencies take their credentials through."""
_DEVICE, _TIMESTAMP, _NONCE, _SIGNATURE = SIGNATURE


async def get_service(request: Request) -> KeyService:  # async: no thread hop per request
    service: KeyService = request.app.state.service
    return service


Service = Annotated[KeyService, Depends(get_service)]


def _identity(fresh: bool):  # type: ignore[no-untyped-def]
    async def dependency(  # on the event loop: fetching the IdP's keys never blocks it
        service: Service, authorization: Annotated[str | None, Depends(BEARER)]
    ) -> Identity:
        return await service.jwt.verify(bearer_token(authorization), fresh=fresh)

    return dependency


User = Annotated[Identity, Depends(_identity(fresh=False))]
FreshUser = Annotated[Identity, Depends(_identity(fresh=True))]


def signed_call(
    request: Request,
    service: KeyService,
    body: bytes,
    headers: dict[str, str | None] | None = None,
) -> SignedCall:
    """``request`` (whose body is ``body``) as a signed call, checked in form only
    (``headers``: its signature headers, if already read)."""
    _check_segments(request)
    if headers is None:
        headers = {
            name: request.headers.get(name)
            for name in (DEVICE_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)
        }
    return parse_signed_request(
        service.settings,
        method=request.method,
        path=request.url.path,
        query=request.url.query,
        body=body,
        headers=headers,
    )


def _check_segments(request: Request) -> None:
    """Refuse a path whose ids hold an encoded ``/``. The service routes the decoded
    path, where ``%2F`` has become a separator: ``DELETE /v1/groups/g%2Fadmins%2Fbob``
    (the group ``g/admins/bob``) would otherwise take bob's admin role in g, with a
    signature over that very path. No id may hold a ``/``, so such a request is about
    no id at all."""
    raw = request.scope.get("raw_path") or b""
    if b"%2f" in raw.partition(b"?")[0].lower():
        raise unprocessable("invalid_id", "an id in the path holds a '/' (%2F), which no id may")


async def _signed(
    request: Request,
    service: Service,
    device: Annotated[str | None, Depends(_DEVICE)],
    timestamp: Annotated[str | None, Depends(_TIMESTAMP)],
    nonce: Annotated[str | None, Depends(_NONCE)],
    signature: Annotated[str | None, Depends(_SIGNATURE)],
) -> SignedCall:
    headers = {
        DEVICE_HEADER: device,
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: signature,
    }
    return signed_call(request, service, await request.body(), headers)


Signed = Annotated[SignedCall, Depends(_signed)]
"""A signed request, checked in form only: ``service.signed(call)`` authenticates it."""
