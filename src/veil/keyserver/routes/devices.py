"""Devices: add (with the user's proof of possession), list, look up, revoke, rotate keys."""

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session

from veil.crypto.errors import InvalidSignature
from veil.crypto.keys import PublicKey
from veil.crypto.signing import VerifyingKey
from veil.keyserver import audit
from veil.keyserver.deps import FreshUser, Service, Signed
from veil.keyserver.models import Device, DeviceSigningKey, User
from veil.keyserver.routes.common import check_proof, get_user, record, verified_transform_key
from veil.keyserver.schemas import (
    DeviceCreated,
    DeviceInfo,
    DeviceKeys,
    DeviceList,
    DeviceRecord,
    DeviceRecords,
    Done,
    LookupDevices,
)
from veil.keyserver.service import KeyService
from veil.protocol import (
    b64encode,
    check_device_certificate,
    device_id_for,
    device_proof_message,
)
from veil.web.errors import conflict, forbidden, not_found, unprocessable
from veil.web.schemas import PathId
from veil.web.tokens import Identity

router = APIRouter(prefix="/v1/devices", tags=["devices"])


def _checked_keys(
    service: KeyService, body: DeviceKeys, identity: Identity, user: User, device_id: str
) -> bytes:
    """Verify a device's keys, the user's proof and the user's certificate of the keys;
    return the augmented transform key."""
    device_key = PublicKey.from_bytes(body.public_key)
    VerifyingKey(body.signing_key)
    key = verified_transform_key(body.transform_key)
    if key.to_public_key != device_key:
        raise unprocessable("transform_key_mismatch", "the transform key is not for this device")
    secret = service.open_augmentation(user.id, user.sealed_augmentation)
    master = PublicKey.from_bytes(user.master_public_key)
    message = device_proof_message(
        body.timestamp,
        body.transform_key,
        identity.token,
        user.master_public_key,
        body.signing_key,
    )
    check_proof(service, body.proof, message, master, timestamp=body.timestamp, augmentation=secret)
    identity_key = PublicKey.from_bytes(user.client_public_key)
    try:
        check_device_certificate(
            body.certificate, identity_key, user.id, device_id, body.public_key, body.signing_key
        )
    except InvalidSignature:
        raise forbidden(
            "invalid_certificate", "the user's certificate of the device's keys did not verify"
        ) from None
    return bytes(key.augment(secret))


def _remember_signing_key(
    service: KeyService, session: Session, device_id: str, body: DeviceKeys
) -> None:
    """Keep the device's new signing key with its certificate, for good: what it signs
    now (a grant, an admin's group key) is checked against them after the key rotates.
    A key that names another device already is refused, so every stored ciphertext has
    one author."""
    known = session.get(DeviceSigningKey, body.signing_key)
    if known is not None and known.device_id != device_id:
        raise conflict("signing_key_taken", "this signing key belongs to another device")
    session.merge(
        DeviceSigningKey(
            signing_key=body.signing_key,
            device_id=device_id,
            public_key=body.public_key,
            certificate=body.certificate,
            created_at=service.now(),
        )
    )


@router.post("", status_code=201)
def add_device(body: DeviceKeys, identity: FreshUser, service: Service) -> DeviceCreated:
    """Add a device (JWT + Schnorr proof with the user's key over the timestamp, the
    user -> device transform key, the JWT and the user's public key)."""
    device_id = device_id_for(body.signing_key)
    taken = conflict("device_exists", "a device with this signing key is registered")
    with service.transaction(on_conflict=taken) as session:
        if session.get(Device, device_id) is not None:
            raise taken
        user = get_user(session, identity.user_id)
        augmented = _checked_keys(service, body, identity, user, device_id)
        session.add(
            Device(
                id=device_id,
                user_id=user.id,
                public_key=body.public_key,
                signing_key=body.signing_key,
                certificate=body.certificate,
                transform_key=augmented,
                status="active",
                created_at=service.now(),
            )
        )
        session.flush()  # the device first: its signing key refers to it
        _remember_signing_key(service, session, device_id, body)
        audit.append(
            session,
            at=service.now(),
            action="device.add",
            user_id=user.id,
            device_id=device_id,
            subject=device_id,
            request_signature=f"{identity.audit_reference} schnorr:{b64encode(body.proof)}",
        )
    return DeviceCreated(device_id=device_id)


