"""Who is calling: device-signed requests (JWTs are checked by ``veil.web.tokens``).

Signed requests are checked as ``veil.protocol`` describes; nonces are stored so a
replay fails on any replica.
"""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, bindparam, delete, select, text
from sqlalchemy.orm import Session

from veil.crypto.errors import InvalidSignature
from veil.crypto.signing import VerifyingKey
from veil.keyserver.models import Device, RequestNonce
from veil.keyserver.settings import KeyServerSettings
from veil.protocol import NONCE_SIZE, b64decode, request_message
from veil.web.errors import ApiError, forbidden, unauthorized


@dataclass(frozen=True)
class CallingDevice:
    """A verified signed request."""

    device_id: str
    user_id: str
    signature: str
    signing_key: VerifyingKey = field(repr=False)
    """The device's key that verified this request."""
    transform_key: bytes | None = field(default=None, repr=False)
    """The device's user -> device key as this request's transaction read it."""


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
    if len(raw_nonce) != NONCE_SIZE or len(device_id) > 64 or "\n" in device_id:
        raise unauthorized("bad_signature", "malformed request signature headers")
    if abs(int(settings.clock()) - when) > settings.clock_skew_seconds:
        raise unauthorized(
            "stale_request", f"request timestamp is more than {settings.clock_skew_seconds} s off"
        )
    message = request_message(method, path, query, body, when, nonce, device_id=device_id)
    return SignedCall(device_id, raw_signature, signature, nonce, message)


_PURGE_EVERY = 256


_SPEND_NONCE = text(
    "INSERT INTO request_nonces (device_id, nonce, seen_at) VALUES (:device_id, :nonce, :now)"
    " ON CONFLICT (device_id, nonce) DO NOTHING RETURNING nonce"
)
"""Plain SQL that SQLite (3.35+) and PostgreSQL both run. SQLAlchemy does not cache the
compiled form of its dialect-specific ``insert().on_conflict_do_nothing()``: compiling
it cost about 0.35 ms on every signed request."""


def _spend_nonce(session: Session, device_id: str, nonce: str, now: int) -> bool:
    """Record the nonce; False if it was already recorded (on any replica)."""
    values = {"device_id": device_id, "nonce": nonce, "now": now}
    return session.connection().execute(_SPEND_NONCE, values).first() is not None


def spend_refused(session: Session, settings: KeyServerSettings, call: SignedCall) -> None:
    """Record the nonce of an authenticated request whose transaction then failed (a
    refusal rolls back the nonce with everything else): spent, it cannot be replayed
    once the reason for the refusal has gone away."""
    _spend_nonce(session, call.device_id, call.nonce, int(settings.clock()))


_DEVICE = select(Device.user_id, Device.status, Device.signing_key, Device.transform_key).where(
    Device.id == bindparam("device_id")
)
"""Columns through Core, not an ORM entity: every signed request runs this, and the
ORM's identity map and attribute tracking cost about 0.2 ms here."""


def authenticate(session: Session, settings: KeyServerSettings, call: SignedCall) -> CallingDevice:
    """Verify the signature against the device on record and spend the nonce, inside the
    request's own transaction (so a replay fails on any replica; ``KeyService.signed``
    spends it again if that transaction fails)."""
    device = session.connection().execute(_DEVICE, {"device_id": call.device_id}).first()
    caller = _verified(device, call)
    now = int(settings.clock())
    if not _spend_nonce(session, call.device_id, call.nonce, now):
        raise replayed()
    _purge_nonces(session, settings, now, 1)
    return caller


def _verified(
    device: Row[Any] | None, call: SignedCall, known: VerifyingKey | None = None
) -> CallingDevice:
    """The caller, if ``device`` (its row) is active and signed ``call``; ``known``: a
    key that ``call``'s signature has already been verified against."""
    if device is None:
        raise unauthorized("unknown_device", "no such device")
    if device.status != "active":
        raise forbidden("device_revoked", "this device has been revoked")
    signing_key = VerifyingKey(device.signing_key)
    if known is None or known != signing_key:
        try:
            signing_key.verify(call.signature, call.message)
        except InvalidSignature:
            raise unauthorized("bad_signature", "the request signature did not verify") from None
    return CallingDevice(
        call.device_id, device.user_id, call.signature_text, signing_key, device.transform_key
    )


def _purge_nonces(session: Session, settings: KeyServerSettings, now: int, requests: int) -> None:
    """Now and then (about once per ``_PURGE_EVERY`` requests): old nonces are dead
    weight past the clock-skew window."""
    if secrets.randbelow(_PURGE_EVERY) < requests:
        session.execute(
            delete(RequestNonce).where(RequestNonce.seen_at < now - 2 * settings.clock_skew_seconds)
        )


def replayed() -> ApiError:
    return unauthorized("replayed_request", "this request was already seen")


_DEVICES = select(
    Device.id, Device.user_id, Device.status, Device.signing_key, Device.transform_key
).where(Device.id.in_(bindparam("device_ids", expanding=True)))


def verify_all(
    session: Session, calls: Sequence[SignedCall], known: Sequence[VerifyingKey | None]
) -> list[CallingDevice | ApiError]:
    """``authenticate``'s checks for many calls at once, but the nonces (``spend_all``):
    each call's caller, or the error it is refused with. ``known[i]``: a key that
    ``calls[i]``'s signature has already been verified against, or None."""
    ids = sorted({call.device_id for call in calls})
    rows = session.connection().execute(_DEVICES, {"device_ids": ids})
    devices = {row.id: row for row in rows}
    results: list[CallingDevice | ApiError] = []
    for call, key in zip(calls, known, strict=True):
        try:
            results.append(_verified(devices.get(call.device_id), call, key))
        except ApiError as refusal:
            results.append(refusal)
    return results


def spend_all(
    session: Session, settings: KeyServerSettings, calls: Sequence[SignedCall]
) -> list[bool]:
    """Record the nonces of many verified calls in one statement: for each, False if
    its nonce was already spent (on any replica, or by an earlier call of these)."""
    if not calls:
        return []
    now = int(settings.clock())
    first: dict[tuple[str, str], int] = {}
    for index, call in enumerate(calls):
        first.setdefault((call.device_id, call.nonce), index)
    # In one order on every replica: a group waits for another's uncommitted nonce
    # while holding those it inserted before it, so two groups that share nonces (a
    # device's owner may send the same requests to two replicas, in either order)
    # would otherwise deadlock, and PostgreSQL would fail all of one group's requests.
    pairs = sorted(first)
    values = ", ".join(f"(:d{i}, :n{i}, :now)" for i in range(len(pairs)))
    params: dict[str, object] = {"now": now}
    for i, (device_id, nonce) in enumerate(pairs):
        params[f"d{i}"], params[f"n{i}"] = device_id, nonce
    statement = text(
        f"INSERT INTO request_nonces (device_id, nonce, seen_at) VALUES {values}"  # noqa: S608 (placeholders only)
        " ON CONFLICT (device_id, nonce) DO NOTHING RETURNING device_id, nonce"
    )
    spent = {(row.device_id, row.nonce) for row in session.connection().execute(statement, params)}
    _purge_nonces(session, settings, now, len(calls))
    return [
        first[(call.device_id, call.nonce)] == index and (call.device_id, call.nonce) in spent
        for index, call in enumerate(calls)
    ]
