"""Users, their escrowed keys, and the key service's split-trust share."""

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from veil.crypto import escrow
from veil.crypto.errors import DecodeError
from veil.crypto.keys import AugmentationSecret, PublicKey
from veil.keyserver import audit
from veil.keyserver.deps import FreshUser, Service, Signed, User
from veil.keyserver.models import EscrowShare
from veil.keyserver.models import User as UserRow
from veil.keyserver.schemas import (
    CreateUser,
    Escrow,
    LookupKeys,
    PublicKeys,
    ServiceInfo,
    UserCreated,
)
from veil.web.errors import conflict, not_found, unprocessable
from veil.web.schemas import Share

router = APIRouter(prefix="/v1", tags=["users"])


@router.post("/users", status_code=201)
def create_user(body: CreateUser, identity: FreshUser, service: Service) -> UserCreated:
    """Register the caller (JWT): client public key and escrowed private key. The
    service draws the user's augmentation secret and returns the master public key."""
    client_key = PublicKey.from_bytes(body.public_key)
    try:
        escrow.check_escrow(body.escrow)
    except DecodeError as exc:
        raise unprocessable("invalid_escrow", str(exc)) from None
    secret = AugmentationSecret.generate()
    master = client_key.augment(secret)
    exists = conflict("user_exists", "this user already has keys")
    with service.transaction(on_conflict=exists) as session:
        if session.get(UserRow, identity.user_id) is not None:
            raise exists
        session.add(
            UserRow(
                id=identity.user_id,
                client_public_key=bytes(client_key),
                master_public_key=bytes(master),
                sealed_augmentation=service.seal_augmentation(identity.user_id, secret),
                escrow=body.escrow,
                created_at=service.now(),
            )
        )
        audit.append(
            session,
            at=service.now(),
            action="user.create",
            user_id=identity.user_id,
            device_id="",
            subject=identity.user_id,
            request_signature=identity.audit_reference,
        )
    return UserCreated(user_id=identity.user_id, master_public_key=bytes(master))


@router.get("/users/me/escrow")
def get_escrow(identity: User, service: Service) -> Escrow:
    """The caller's escrowed (encrypted) user private key, with the master public key a
    new device needs to register."""
    with service.transaction() as session:
        user = session.get(UserRow, identity.user_id)
        if user is None:
            raise not_found("this user has no keys yet")
        return Escrow(user_id=user.id, master_public_key=user.master_public_key, escrow=user.escrow)


@router.post("/users/me/share")
def get_share(identity: User, service: Service) -> Share:
    """The key service's 128-bit share of the caller's escrow password (made on first call)."""
    created = EscrowShare(
        user_id=identity.user_id, share=escrow.new_share(), created_at=service.now()
    )
    try:
        with service.transaction() as session:
            if session.get(EscrowShare, identity.user_id) is None:
                session.add(created)
                return Share(share=created.share)
    except IntegrityError:
        pass  # a concurrent first call stored its share first: that one is the share
    with service.transaction() as session:
        row = session.get(EscrowShare, identity.user_id)
        if row is None:
            raise conflict("conflict", "the share could not be stored; retry")
        return Share(share=row.share)


@router.post("/public-keys")
def lookup_public_keys(body: LookupKeys, call: Signed, service: Service) -> PublicKeys:
    """Master and identity (client) public keys of many users at once (clients pin
    both). Unknown ids are omitted."""
    with service.signed(call) as (session, _):
        rows = session.execute(
            select(UserRow.id, UserRow.master_public_key, UserRow.client_public_key).where(
                UserRow.id.in_(set(body.user_ids))
            )
        ).all()
    return PublicKeys(
        public_keys={user_id: master for user_id, master, _ in rows},
        identity_keys={user_id: identity for user_id, _, identity in rows},
    )


@router.get("/service")
def service_info(service: Service) -> ServiceInfo:
    """Public facts about this key service: the key its transforms are signed with."""
    return ServiceInfo(transform_signer=bytes(service.signer.verifying_key))