@router.get("")
def list_devices(call: Signed, service: Service) -> DeviceList:
    with service.signed(call) as (session, caller):
        rows = session.execute(
            select(Device).where(Device.user_id == caller.user_id).order_by(Device.created_at)
        ).scalars()
        return DeviceList(
            devices=[
                DeviceInfo(
                    device_id=d.id,
                    public_key=d.public_key,
                    signing_key=d.signing_key,
                    certificate=d.certificate,
                    status="active" if d.status == "active" else "revoked",
                    created_at=d.created_at,
                    revoked_at=d.revoked_at,
                )
                for d in rows
            ]
        )


@router.post("/lookup")
def lookup_device_records(body: LookupDevices, service: Service) -> DeviceRecords:
    """The public records of many devices at once (unknown ids are left out): the
    conference service checks every open connection's device with one request per
    500 devices instead of one each. Public, as each record is."""
    with service.transaction() as session:
        rows = session.scalars(select(Device).where(Device.id.in_(set(body.device_ids))))
        return DeviceRecords(devices=[_record(device) for device in rows])


@router.get("/{device_id}")
def device_record(device_id: PathId, service: Service) -> DeviceRecord:
    """A device's public record: whose it is, its public keys, whether it is active.
    Public like a public key: the conference service and other clients check the
    signatures of board posts with it."""
    with service.transaction() as session:
        device = session.get(Device, device_id)
        if device is None:
            raise not_found("no such device")
        return _record(device)


def _record(device: Device) -> DeviceRecord:
    return DeviceRecord(
        device_id=device.id,
        user_id=device.user_id,
        public_key=device.public_key,
        signing_key=device.signing_key,
        certificate=device.certificate,
        status="active" if device.status == "active" else "revoked",
    )


@router.delete("/{device_id}")
def revoke_device(device_id: PathId, call: Signed, service: Service) -> Done:
    """Revoke one of the caller's devices: its transform key is deleted at once."""
    with service.signed(call) as (session, caller):
        device = session.get(Device, device_id)
        if device is None or device.user_id != caller.user_id:
            raise not_found("no such device for this user")
        revoked = device.transform_key
        device.status, device.transform_key = "revoked", None
        device.revoked_at = device.revoked_at or service.now()
        record(service, session, caller, "device.revoke", device_id)
    if revoked is not None:
        service.prepared.forget_key(revoked)
    return Done()


@router.put("/{device_id}/keys")
def rotate_device_keys(
    device_id: PathId, body: DeviceKeys, call: Signed, identity: FreshUser, service: Service
) -> Done:
    """Replace the calling device's keys (forward secrecy after a meeting). Its earlier
    signing keys stay on record, certified, for what they signed."""
    taken = conflict("signing_key_taken", "this signing key belongs to another device")
    with service.signed(call, on_conflict=taken) as (session, caller):
        if device_id != caller.device_id or identity.user_id != caller.user_id:
            raise forbidden("forbidden", "a device rotates only its own keys")
        user = get_user(session, caller.user_id)
        device = session.get(Device, device_id)
        if device is None or device.status != "active":
            raise forbidden("device_revoked", "this device has been revoked")
        replaced = device.transform_key
        device.transform_key = _checked_keys(service, body, identity, user, device_id)
        device.public_key, device.signing_key = body.public_key, body.signing_key
        device.certificate = body.certificate
        _remember_signing_key(service, session, device_id, body)
        record(service, session, caller, "device.rotate", device_id)
    if replaced is not None:
        service.prepared.forget_key(replaced)
    return Done()
