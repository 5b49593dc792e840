"""The OpenAPI document: served without CDN pages, and saying how each call authenticates.

FastAPI's ``/docs`` and ``/redoc`` pages load their scripts from a public CDN, so on a
closed network they render blank. The services therefore serve the OpenAPI document
alone, at ``/openapi.json``, for whatever viewer or client generator an integrator
runs locally; ``/docs`` and ``/redoc`` answer 404 saying so (``note_no_docs``).

Security: the auth dependencies take their credentials through FastAPI security
schemes (``BearerJwt``, ``signature_schemes``), so the document declares the schemes
(``components.securitySchemes``) from the dependencies a route really has. The schemes
refuse nothing themselves (``auto_error=False``): Veil's own checks answer with its
error codes, as before. ``document_security`` then states each operation's
``security`` as Veil checks it: FastAPI lists a route's schemes as alternatives, but
every credential a Veil route asks for is required, so they form one requirement
(the four signature headers together, plus the JWT where a route takes both); a route
that asks for none says ``security: []``.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from fastapi.security.base import SecurityBase
from starlette.requests import HTTPConnection

NO_CDN_DOCS: Final[dict[str, Any]] = {"docs_url": None, "redoc_url": None}
"""FastAPI's arguments that turn its CDN pages off; ``note_no_docs`` says so at their paths."""

NO_DOCS_NOTE: Final = (
    "this service has no {page} page: FastAPI's loads its scripts from a public CDN, "
    "which a closed network cannot reach. The API document is GET /openapi.json: "
    "render it with a viewer of your own"
)


def note_no_docs(app: FastAPI) -> None:
    """Answer ``/docs`` and ``/redoc`` with a 404 that says why they are off and where
    the API document is, rather than a bare "Not Found" an integrator would take for a
    broken deployment. Left out of the OpenAPI document."""

    def answer(page: str) -> Callable[[], Awaitable[JSONResponse]]:
        async def no_page() -> JSONResponse:
            return JSONResponse(
                {"error": {"code": "not_found", "message": NO_DOCS_NOTE.format(page=page)}},
                status_code=404,
            )

        return no_page

    for page in ("/docs", "/redoc"):
        app.add_api_route(page, answer(page), methods=["GET"], include_in_schema=False)


JWT_SCHEME = "jwt"
"""The name of the bearer-JWT scheme in ``components.securitySchemes``."""


class BearerJwt(HTTPBearer):
    """``Authorization: Bearer <JWT>``, documented as FastAPI's HTTP bearer scheme. As a
    dependency it gives the header as sent (``None`` if absent) and refuses nothing:
    ``veil.web.tokens.bearer_token`` and ``JwtVerifier`` make the refusals."""

    async def __call__(self, request: HTTPConnection) -> str | None:  # type: ignore[override]
        return request.headers.get("authorization")


def bearer_jwt(*, service: str, audience: str, setting: str) -> BearerJwt:
    """The bearer scheme of a service whose tokens' default audience is ``audience``
    (``setting``: the environment variable that changes it)."""
    return BearerJwt(
        scheme_name=JWT_SCHEME,
        bearerFormat="JWT",
        auto_error=False,
        description=(
            f"A JWT from the platform's identity provider, for the {service}: signed by a "
            "key of the IdP's JWKS (EdDSA, ES256 or RS256), from the configured issuer, "
            f"with exactly one audience, this service's: `{audience}` unless the "
            f"deployment sets another (`{setting}`). A token naming several audiences is "
            "refused. `exp` is checked without leeway, `nbf` and `iat` with the clock "
            "skew; the key service's calls that create keys need a token issued in the "
            "last few minutes (`token_stale`). Refusals are 401 with `error.code` `missing_token`, "
            "`invalid_token`, `wrong_issuer`, `wrong_audience`, `token_expired`, "
            "`token_not_yet_valid` or `token_stale`."
        ),
    )


