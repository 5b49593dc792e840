"""Groups: create, read, list, delete; members and admins; the group key for admins."""

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from veil.crypto.errors import AuthenticationError, DecodeError
from veil.crypto.keys import PublicKey
from veil.crypto.pre import VerifiedTransformKey
from veil.keyserver.auth import CallingDevice, SignedCall
from veil.keyserver.deps import Service, Signed
from veil.keyserver.models import DocumentGrant, Group, GroupAdmin, GroupMember, User
from veil.keyserver.routes.common import (
    TRANSFORMER_UNAVAILABLE,
    author_of,
    check_proof,
    device_transform_key,
    get_group,
    get_user,
    record,
    require_admin,
    stored_ciphertext,
    verified_transform_key,
)
from veil.keyserver.schemas import (
    AddAdmin,
    AddMember,
    AddMembers,
    Author,
    CreateGroup,
    Done,
    GroupDigest,
    GroupInfo,
    GroupKey,
    GroupList,
    GroupPublicKey,
    Membership,
)
from veil.keyserver.service import KeyService
from veil.protocol import b64decode, group_proof_message
from veil.protocol.board import member_digest
from veil.web.errors import ApiError, bad_request, conflict, forbidden, not_found, unprocessable
from veil.web.schemas import PathId, Timestamp

router = APIRouter(prefix="/v1/groups", tags=["groups"])


@router.post("", status_code=201)
def create_group(body: CreateGroup, call: Signed, service: Service) -> Done:
    """Create a group; the caller becomes its admin, holding the group key encrypted to them."""
    taken = conflict("group_exists", "a group with this id exists")
    with service.signed(call, on_conflict=taken) as (session, caller):
        public_key = PublicKey.from_bytes(body.public_key)
        stored_ciphertext(body.encrypted_key)
        message = group_proof_message(
            "create", body.group_id, caller.user_id, body.timestamp, body.public_key
        )
        check_proof(service, body.proof, message, public_key, timestamp=body.timestamp)
        if session.get(Group, body.group_id) is not None:
            raise taken
        session.add(
            Group(
                id=body.group_id,
                public_key=body.public_key,
                created_by=caller.user_id,
                created_at=service.now(),
            )
        )
        session.flush()
        session.add(
            GroupAdmin(
                group_id=body.group_id,
                user_id=caller.user_id,
                encrypted_key=body.encrypted_key,
                key_envelope=body.key_envelope,
            )
        )
        record(service, session, caller, "group.create", body.group_id)
    return Done()


@router.get("")
def list_groups(call: Signed, service: Service) -> GroupList:
    with service.signed(call) as (session, caller):
        admin_of = select(GroupAdmin.group_id).where(GroupAdmin.user_id == caller.user_id)
        member_of = select(GroupMember.group_id).where(GroupMember.user_id == caller.user_id)
        ids = session.execute(admin_of.union(member_of)).scalars().all()
    return GroupList(groups=sorted(ids))


@router.get("/{group_id}")
def read_group(group_id: PathId, call: Signed, service: Service) -> GroupInfo:
    with service.signed(call) as (session, caller):
        group = get_group(session, group_id)
        admins, members = _admins_and_members(session, group_id, caller.user_id)
        return GroupInfo(
            group_id=group.id, public_key=group.public_key, admins=admins, members=members
        )


@router.get("/{group_id}/digest")
def group_digest(group_id: PathId, call: Signed, service: Service) -> GroupDigest:
    """The member list's digest (docs/protocol.md §3.4), the member count and the
    admins: a member or admin checks whether the list it holds is the group's without
    reading every member."""
    with service.signed(call) as (session, caller):
        get_group(session, group_id)
        admins, members = _admins_and_members(session, group_id, caller.user_id)
        return GroupDigest(
            group_id=group_id,
            members_digest=member_digest(members),
            member_count=len(members),
            admins=admins,
        )


def _admins_and_members(
    session: Session, group_id: str, caller: str
) -> tuple[list[str], list[str]]:
    """The group's admins and members, sorted, for one of them (else 403)."""
    admins = (
        session.execute(select(GroupAdmin.user_id).where(GroupAdmin.group_id == group_id))
        .scalars()
        .all()
    )
    members = (
        session.execute(select(GroupMember.user_id).where(GroupMember.group_id == group_id))
        .scalars()
        .all()
    )
    if caller not in admins and caller not in members:
        raise forbidden("not_member", "the caller is not in this group")
    return sorted(admins), sorted(members)


