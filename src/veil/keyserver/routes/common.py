"""Checks shared by the resources."""

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from veil.crypto import schnorr
from veil.crypto.errors import InvalidSignature
from veil.crypto.keys import AugmentationSecret, PublicKey
from veil.crypto.pre import EncryptedValue, TransformKey, VerifiedTransformKey
from veil.crypto.signing import VerifyingKey
from veil.keyserver import audit
from veil.keyserver.auth import CallingDevice
from veil.keyserver.models import Device, DeviceSigningKey, Group, GroupAdmin, GroupMember, User
from veil.keyserver.schemas import Author
from veil.keyserver.service import KeyService
from veil.web.errors import ErrorBody, bad_request, forbidden, not_found, unprocessable

TRANSFORMER_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "a transform worker failed; retry"}
}
"""For the routes that transform (``TransformerUnavailable`` answers 503)."""


def verified_transform_key(raw: bytes) -> VerifiedTransformKey:
    """Strictly decoded and signature-checked (DecodeError -> 422, bad signature -> 400)."""
    return TransformKey.from_bytes(raw).verify()


def stored_ciphertext(raw: bytes, *, signed_by: VerifyingKey | None = None) -> None:
    """A ciphertext the service will keep (a grant, an admin's group key): strictly
    decoded, signed, and at level 0, so later transforms have room to move it. With
    ``signed_by`` (the calling device's key), signed by that key: the service then
    names the caller's device as its author (``author_of``) truthfully."""
    value = EncryptedValue.from_bytes(raw)
    if signed_by is not None and value.signer != signed_by:
        raise unprocessable("foreign_ciphertext", "the ciphertext must be signed by the caller")
    if value.verify().level != 0:
        raise unprocessable("invalid_ciphertext", "a stored ciphertext must be at level 0")


def author_of(session: Session, raw: bytes) -> Author | None:
    """The device that signed a stored ciphertext, with the keys and certificate it had
    when it did (``None`` if no certified key of that name is on record). Clients check
    the ciphertext against it rather than against the key the ciphertext names."""
    signer = bytes(EncryptedValue.from_bytes(raw).signer)
    row = session.execute(
        select(DeviceSigningKey, Device.user_id, Device.status)
        .join(Device, Device.id == DeviceSigningKey.device_id)
        .where(DeviceSigningKey.signing_key == signer)
    ).first()
    if row is None:
        return None
    key, user_id, status = row
    return Author(
        device_id=key.device_id,
        user_id=user_id,
        public_key=key.public_key,
        signing_key=key.signing_key,
        certificate=key.certificate,
        status="active" if status == "active" else "revoked",
    )


def check_proof(
    service: KeyService,
    proof: bytes,
    message: bytes,
    public_key: PublicKey,
    *,
    timestamp: int,
    augmentation: AugmentationSecret | None = None,
) -> None:
    if abs(service.now() - timestamp) > service.settings.fresh_token_seconds:
        raise bad_request("stale_proof", "the proof's timestamp is too far from now")
    signature = schnorr.SchnorrSignature.from_bytes(proof)
    try:
        schnorr.verify(signature, message, public_key, augmentation=augmentation)
    except InvalidSignature:
        raise forbidden("invalid_proof", "the proof of key possession did not verify") from None


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise not_found(f"no user {user_id!r}")
    return user


def get_group(session: Session, group_id: str) -> Group:
    group = session.get(Group, group_id)
    if group is None:
        raise not_found(f"no group {group_id!r}")
    return group


def require_admin(session: Session, group_id: str, user_id: str) -> None:
    if session.get(GroupAdmin, (group_id, user_id)) is None:
        raise forbidden("not_admin", "only the group's admins may do this")


def device_transform_key(caller: CallingDevice) -> bytes:
    """The calling device's user -> device key, as this request's transaction read it
    when it authenticated the device (an active device has one)."""
    if caller.transform_key is None:
        raise forbidden("device_revoked", "this device has been revoked")
    return caller.transform_key


def member_transform_key(session: Session, group_id: str, user_id: str) -> bytes:
    """404 for an unknown group, 403 for a group the user is not a member of."""
    values = {"group_id": group_id, "user_id": user_id}
    key: bytes | None = session.connection().execute(_MEMBER_KEY, values).scalar()
    if key is None:
        get_group(session, group_id)
        raise forbidden("not_member", "the caller is not a member of this group")
    return key


def member_transform_keys(
    session: Session, wanted: set[tuple[str, str]]
) -> dict[tuple[str, str], bytes]:
    """The transform keys of the ``(group id, user id)`` members among ``wanted``, in
    one statement (a pair that is not a member is left out)."""
    if not wanted:
        return {}
    groups, users = sorted({g for g, _ in wanted}), sorted({u for _, u in wanted})
    rows = session.connection().execute(_MEMBER_KEYS, {"groups": groups, "users": users})
    found = {(row.group_id, row.user_id): row.transform_key for row in rows}
    return {pair: key for pair, key in found.items() if pair in wanted}


_MEMBER_KEYS = select(GroupMember.group_id, GroupMember.user_id, GroupMember.transform_key).where(
    GroupMember.group_id.in_(bindparam("groups", expanding=True)),
    GroupMember.user_id.in_(bindparam("users", expanding=True)),
)

_MEMBER_KEY = select(GroupMember.transform_key).where(
    GroupMember.group_id == bindparam("group_id"), GroupMember.user_id == bindparam("user_id")
)
"""Through Core: every group transform reads it."""


def record(
    service: KeyService, session: Session, caller: CallingDevice, action: str, subject: str
) -> None:
    audit.append_all(session, [audit_entry(service, caller, action, subject)])


def audit_entry(
    service: KeyService, caller: CallingDevice, action: str, subject: str
) -> dict[str, object]:
    """What the audit log records of ``caller``'s ``action`` on ``subject``."""
    return {
        "at": service.now(),
        "action": action,
        "user_id": caller.user_id,
        "device_id": caller.device_id,
        "subject": subject,
        "request_signature": caller.signature,
    }
