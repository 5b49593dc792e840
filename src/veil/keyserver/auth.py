"""Who is calling: JWT identity assertions and device-signed requests.

JWTs come from the platform's IdP and are checked against its JWKS (EdDSA, ES256,
RS256): signature, issuer, audience, ``sub``, ``exp``, and, for calls that create
keys, an ``iat`` no older than ``fresh_token_seconds``. Signed requests are checked
as ``veil.protocol`` describes; nonces are stored so a replay fails on any replica.
"""

import hashlib
import math
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from veil.crypto.errors import InvalidSignature
from veil.crypto.signing import VerifyingKey
from veil.keyserver.errors import forbidden, unauthorized
from veil.keyserver.models import Device, RequestNonce
from veil.keyserver.settings import KeyServerSettings
from veil.protocol import NONCE_SIZE, b64decode, request_message

USER_ID = re.compile(r"^[A-Za-z0-9._@:-]{1,256}$")


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


@dataclass(frozen=True)
class CallingDevice:
    """A verified signed request."""

    device_id: str
    user_id: str
    signature: str


class JwtVerifier:
    def __init__(self, settings: KeyServerSettings) -> None:
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


@dataclass(frozen=True)
class SignedCall:
    """A signed request whose headers parse and whose timestamp is fresh, but whose
    signature is not checked yet: only ``authenticate`` turns it into a caller."""

    device_id: str
    signature: bytes
    signature_text: str
    nonce: str
    message: bytes


def parse_signed_request(
    settings: KeyServerSettings,
    *,
    method: str,
    path: str,
    query: str,
    body: bytes,
    headers: dict[str, str | None],
) -> SignedCall:
    """Check the signature headers' form and the clock skew (no database work)."""
    device_id, timestamp, nonce, signature = (
        headers.get(name)
        for name in ("veil-device", "veil-timestamp", "veil-nonce", "veil-signature")
    )
    if not (device_id and timestamp and nonce and signature):
        raise unauthorized("unsigned_request", "this call must be signed by a device")
    try:
        when = int(timestamp)
        raw_signature = b64decode(signature)
        raw_nonce = b64decode(nonce)
    except ValueError:
        raise unauthorized("bad_signature", "malformed request signature headers") from None
    if len(raw_nonce) != NONCE_SIZE or len(device_id) > 64:
        raise unauthorized("bad_signature", "malformed request signature headers")
    if abs(int(settings.clock()) - when) > settings.clock_skew_seconds:
        raise unauthorized(
            "stale_request", f"request timestamp is more than {settings.clock_skew_seconds} s off"
        )
    message = request_message(method, path, query, body, when, nonce)
    return SignedCall(device_id, raw_signature, signature, nonce, message)


_PURGE_EVERY = 256


def _spend_nonce(session: Session, device_id: str, nonce: str, now: int) -> bool:
    """Record the nonce; False if it was already recorded (on any replica)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(RequestNonce)
        .values(device_id=device_id, nonce=nonce, seen_at=now)
        .on_conflict_do_nothing(index_elements=["device_id", "nonce"])
        .returning(RequestNonce.nonce)
    )
    return session.execute(statement).first() is not None


def authenticate(session: Session, settings: KeyServerSettings, call: SignedCall) -> CallingDevice:
    """Verify the signature against the device on record and spend the nonce, inside the
    request's own transaction (so a replay fails on any replica)."""
    device = session.get(Device, call.device_id)
    if device is None:
        raise unauthorized("unknown_device", "no such device")
    if device.status != "active":
        raise forbidden("device_revoked", "this device has been revoked")
    try:
        VerifyingKey(device.signing_key).verify(call.signature, call.message)
    except InvalidSignature:
        raise unauthorized("bad_signature", "the request signature did not verify") from None
    now = int(settings.clock())
    if not _spend_nonce(session, call.device_id, call.nonce, now):
        raise unauthorized("replayed_request", "this request was already seen")
    if secrets.randbelow(_PURGE_EVERY) == 0:  # old nonces are dead weight past the window
        session.execute(
            delete(RequestNonce).where(RequestNonce.seen_at < now - 2 * settings.clock_skew_seconds)
        )
    return CallingDevice(call.device_id, device.user_id, call.signature_text)
