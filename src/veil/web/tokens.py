"""JWT identity assertions from the platform's IdP, checked against its JWKS (EdDSA,
ES256, RS256): signature, issuer, audience, ``sub``, ``exp``, and, for calls that create
keys, an ``iat`` no older than ``fresh_token_seconds``. Shared by Veil's services."""

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

from veil.web.errors import unauthorized


class TokenPolicy(Protocol):
    """The settings a service verifies tokens with."""

    @property
    def issuer(self) -> str: ...
    @property
    def audience(self) -> str: ...
    @property
    def jwks(self) -> dict[str, Any] | None: ...
    @property
    def jwks_url(self) -> str | None: ...
    @property
    def algorithms(self) -> tuple[str, ...]: ...
    @property
    def clock_skew_seconds(self) -> int: ...
    @property
    def fresh_token_seconds(self) -> int: ...
    @property
    def clock(self) -> Callable[[], float]: ...


USER_ID = re.compile(r"^[A-Za-z0-9._@:-]{1,256}$")


def check_jwks_source(jwks: dict[str, Any] | None, jwks_url: str | None) -> None:
    """Exactly one of a JWKS document with at least one usable key, or an http(s) URL:
    for settings to refuse at start what would otherwise fail every request."""
    if (jwks is None) == (jwks_url is None):
        raise ValueError("configure exactly one of jwks (a JWKS document) or jwks_url")
    if jwks_url is not None and urlsplit(jwks_url).scheme not in ("http", "https"):
        raise ValueError("jwks_url must be an http(s) URL")
    if jwks is not None:
        try:
            PyJWKSet.from_dict(jwks)
        except Exception:  # PyJWT raises many kinds for malformed keys
            raise ValueError('jwks: not a JWKS with a usable key ({"keys": [...]})') from None


@dataclass(frozen=True)
class Identity:
    """A verified JWT: the user it names and the token itself (bound into device proofs)."""

    user_id: str
    token: str = field(repr=False)
    issued_at: int

    @property
    def audit_reference(self) -> str:
        """What the audit log keeps of the token: a digest, never the bearer credential."""
        return "jwt-sha256:" + hashlib.sha256(self.token.encode()).hexdigest()


class JwtVerifier:
    def __init__(self, settings: TokenPolicy) -> None:
        self._settings = settings
        self._keys = PyJWKSet.from_dict(settings.jwks).keys if settings.jwks else None
        self._client = PyJWKClient(settings.jwks_url) if settings.jwks_url else None

    def _key_for(self, header: dict[str, Any]) -> PyJWK:
        kid = header.get("kid")
        if self._client is not None:
            try:
                return (
                    self._client.get_signing_key(kid) if kid else self._client.get_signing_keys()[0]
                )
            except jwt.PyJWKClientError:
                raise unauthorized("invalid_token", "no JWKS key matches the token") from None
        assert self._keys is not None
        matches = [k for k in self._keys if kid is None or k.key_id == kid]
        if not matches:
            raise unauthorized("invalid_token", "no JWKS key matches the token")
        return matches[0]

    def verify(self, token: str, *, fresh: bool) -> Identity:
        settings = self._settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise unauthorized("invalid_token", "the bearer token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in settings.algorithms:
            raise unauthorized("invalid_token", "the token's algorithm is not accepted")
        key = self._key_for(header)
        if key.algorithm_name != algorithm:
            # The token names its algorithm; the key must be of that kind (an RS256
            # header must not get an Ed25519 key, nor an HS256 one a public key).
            raise unauthorized("invalid_token", "the token's algorithm does not fit its key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=settings.audience,
                issuer=settings.issuer,
                # exp, iat and nbf are checked below against the service's own clock.
                options={
                    "require": ["sub", "exp", "iat", "iss", "aud"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidAudienceError:
            raise unauthorized("wrong_audience", "the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise unauthorized("wrong_issuer", "the token is from another issuer") from None
        except (jwt.InvalidTokenError, TypeError, ValueError):
            raise unauthorized("invalid_token", "the token did not verify") from None
        now = settings.clock()
        exp, iat, sub = claims["exp"], claims["iat"], claims["sub"]
        if not all(isinstance(t, int | float) and math.isfinite(t) for t in (exp, iat)):
            raise unauthorized("invalid_token", "exp and iat must be finite numbers")
        if not isinstance(sub, str) or not USER_ID.fullmatch(sub):
            raise unauthorized("invalid_token", "sub is not a valid user id")
        if now >= exp:
            raise unauthorized("token_expired", "the token has expired")
        if iat > now + settings.clock_skew_seconds:
            raise unauthorized("invalid_token", "the token was issued in the future")
        if fresh and now - iat > settings.fresh_token_seconds:
            raise unauthorized(
                "token_stale",
                f"this call needs a token issued in the last {settings.fresh_token_seconds} s",
            )
        return Identity(sub, token, int(iat))


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise unauthorized("missing_token", "this call needs an Authorization: Bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("missing_token", "this call needs an Authorization: Bearer token")
    return token.strip()
