"""JWT identity assertions from the platform's IdP: signature (EdDSA, ES256, RS256)
against the IdP's JWKS (``veil.web.jwks``: given, fetched from a URL, or found by OIDC
discovery from the issuer URL), issuer, audience, ``exp``, ``nbf``, ``iat`` (and, for
calls that create keys, an ``iat`` no older than ``fresh_token_seconds``), and the
claim that names the user, mapped to a Veil user id (``veil.protocol.ids``). Shared by
Veil's services.

Refusals name the expected and the received issuer or audience, never the token.
"""

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt

from veil.protocol.ids import user_id_for
from veil.web.errors import unauthorized
from veil.web.jwks import JwksCachePolicy, RemoteKeys, StaticKeys, usable_keys
from veil.web.oidc import check_http_url, shown


class TokenPolicy(Protocol):
    """The settings a service verifies tokens with (both services' settings have them)."""

    @property
    def issuer(self) -> str | None: ...
    @property
    def issuer_url(self) -> str | None: ...
    @property
    def audience(self) -> str: ...
    @property
    def jwks(self) -> dict[str, Any] | None: ...
    @property
    def jwks_url(self) -> str | None: ...
    @property
    def jwks_cache(self) -> JwksCachePolicy: ...
    @property
    def user_id_claim(self) -> str: ...
    @property
    def algorithms(self) -> tuple[str, ...]: ...
    @property
    def clock_skew_seconds(self) -> int: ...
    @property
    def fresh_token_seconds(self) -> int: ...
    @property
    def clock(self) -> Callable[[], float]: ...


def check_token_policy(settings: TokenPolicy) -> None:
    """Refuse at start what would otherwise fail every request: exactly one source of
    keys (a JWKS document with a usable key, a JWKS URL, or an issuer URL to discover
    it from), and an issuer to expect unless discovery names it."""
    sources = (settings.issuer_url, settings.jwks_url, settings.jwks)
    if sum(source is not None for source in sources) != 1:
        raise ValueError(
            "configure exactly one of issuer_url (OIDC discovery), jwks_url or jwks "
            "(a JWKS document)"
        )
    if settings.issuer_url is not None:
        check_http_url(settings.issuer_url, "issuer_url")
        if settings.issuer is not None:
            raise ValueError(
                "issuer (VEIL_JWT_ISSUER): leave it unset with issuer_url "
                "(VEIL_JWT_ISSUER_URL), whose discovery document names the issuer"
            )
    elif not settings.issuer:
        raise ValueError("issuer: name the issuer (iss) of your IdP's tokens, or give issuer_url")
    if settings.jwks_url is not None:
        check_http_url(settings.jwks_url, "jwks_url")
    if settings.jwks is not None:
        try:
            usable_keys(settings.jwks)
        except ValueError as error:
            raise ValueError(f"jwks: not a JWKS with a usable key ({error})") from None
    if not settings.user_id_claim or len(settings.user_id_claim) > 256:
        raise ValueError("user_id_claim must name a claim (1 to 256 characters)")


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
    """Verifies bearer tokens for one service. ``verify`` is a coroutine: fetching the
    IdP's keys never blocks the event loop (``veil.web.jwks``)."""

    def __init__(self, settings: TokenPolicy) -> None:
        self._settings = settings
        self._keys: StaticKeys | RemoteKeys = (
            StaticKeys(settings.jwks)
            if settings.jwks is not None
            else RemoteKeys(
                jwks_url=settings.jwks_url,
                issuer_url=settings.issuer_url,
                policy=settings.jwks_cache,
                clock=settings.clock,
            )
        )

    async def verify(self, token: str, *, fresh: bool) -> Identity:
        """The token's identity, or an ``ApiError``: 401 with a code saying why
        (``invalid_token``, ``wrong_issuer``, ``wrong_audience``, ``token_expired``,
        ``token_not_yet_valid``, ``token_stale``), 503 ``jwks_unavailable``."""
        settings = self._settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise unauthorized("invalid_token", "the bearer token is not a JWT") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in settings.algorithms:
            raise unauthorized(
                "invalid_token",
                f"the token's algorithm {shown(algorithm, 20)} is not accepted "
                f"({', '.join(settings.algorithms)})",
            )
        if kid is not None and not isinstance(kid, str):
            raise unauthorized("invalid_token", "the token's kid is not a string")
        key = await self._keys.find(kid, algorithm)
        if key.algorithm_name != algorithm:
            # The token names its algorithm; the key must be of that kind (an RS256
            # header must not get an Ed25519 key, nor an HS256 one a public key).
            raise unauthorized("invalid_token", "the token's algorithm does not fit its key")
        claim = settings.user_id_claim
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                # Issuer, audience and times are checked below, with errors that say
                # what was expected and what came.
                options={
                    "require": [claim, "exp", "iat", "iss", "aud"],
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_sub": False,  # checked below, as any user-id claim is
                    "verify_jti": False,  # not used
                },
            )
        except jwt.MissingRequiredClaimError as error:
            raise unauthorized("invalid_token", f"the token has no {error.claim!r} claim") from None
        except (jwt.InvalidTokenError, TypeError, ValueError):
            raise unauthorized("invalid_token", "the token did not verify") from None
        _check_issuer(claims["iss"], self._keys.issuer or settings.issuer)
        _check_audience(claims["aud"], settings.audience)
        issued_at = _check_times(claims, settings, fresh=fresh)
        return Identity(_user_id(claims[claim], claim), token, issued_at)


