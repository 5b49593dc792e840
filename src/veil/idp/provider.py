"""The development IdP: an Ed25519 key, a JWKS document, OIDC discovery and a token
endpoint."""

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from jwt.algorithms import OKPAlgorithm
from pydantic import BaseModel, Field

from veil.protocol import KEYSERVER_AUDIENCE
from veil.web.env import DEV_ISSUER
from veil.web.oidc import DISCOVERY_PATH
from veil.web.openapi import NO_CDN_DOCS, note_no_docs
from veil.web.origins import allow_browsers

DEFAULT_ISSUER = DEV_ISSUER
"""The issuer of a provider used in-process; served at a URL (``veil serve``), the
provider's issuer is that URL, as OIDC discovery requires."""
DEFAULT_AUDIENCE = KEYSERVER_AUDIENCE
"""A token asked for without an audience is the key service's (by default, the
services take only tokens of their own audience: ``veil-keyserver``, ``veil-conference``)."""
JWKS_PATH = "/.well-known/jwks.json"


class DevIdentityProvider:
    """Issues tokens for any ``sub`` and audience. For the demo and tests only.

    ``audience`` is the default ``aud``; ``issue(sub, aud=...)`` names another one."""

    def __init__(
        self,
        *,
        issuer: str = DEFAULT_ISSUER,
        audience: str = DEFAULT_AUDIENCE,
        lifetime: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer, self.audience, self.lifetime, self.clock = issuer, audience, lifetime, clock
        self._key = Ed25519PrivateKey.generate()
        self.key_id = uuid.uuid4().hex

    def jwks(self) -> dict[str, Any]:
        jwk: dict[str, Any] = OKPAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.key_id, "alg": "EdDSA", "use": "sig"}]}

    def issue(self, sub: str, **overrides: Any) -> str:
        """A signed token for ``sub``; ``overrides`` replace or add claims (tests use them)."""
        now = int(self.clock())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "exp": now + self.lifetime,
            "jti": uuid.uuid4().hex,
            **overrides,
        }
        return jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self.key_id})


class TokenRequest(BaseModel):
    sub: str = Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")
    """Any name without control characters (``auth0|123``, ``ann@example.com``...): the
    services map it to a user id (``veil.protocol.ids.user_id_for``)."""
    audience: str | None = Field(default=None, min_length=1, max_length=256)
    """The service the token is for (``aud``); the provider's default when absent."""


class TokenResponse(BaseModel):
    token: str


def create_app(
    provider: DevIdentityProvider | None = None, *, cors_origins: Sequence[str] = ()
) -> FastAPI:
    """The IdP as an ASGI app: ``GET /.well-known/openid-configuration``,
    ``GET /.well-known/jwks.json`` and ``POST /token``; pages on ``cors_origins`` may
    ask it for tokens from a browser."""
    provider = provider or DevIdentityProvider()
    app = FastAPI(
        title="Veil development IdP (not for production)",
        description="Signs identity assertions for any user name. Demo and tests only.",
        **NO_CDN_DOCS,
    )
    app.state.provider = provider

    @app.get(DISCOVERY_PATH)
    def discovery(request: Request) -> dict[str, Any]:
        """OIDC discovery: the issuer and where its keys are. The services check that
        ``issuer`` is the URL they were given, so serve the provider with its URL as
        its issuer (``veil serve`` does)."""
        base = provider.issuer if "://" in provider.issuer else str(request.base_url)
        base = base.rstrip("/")
        return {
            "issuer": provider.issuer,
            "jwks_uri": base + JWKS_PATH,
            "token_endpoint": base + "/token",
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["id_token"],
        }

    @app.get(JWKS_PATH)
    def jwks() -> dict[str, Any]:
        return provider.jwks()

    @app.post("/token")
    def token(request: TokenRequest) -> TokenResponse:
        audience = request.audience or provider.audience
        return TokenResponse(token=provider.issue(request.sub, aud=audience))

    note_no_docs(app)
    allow_browsers(app, cors_origins)
    return app
