"""The development IdP: an Ed25519 key, a JWKS document and a token endpoint."""

import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from jwt.algorithms import OKPAlgorithm
from pydantic import BaseModel, Field

DEFAULT_ISSUER = "veil-dev-idp"
DEFAULT_AUDIENCE = "veil"


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
    sub: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._@:-]+$")
    audience: str | None = Field(default=None, min_length=1, max_length=256)
    """The service the token is for (``aud``); the provider's default when absent."""


class TokenResponse(BaseModel):
    token: str


def create_app(provider: DevIdentityProvider | None = None) -> FastAPI:
    """The IdP as an ASGI app: ``GET /.well-known/jwks.json`` and ``POST /token``."""
    provider = provider or DevIdentityProvider()
    app = FastAPI(
        title="Veil development IdP (not for production)",
        description="Signs identity assertions for any user name. Demo and tests only.",
    )
    app.state.provider = provider

    @app.get("/.well-known/jwks.json")
    def jwks() -> dict[str, Any]:
        return provider.jwks()

    @app.post("/token")
    def token(request: TokenRequest) -> TokenResponse:
        audience = request.audience or provider.audience
        return TokenResponse(token=provider.issue(request.sub, aud=audience))

    return app