@router.get("/{group_id}/membership")
def membership(group_id: PathId, call: Signed, service: Service) -> Membership:
    """Whether the calling device's user is in the group (a member or an admin: 403
    ``not_member`` if not). A device signs this request for the conference service,
    which forwards it unchanged to admit the device to a meeting's media relay: the
    signature covers this path and the nonce is spent here, so the conference service
    can neither forge such a proof nor replay it."""
    with service.signed(call) as (session, caller):
        get_group(session, group_id)
        if (
            session.get(GroupMember, (group_id, caller.user_id)) is None
            and session.get(GroupAdmin, (group_id, caller.user_id)) is None
        ):
            raise forbidden("not_member", "the caller is not in this group")
        return Membership(group_id=group_id, user_id=caller.user_id, device_id=caller.device_id)


@router.get("/{group_id}/public-key")
def group_public_key(group_id: PathId, service: Service) -> GroupPublicKey:
    """A group's public key, public like a user's: anyone may encrypt to a group (an abuse
    report to the safety team), and anyone may check a proof made with its private key
    (the conference service checks that a meeting's end comes from its admins)."""
    with service.transaction() as session:
        group = get_group(session, group_id)
        return GroupPublicKey(group_id=group.id, public_key=group.public_key)


@router.delete("/{group_id}")
def delete_group(group_id: PathId, call: Signed, service: Service) -> Done:
    """Delete the group and, with it, every transform key it had."""
    with service.signed(call) as (session, caller):
        group = get_group(session, group_id)
        require_admin(session, group_id, caller.user_id)
        session.execute(delete(GroupMember).where(GroupMember.group_id == group_id))
        # Grants to the group go too: a later group with the same id must not inherit them.
        session.execute(
            delete(DocumentGrant).where(
                DocumentGrant.grantee_kind == "group", DocumentGrant.grantee_id == group_id
            )
        )
        session.execute(delete(GroupAdmin).where(GroupAdmin.group_id == group_id))
        session.delete(group)
        record(service, session, caller, "group.delete", group_id)
    service.prepared.forget_group(group_id)
    return Done()


@router.post("/{group_id}/members", status_code=201)
def add_member(group_id: PathId, body: AddMember, call: Signed, service: Service) -> Done:
    """Add a member: the admin's client made the group -> user transform key and proves
    possession of the group key over the change."""
    taken = conflict("already_member", "this user is already a member")
    with service.signed(call, on_conflict=taken) as (session, caller):
        key = verified_transform_key(body.transform_key)
        group = get_group(session, group_id)
        require_admin(session, group_id, caller.user_id)
        user = get_user(session, body.user_id)
        group_key = PublicKey.from_bytes(group.public_key)
        _check_new_member(service, group_id, group_key, user, body, key)
        if session.get(GroupMember, (group_id, body.user_id)) is not None:
            raise taken
        _add(service, session, caller, group_id, body)
    return Done()


@router.post("/{group_id}/members/batch", status_code=201)
def add_members(group_id: PathId, body: AddMembers, call: Signed, service: Service) -> Done:
    """Add several members (at most ``MAX_ADD_MEMBERS``) in one request and one
    transaction: each is checked as ``add_member`` checks one and audited on its own;
    if any is refused, the error names it and none is added."""
    user_ids = [member.user_id for member in body.members]
    if len(set(user_ids)) != len(user_ids):
        raise unprocessable("validation_error", "members: a user is named twice")
    taken = conflict("already_member", "a user is already a member")
    with service.signed(call, on_conflict=taken) as (session, caller):
        group = get_group(session, group_id)
        require_admin(session, group_id, caller.user_id)
        group_key = PublicKey.from_bytes(group.public_key)
        users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(user_ids)))}
        members = set(
            session.scalars(
                select(GroupMember.user_id).where(
                    GroupMember.group_id == group_id, GroupMember.user_id.in_(user_ids)
                )
            )
        )
        for index, member in enumerate(body.members):
            with _naming(index, member.user_id):
                if member.user_id in members:
                    raise conflict("already_member", "already a member")
                user = users.get(member.user_id)
                if user is None:
                    raise not_found("no such user")
                key = verified_transform_key(member.transform_key)
                _check_new_member(service, group_id, group_key, user, member, key)
            _add(service, session, caller, group_id, member)
    return Done()


@contextmanager
def _naming(index: int, user_id: str) -> Iterator[None]:
    """A refusal of one member of a batch, with its code, saying which member it is."""
    which = f"members[{index}] ({user_id!r})"
    try:
        yield
    except ApiError as error:
        raise ApiError(error.status, error.code, f"{which}: {error.message}") from None
    except DecodeError as error:
        raise unprocessable("invalid_encoding", f"{which}: {error}") from None
    except AuthenticationError:
        raise bad_request("bad_signature", f"{which}: a signature did not verify") from None


def _add(
    service: KeyService, session: Session, caller: CallingDevice, group_id: str, body: AddMember
) -> None:
    """``body``'s user as a member of the group (checked already), and its audit entry."""
    session.add(
        GroupMember(
            group_id=group_id,
            user_id=body.user_id,
            transform_key=body.transform_key,
            added_by=caller.user_id,
            created_at=service.now(),
        )
    )
    record(service, session, caller, "group.add_member", f"{group_id}/{body.user_id}")


