"""FastAPI dependencies: the service, and the two ways a caller authenticates."""

from typing import Annotated

from fastapi import Depends, Header, Request

from veil.keyserver.auth import SignedCall, parse_signed_request
from veil.keyserver.service import KeyService
from veil.protocol import DEVICE_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from veil.web.errors import unprocessable
from veil.web.tokens import Identity, bearer_token


async def get_service(request: Request) -> KeyService:  # async: no thread hop per request
    service: KeyService = request.app.state.service
    return service


Service = Annotated[KeyService, Depends(get_service)]


def _identity(fresh: bool):  # type: ignore[no-untyped-def]
    async def dependency(  # on the event loop: fetching the IdP's keys never blocks it
        service: Service, authorization: Annotated[str | None, Header()] = None
    ) -> Identity:
        return await service.jwt.verify(bearer_token(authorization), fresh=fresh)

    return dependency


User = Annotated[Identity, Depends(_identity(fresh=False))]
FreshUser = Annotated[Identity, Depends(_identity(fresh=True))]


def signed_call(request: Request, service: KeyService, body: bytes) -> SignedCall:
    """``request`` (whose body is ``body``) as a signed call, checked in form only."""
    _check_segments(request)
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


async def _signed(request: Request, service: Service) -> SignedCall:
    return signed_call(request, service, await request.body())


Signed = Annotated[SignedCall, Depends(_signed)]
"""A signed request, checked in form only: ``service.signed(call)`` authenticates it."""
