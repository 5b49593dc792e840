"""Transform: move an encrypted key along group -> user -> device (or user -> device)."""

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from veil.keyserver.auth import SignedCall
from veil.keyserver.deps import Service, Signed
from veil.keyserver.routes.common import (
    device_transform_key,
    member_transform_key,
    record,
)
from veil.keyserver.schemas import Transformed, TransformRequest
from veil.keyserver.service import KeyService

router = APIRouter(prefix="/v1", tags=["transform"])


@router.post("/transform")
async def transform_for_device(
    body: TransformRequest, call: Signed, service: Service
) -> Transformed:
    """Transform a ciphertext for the group (or for the caller's user) to the calling
    device. A removed member or a revoked device gets 403, never a ciphertext."""
    # The transformer decodes strictly (lengths, points, GT membership, signature)
    # before any pairing: a malformed value is a 422, a bad signature a 400.
    keys = await run_in_threadpool(_authorize, service, call, body.group_id)
    transformed = await service.transformer.run_async(body.encrypted_key, keys)
    return Transformed(encrypted_key=transformed)


def _authorize(service: KeyService, call: SignedCall, group_id: str | None) -> list[bytes]:
    with service.signed(call) as (session, caller):
        chain: list[bytes] = []
        if group_id is not None:  # a member row exists only while its group does
            chain.append(member_transform_key(session, group_id, caller.user_id))
        chain.append(device_transform_key(caller))
        record(service, session, caller, "transform", group_id or f"user:{caller.user_id}")
    return chain
