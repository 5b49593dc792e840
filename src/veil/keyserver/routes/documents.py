"""Durable artifacts: the encrypted keys of transcripts, recordings, files and reports."""

from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from veil.keyserver.auth import CallingDevice, SignedCall
from veil.keyserver.deps import Service, Signed
from veil.keyserver.models import Document, DocumentGrant, Group, GroupMember, User
from veil.keyserver.routes.common import (
    TRANSFORMER_UNAVAILABLE,
    author_of,
    device_transform_key,
    record,
    stored_ciphertext,
)
from veil.keyserver.schemas import Author, CreateDocument, DocumentKey, Done, Grant
from veil.keyserver.service import KeyService
from veil.protocol import ESCROW_DOCUMENT_PREFIX, escrow_document_id
from veil.web.errors import conflict, forbidden, not_found, unprocessable
from veil.web.schemas import PathId

router = APIRouter(prefix="/v1/documents", tags=["documents"])


def _store_grant(
    session: Session, document_id: str, grant: Grant, by: CallingDevice, now: int
) -> None:
    """Check a grant (a level-0 ciphertext signed by the calling device, an existing
    grantee) and store or replace it."""
    stored_ciphertext(grant.encrypted_key, signed_by=by.signing_key)
    table = User if grant.grantee_kind == "user" else Group
    if session.get(table, grant.grantee_id) is None:
        raise unprocessable("unknown_grantee", f"no {grant.grantee_kind} {grant.grantee_id!r}")
    session.merge(
        DocumentGrant(
            document_id=document_id,
            grantee_kind=grant.grantee_kind,
            grantee_id=grant.grantee_id,
            encrypted_key=grant.encrypted_key,
            granted_by=by.user_id,
            created_at=now,
        )
    )


def _owned(session: Session, document_id: str, user_id: str) -> Document:
    document = session.get(Document, document_id)
    if document is None:
        raise not_found(f"no document {document_id!r}")
    if document.owner_id != user_id:
        raise forbidden("not_owner", "only the document's owner may change its grants")
    return document


def _check_reserved(document_id: str, user_id: str) -> None:
    """``veil-escrow.<user>`` is ``<user>``'s alone (``veil.protocol.escrow_document_id``):
    created by anyone else first, it would lock that user out of device-approval mode."""
    if document_id.startswith(ESCROW_DOCUMENT_PREFIX) and document_id != escrow_document_id(
        user_id
    ):
        raise forbidden(
            "reserved_document_id",
            f"ids starting {ESCROW_DOCUMENT_PREFIX!r} are reserved: only a device of the "
            "user it names may create one",
        )


@router.post("", status_code=201)
def create_document(body: CreateDocument, call: Signed, service: Service) -> Done:
    taken = conflict("document_exists", "a document with this id exists")
    with service.signed(call, on_conflict=taken) as (session, caller):
        _check_reserved(body.document_id, caller.user_id)
        if session.get(Document, body.document_id) is not None:
            raise taken
        session.add(
            Document(
                id=body.document_id,
                owner_id=caller.user_id,
                kind=body.kind,
                created_at=service.now(),
            )
        )
        session.flush()
        for grant in body.grants:
            _store_grant(session, body.document_id, grant, caller, service.now())
        record(service, session, caller, "document.create", body.document_id)
    return Done()


@router.post("/{document_id}/grants", status_code=201)
def grant(document_id: PathId, body: Grant, call: Signed, service: Service) -> Done:
    with service.signed(call) as (session, caller):
        _owned(session, document_id, caller.user_id)
        _store_grant(session, document_id, body, caller, service.now())
        record(
            service,
            session,
            caller,
            "document.grant",
            f"{document_id}/{body.grantee_kind}:{body.grantee_id}",
        )
    return Done()


@router.delete("/{document_id}/grants/{grantee_kind}/{grantee_id}")
def revoke_grant(
    document_id: PathId,
    grantee_kind: Literal["user", "group"],
    grantee_id: PathId,
    call: Signed,
    service: Service,
) -> Done:
    with service.signed(call) as (session, caller):
        _owned(session, document_id, caller.user_id)
        row = session.get(DocumentGrant, (document_id, grantee_kind, grantee_id))
        if row is None:
            raise not_found("no such grant")
        session.delete(row)
        record(
            service,
            session,
            caller,
            "document.revoke",
            f"{document_id}/{grantee_kind}:{grantee_id}",
        )
    return Done()


@router.get("/{document_id}/key", responses=TRANSFORMER_UNAVAILABLE)
async def document_key(document_id: PathId, call: Signed, service: Service) -> DocumentKey:
    """The document's key transformed to the calling device, through a user grant or a
    grant to a group the caller belongs to; with the grant as stored (``origin``), the
    device that signed it (``author``) and the document's owner, for the client to
    check where the key comes from."""
    access = await run_in_threadpool(_document_access, service, call, document_id)
    transformed = await service.transformer.run_async(access.encrypted, access.chain)
    return DocumentKey(
        encrypted_key=transformed,
        via=access.via,
        owner=access.owner,
        origin=access.encrypted,
        author=access.author,
    )


@dataclass(frozen=True)
class _Access:
    """What a document-key request read in its transaction."""

    encrypted: bytes
    chain: list[bytes]
    via: Literal["user", "group"]
    owner: str
    author: Author | None


def _document_access(service: KeyService, call: SignedCall, document_id: str) -> _Access:
    with service.signed(call) as (session, caller):
        document = session.get(Document, document_id)
        if document is None:
            raise not_found(f"no document {document_id!r}")
        device_key = device_transform_key(caller)
        via: Literal["user", "group"]
        direct = session.get(DocumentGrant, (document_id, "user", caller.user_id))
        if direct is not None:
            encrypted, chain, via = direct.encrypted_key, [device_key], "user"
        else:
            row = session.execute(
                select(DocumentGrant.encrypted_key, GroupMember.transform_key)
                .join(
                    GroupMember,
                    (GroupMember.group_id == DocumentGrant.grantee_id)
                    & (GroupMember.user_id == caller.user_id),
                )
                .where(
                    DocumentGrant.document_id == document_id,
                    DocumentGrant.grantee_kind == "group",
                )
                .limit(1)
            ).first()
            if row is None:
                raise forbidden("no_access", "no grant reaches the caller")
            encrypted, chain, via = row[0], [row[1], device_key], "group"
        author = author_of(session, encrypted)
        record(service, session, caller, "document.access", document_id)
    return _Access(encrypted, chain, via, document.owner_id, author)