def _check_new_member(
    service: KeyService,
    group_id: str,
    group_key: PublicKey,
    user: User,
    body: AddMember,
    key: VerifiedTransformKey,
) -> None:
    """``key`` (``body``'s) is for ``user``, and the group key's proof over it holds."""
    if key.to_public_key != PublicKey.from_bytes(user.master_public_key):
        raise unprocessable("transform_key_mismatch", "the transform key is not for this user")
    message = group_proof_message(
        "add-member", group_id, body.user_id, body.timestamp, body.transform_key
    )
    check_proof(service, body.proof, message, group_key, timestamp=body.timestamp)


@router.delete("/{group_id}/members/{user_id}")
def remove_member(
    group_id: PathId,
    user_id: PathId,
    timestamp: Timestamp,
    proof: str,
    call: Signed,
    service: Service,
) -> Done:
    """Remove a member (its group -> user key is deleted); proof in the query string."""
    try:
        raw_proof = b64decode(proof)
    except ValueError:
        raise unprocessable("validation_error", "proof: not base64url") from None
    with service.signed(call) as (session, caller):
        group = get_group(session, group_id)
        require_admin(session, group_id, caller.user_id)
        message = group_proof_message("remove-member", group_id, user_id, timestamp)
        check_proof(
            service, raw_proof, message, PublicKey.from_bytes(group.public_key), timestamp=timestamp
        )
        member = session.get(GroupMember, (group_id, user_id))
        if member is None:
            raise unprocessable("not_member", "this user is not a member")
        session.delete(member)
        record(service, session, caller, "group.remove_member", f"{group_id}/{user_id}")
    service.prepared.forget_key(member.transform_key)
    return Done()


@router.post("/{group_id}/admins", status_code=201)
def add_admin(group_id: PathId, body: AddAdmin, call: Signed, service: Service) -> Done:
    taken = conflict("already_admin", "this user is already an admin")
    with service.signed(call, on_conflict=taken) as (session, caller):
        stored_ciphertext(body.encrypted_key)
        get_group(session, group_id)
        require_admin(session, group_id, caller.user_id)
        get_user(session, body.user_id)
        if session.get(GroupAdmin, (group_id, body.user_id)) is not None:
            raise taken
        session.add(
            GroupAdmin(
                group_id=group_id,
                user_id=body.user_id,
                encrypted_key=body.encrypted_key,
                key_envelope=body.key_envelope,
            )
        )
        record(service, session, caller, "group.add_admin", f"{group_id}/{body.user_id}")
    return Done()


@router.delete("/{group_id}/admins/{user_id}")
def remove_admin(group_id: PathId, user_id: PathId, call: Signed, service: Service) -> Done:
    with service.signed(call) as (session, caller):
        get_group(session, group_id)
        require_admin(session, group_id, caller.user_id)
        admin = session.get(GroupAdmin, (group_id, user_id))
        if admin is None:
            raise unprocessable("not_admin", "this user is not an admin")
        count = session.execute(
            select(func.count()).where(GroupAdmin.group_id == group_id)
        ).scalar_one()
        if count <= 1:
            raise conflict("last_admin", "a group keeps at least one admin")
        session.delete(admin)
        record(service, session, caller, "group.remove_admin", f"{group_id}/{user_id}")
    return Done()


@router.get("/{group_id}/private-key", responses=TRANSFORMER_UNAVAILABLE)
async def group_private_key(group_id: PathId, call: Signed, service: Service) -> GroupKey:
    """For an admin: the group key's ciphertext, transformed to the calling device, with
    the ciphertext as stored (``origin``) and the device that signed it (``author``),
    for the client to check that an admin made it."""
    encrypted, envelope, device_key, author = await run_in_threadpool(
        _admin_key_access, service, call, group_id
    )
    transformed = await service.transformer.run_async(encrypted, [device_key])
    return GroupKey(
        encrypted_key=transformed, key_envelope=envelope, origin=encrypted, author=author
    )


def _admin_key_access(
    service: KeyService, call: SignedCall, group_id: str
) -> tuple[bytes, bytes, bytes, Author | None]:
    with service.signed(call) as (session, caller):
        get_group(session, group_id)
        admin = session.get(GroupAdmin, (group_id, caller.user_id))
        if admin is None:
            raise forbidden("not_admin", "only the group's admins may do this")
        device_key = device_transform_key(caller)
        encrypted, envelope = admin.encrypted_key, admin.key_envelope
        author = author_of(session, encrypted)
        record(service, session, caller, "group.read_key", group_id)
    return encrypted, envelope, device_key, author