def _check_issuer(issuer: Any, expected: str | None) -> None:
    if issuer != expected:
        raise unauthorized(
            "wrong_issuer",
            f"token issuer {shown(issuer)} is not this service's ({shown(expected)})",
        )


def _check_audience(audience: Any, expected: str) -> None:
    """One audience, this service's: a token for several services could be replayed by
    one of them at another (each holds one share of a user's escrow password)."""
    if isinstance(audience, list):
        if len(audience) != 1:
            raise unauthorized(
                "wrong_audience",
                f"token audience {shown(audience)} names {len(audience)} audiences; this "
                f"service takes only tokens for itself alone ({expected!r})",
            )
        audience = audience[0]
    if audience != expected:
        raise unauthorized(
            "wrong_audience",
            f"token audience {shown(audience)} is not this service's ({expected!r})",
        )


def _check_times(claims: dict[str, Any], settings: TokenPolicy, *, fresh: bool) -> int:
    """``exp`` (no leeway: a token ends when it says), ``nbf`` and ``iat`` (each up to
    ``clock_skew_seconds`` ahead of this service's clock, which may lag the IdP's), and
    for ``fresh`` calls an ``iat`` at most ``fresh_token_seconds`` old. Returns ``iat``."""
    now, skew = settings.clock(), settings.clock_skew_seconds
    times = {name: claims[name] for name in ("exp", "iat", "nbf") if name in claims}
    for name, value in times.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise unauthorized("invalid_token", f"{name} must be a number")
        if not math.isfinite(value):
            raise unauthorized("invalid_token", f"{name} must be a finite number")
    if now >= times["exp"]:
        raise unauthorized("token_expired", "the token has expired")
    if "nbf" in times and times["nbf"] > now + skew:
        raise unauthorized(
            "token_not_yet_valid",
            f"the token is not valid for another {math.ceil(times['nbf'] - now)} s (nbf; "
            f"{skew} s of clock skew allowed)",
        )
    if times["iat"] > now + skew:
        raise unauthorized("invalid_token", "the token was issued in the future")
    if fresh and now - times["iat"] > settings.fresh_token_seconds:
        raise unauthorized(
            "token_stale",
            f"this call needs a token issued in the last {settings.fresh_token_seconds} s",
        )
    return int(times["iat"])


def _user_id(value: Any, claim: str) -> str:
    if not isinstance(value, str) or not value:
        raise unauthorized(
            "invalid_token", f"the token's {claim!r} claim is not a non-empty string"
        )
    try:
        return user_id_for(value)
    except ValueError as error:
        raise unauthorized("invalid_token", f"the token's {claim!r} claim: {error}") from None


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise unauthorized("missing_token", "this call needs an Authorization: Bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("missing_token", "this call needs an Authorization: Bearer token")
    return token.strip()
