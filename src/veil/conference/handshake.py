"""Opening a board or media connection: JWT to join, device signature to prove the
device. The server sends a fresh challenge; the client answers with one ``hello``:

    {"type": "hello", "token": JWT, "device_id": ..., "signature": Ed25519 over
     veil.protocol.hello_message(room, channel, challenge, device_id), ...}

The device must be active at the key service and belong to the token's user.
Refusals are sent as ``{"type": "error", "code", "message"}`` and the socket is
closed with 4000 + the matching HTTP status (4401, 4403, ...).
"""

import asyncio
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from veil.conference.directory import DeviceLookupError, DeviceRecord
from veil.conference.service import ConferenceService
from veil.crypto.errors import InvalidSignature
from veil.protocol import b64decode, b64encode, hello_message
from veil.web.errors import ApiError, forbidden, unauthorized
from veil.web.origins import origin_allowed


@dataclass(frozen=True)
class Participant:
    user_id: str
    device_id: str


class Refused(Exception):
    """Raised once the client has been told why and the socket closed."""


async def refuse(websocket: WebSocket, error: ApiError) -> Refused:
    try:
        await websocket.send_json({"type": "error", "code": error.code, "message": error.message})
        await websocket.close(code=4000 + error.status, reason=error.code)
    except (WebSocketDisconnect, RuntimeError):
        pass
    return Refused(error.code)


async def receive_hello(
    websocket: WebSocket, service: ConferenceService, channel: str, room_id: str
) -> tuple[Participant, dict[str, Any]]:
    if not origin_allowed(websocket.headers.get("origin"), service.settings.cors_origins):
        # Closed before it is accepted: the browser's handshake gets a 403.
        await websocket.close(code=1008)
        raise Refused("origin_not_allowed")
    await websocket.accept()
    challenge = secrets.token_bytes(16)
    await websocket.send_json({"type": "challenge", "challenge": b64encode(challenge)})
    try:
        hello = await asyncio.wait_for(
            websocket.receive_json(), service.settings.hello_timeout_seconds
        )
    except TimeoutError:
        raise await refuse(websocket, unauthorized("hello_timeout", "no hello in time")) from None
    except (ValueError, KeyError):
        raise await refuse(websocket, unauthorized("bad_hello", "the hello is not JSON")) from None
    try:
        return await _check(hello, service, channel, room_id, challenge), hello
    except ApiError as error:
        raise await refuse(websocket, error) from None


async def _check(
    hello: Any, service: ConferenceService, channel: str, room_id: str, challenge: bytes
) -> Participant:
    if not isinstance(hello, dict) or hello.get("type") != "hello":
        raise unauthorized("bad_hello", "the first message must be a hello")
    token, device_id, signature = (hello.get(k) for k in ("token", "device_id", "signature"))
    if not (isinstance(token, str) and isinstance(device_id, str) and isinstance(signature, str)):
        raise unauthorized("bad_hello", "hello needs token, device_id and signature strings")
    if not 0 < len(device_id) <= 64:
        raise unauthorized("bad_hello", "device_id is not a device id")
    identity = await service.jwt.verify(token, fresh=False)
    record = await device_record(service, device_id)
    if record is None:
        raise unauthorized("unknown_device", "the key service does not know this device")
    if not record.active:
        raise forbidden("device_revoked", "this device has been revoked")
    if record.user_id != identity.user_id:
        raise forbidden("not_your_device", "this device belongs to another user")
    try:
        record.signing_key.verify(
            b64decode(signature), hello_message(room_id, channel, challenge, device_id)
        )
    except (InvalidSignature, ValueError):
        raise unauthorized("bad_signature", "the hello signature did not verify") from None
    return Participant(identity.user_id, device_id)


async def device_record(
    service: ConferenceService, device_id: str, *, fresh: bool = False
) -> DeviceRecord | None:
    try:
        return await service.directory.get(device_id, fresh=fresh)
    except DeviceLookupError:
        raise ApiError(503, "keyserver_unavailable", "the key service did not answer") from None


async def watch_device(
    websocket: WebSocket, service: ConferenceService, participant: Participant
) -> None:
    """Return (after telling the client why) once the connection's device is revoked:
    ``service.watch`` looks every open connection's device up again every
    ``device_recheck_seconds``, many per request."""
    async with service.watch.watching(participant.device_id) as revoked:
        await revoked.wait()
    await refuse(websocket, forbidden("device_revoked", "this device has been revoked"))


async def until_either(*work: Coroutine[Any, Any, None]) -> None:
    """Run a connection's sides (sending, receiving, watching its device) until one of
    them ends (the peer left, the server closed it, the device was revoked), then stop
    the others."""
    tasks = [asyncio.create_task(w) for w in work]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