SIGNED_STRING = (
    "`veil-request-v2` LF *device id* LF *METHOD* LF *path* LF *query* LF "
    "*hex(SHA-256(body))* LF *timestamp* LF *nonce*"
)
"""The canonical string a device signs (``veil.protocol.request_message``)."""

_SIGNED_REQUEST = (
    "One of the four headers of a device-signed request (`Veil-Device`, "
    "`Veil-Timestamp`, `Veil-Nonce`, `Veil-Signature`), always sent together: the "
    "device signs, with its registered Ed25519 signing key, the UTF-8 string "
    f"{SIGNED_STRING}, where the path is the one the service routes (percent-decoded), "
    "the query is its pairs sorted and re-encoded, and the body is the exact bytes sent "
    "(empty for none). See docs/protocol.md §1, *Signed key-service requests*. Refusals "
    "are 401 (`unsigned_request`, `bad_signature`, `stale_request`, `replayed_request`, "
    "`unknown_device`) or 403 `device_revoked`."
)

SIGNATURE_HEADERS: Final[dict[str, tuple[str, str]]] = {
    "Veil-Device": (
        "veilDevice",
        "The signing device's id (32 hex characters, as registered); it is also the "
        "canonical string's second line.",
    ),
    "Veil-Timestamp": (
        "veilTimestamp",
        "Unix seconds when the request was signed, within the service's clock skew "
        "(60 s by default).",
    ),
    "Veil-Nonce": (
        "veilNonce",
        "16 random bytes, base64url without padding: the service spends each nonce once, "
        "whether it accepts or refuses the request.",
    ),
    "Veil-Signature": (
        "veilSignature",
        "The Ed25519 signature of the canonical string, base64url without padding.",
    ),
}
"""Header -> (scheme name, what the header holds)."""


def signature_schemes() -> tuple[APIKeyHeader, ...]:
    """The four signature headers as API-key header schemes, in header order."""
    return tuple(
        APIKeyHeader(
            name=header,
            scheme_name=scheme,
            description=f"{meaning} {_SIGNED_REQUEST}",
            auto_error=False,
        )
        for header, (scheme, meaning) in SIGNATURE_HEADERS.items()
    )


SIGNED_REQUEST: Final[list[dict[str, list[str]]]] = [
    {scheme: [] for scheme, _ in SIGNATURE_HEADERS.values()}
]
"""The ``security`` of a signed route: all four headers together (one requirement).
A route that reads its request itself, without the dependencies, declares it with
``openapi_extra={"security": SIGNED_REQUEST}``."""


def document_security(app: FastAPI, schemes: Sequence[SecurityBase]) -> None:
    """Have ``app.openapi()`` declare ``schemes`` (every scheme the app's routes can
    name) and each operation's ``security`` as Veil checks it: the schemes FastAPI
    found in the operation's dependencies (or its ``openapi_extra``), all required, as
    one requirement; ``[]`` for an operation with none. (No Veil route takes one
    credential or another: one that did would have to be stated here.)"""
    build = app.openapi
    stated: dict[str, Any] | None = None

    def openapi() -> dict[str, Any]:
        nonlocal stated
        schema = build()  # FastAPI's, cached until the routes change
        if schema is not stated:
            _state_security(schema, schemes)
            stated = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _state_security(schema: dict[str, Any], schemes: Sequence[SecurityBase]) -> None:
    declared = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    for scheme in schemes:
        declared[scheme.scheme_name] = jsonable_encoder(
            scheme.model, by_alias=True, exclude_none=True
        )
    for operations in schema["paths"].values():
        for operation in operations.values():
            needed = {
                name: scopes
                for requirement in operation.get("security", [])
                for name, scopes in requirement.items()
            }
            unknown = set(needed) - set(declared)
            if unknown:
                raise ValueError(f"undeclared security schemes: {sorted(unknown)}")
            operation["security"] = [needed] if needed else []
