"""Transform: move an encrypted key along group -> user -> device (or user -> device).

The hot path of the service: this route reads its request itself instead of through
FastAPI's body parameter, dependencies and response model, which took about 0.17 ms
of a 7.5 ms request here (paired runs of both versions), and documents its body and
its signature headers (``SIGNED_REQUEST``) with ``openapi_extra``. Its checks and
error codes are those of every other route, except that it checks the signature
headers' form before the body, and answers a body that is not UTF-8 JSON (RFC 8259
§8.1) with 422 ``validation_error`` where FastAPI answers 400.
"""

import asyncio
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.requests import ClientDisconnect

from veil.crypto.signing import VerifyingKey
from veil.keyserver import audit
from veil.keyserver.auth import CallingDevice, replayed, spend_all, verify_all
from veil.keyserver.chains import Chain, ChainId
from veil.keyserver.deps import signed_call
from veil.keyserver.grouped import GroupedCommits, Pending
from veil.keyserver.routes.common import (
    TRANSFORMER_UNAVAILABLE,
    audit_entry,
    device_transform_key,
    member_transform_key,
    member_transform_keys,
)
from veil.keyserver.schemas import Transformed, TransformRequest
from veil.keyserver.service import KeyService
from veil.web.errors import ApiError, bad_request, unprocessable
from veil.web.openapi import SIGNED_REQUEST

router = APIRouter(prefix="/v1", tags=["transform"])

_JSON_BODY = {"application/json": {"schema": TransformRequest.model_json_schema()}}


@router.post(
    "/transform",
    response_model=Transformed,
    responses=TRANSFORMER_UNAVAILABLE,
    openapi_extra={
        "requestBody": {"required": True, "content": _JSON_BODY},
        "security": SIGNED_REQUEST,
    },
)
async def transform_for_device(request: Request) -> Response:
    """Transform a ciphertext for the group (or for the caller's user) to the calling
    device. A removed member or a revoked device gets 403, never a ciphertext."""
    service: KeyService = request.app.state.service
    try:
        raw = await request.body()
    except ClientDisconnect:  # what FastAPI answers for a body it could not read
        raise bad_request("http_error", "There was an error parsing the body") from None
    call = signed_call(request, service, raw)
    body = _parse(request, raw)
    # The transformer decodes strictly (lengths, points, GT membership, signature)
    # before any pairing: a malformed value is a 422, a bad signature a 400.
    chains, chain_id = service.recent_chains, (call.device_id, body.group_id)
    ticket = chains.ticket()
    # Only worker processes start early: a thread cannot be stopped, and would hold the
    # GIL the authorization needs.
    guess = (
        chains.guess(chain_id, call.signature, call.message) if service.transformer.pooled else None
    )
    early = None
    if guess is not None:
        early = _start(service, chain_id, body.encrypted_key, guess.keys)
        early.add_done_callback(lambda _: chains.settle(chain_id))
    try:
        try:
            known = guess.signing_key if guess is not None else None
            authorizations: GroupedCommits[_Ask] = request.app.state.transform_authorizations
            chain = await authorizations.decide(call, _Ask(body.group_id, known))
        except Exception:
            chains.forget(chain_id, ticket)
            raise
        chains.remember(chain_id, chain, ticket)
        if early is None or guess is None or guess.keys != chain.keys:
            if early is not None:
                _discard(early)
            early = _start(service, chain_id, body.encrypted_key, chain.keys)
    except BaseException:
        if early is not None:
            _discard(early)
        raise
    # Released only now: the request's transaction committed, with exactly these keys.
    answer = Transformed(encrypted_key=await early)
    # For this device's next rekey, unless a removal, revocation or rotation committed
    # since this request arrived (its forget came first; the ticket says so).
    service.prepared.want(chain_id, chain.keys, ticket)
    return Response(answer.model_dump_json(), media_type="application/json")


def _parse(request: Request, raw: bytes) -> TransformRequest:
    """The body, validated as FastAPI validates a JSON body parameter."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise unprocessable("validation_error", "the body must be application/json")
    try:
        return TransformRequest.model_validate_json(raw)
    except ValidationError as error:
        details = [{**detail, "loc": ("body", *detail["loc"])} for detail in error.errors()]
        raise RequestValidationError(details) from None


def _start(
    service: KeyService, chain_id: ChainId, value: bytes, keys: tuple[bytes, ...]
) -> "asyncio.Task[bytes]":
    """The transform, with the transform prepared for exactly these keys if one waits
    (used up even if this request is then refused: it is never released)."""
    prepared = service.prepared.take(chain_id, keys)
    return asyncio.ensure_future(service.transformer.run_async(value, keys, prepared))


def _discard(task: "asyncio.Task[bytes]") -> None:
    task.cancel()
    # An early transform that already failed (a malformed ciphertext) is not an error
    # anyone lost: retrieve it, so asyncio does not log it.
    task.add_done_callback(lambda done: done.cancelled() or done.exception())


@dataclass(frozen=True, slots=True)
class _Ask:
    """What a transform request asks for: the group's chain (None: its own user's), and
    a key its signature has already been verified against (by ``RecentChains.guess``)."""

    group_id: str | None
    known: VerifyingKey | None


def authorize_group(service: KeyService, session: Session, group: list[Pending[_Ask]]) -> None:
    """A group of transform requests' authorizations, each as ``KeyService.signed`` and
    a member's transform key would decide it alone: devices, signatures, nonces,
    memberships, each in one statement for the whole group, and one audit append."""
    calls = [pending.call for pending in group]
    verified: list[tuple[Pending[_Ask], CallingDevice]] = []
    for pending, caller in zip(
        group, verify_all(session, calls, [p.item.known for p in group]), strict=True
    ):
        if isinstance(caller, ApiError):
            pending.refuse(caller)
        else:
            pending.authenticated = True
            verified.append((pending, caller))
    fresh = spend_all(session, service.settings, [pending.call for pending, _ in verified])
    admitted = []
    for (pending, caller), spent in zip(verified, fresh, strict=True):
        if spent:
            admitted.append((pending, caller))
        else:
            pending.refuse(replayed())
    wanted = {(p.item.group_id, c.user_id) for p, c in admitted if p.item.group_id is not None}
    member_keys = member_transform_keys(session, wanted)
    entries = []
    for pending, caller in admitted:
        group_id = pending.item.group_id
        try:
            keys: list[bytes] = []
            if group_id is not None:  # a member row exists only while its group does
                key = member_keys.get((group_id, caller.user_id))
                # None: not a member, or no such group; the single check says which.
                keys.append(key or member_transform_key(session, group_id, caller.user_id))
            keys.append(device_transform_key(caller))
        except ApiError as refusal:
            pending.refuse(refusal)
            continue
        pending.grant(Chain(caller.signing_key, tuple(keys)))
        subject = group_id or f"user:{caller.user_id}"
        entries.append(audit_entry(service, caller, "transform", subject))
    audit.append_all(session, entries)
