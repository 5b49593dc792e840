"""Transform: move an encrypted key along group -> user -> device (or user -> device)."""

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from veil.crypto.pre import EncryptedValue
from veil.keyserver.deps import Service, Signed
from veil.keyserver.routes.common import (
    device_transform_key,
    get_group,
    member_transform_key,
    record,
)
from veil.keyserver.schemas import Transformed, TransformRequest

router = APIRouter(prefix="/v1", tags=["transform"])


@router.post("/transform")
async def transform_for_device(
    body: TransformRequest, caller: Signed, service: Service
) -> Transformed:
    """Transform a ciphertext for the group (or for the caller's user) to the calling
    device. A removed member or a revoked device gets 403, never a ciphertext."""
    # Strict decoding (lengths, points, GT membership, signature) before any pairing.
    await run_in_threadpool(lambda: EncryptedValue.from_bytes(body.encrypted_key).verify())
    keys = await run_in_threadpool(_authorize, service, caller, body.group_id)
    transformed = await run_in_threadpool(service.transformer.run, body.encrypted_key, keys)
    return Transformed(encrypted_key=transformed)


def _authorize(service, caller, group_id):  # type: ignore[no-untyped-def]
    with service.transaction() as session:
        chain = []
        if group_id is not None:
            get_group(session, group_id)
            chain.append(member_transform_key(session, group_id, caller.user_id))
        chain.append(device_transform_key(session, caller))
        record(service, session, caller, "transform", group_id or f"user:{caller.user_id}")
    return chain
