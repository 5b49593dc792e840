"""The media relay: a binary WebSocket per participant; every frame goes to every
other participant of the room, unchanged.

A frame is ``routing header (1 byte: veil.protocol.MediaKind) || SFrame ciphertext``.
The relay reads the routing byte and the length, never the payload. Each receiver
has a bounded queue: when it is half full, video and data frames for that receiver
are skipped; when full, audio too. A slow receiver loses its own frames and never
stalls the room. Frames are fanned out with the sender's tag in front, so a
participant never gets its own frames back, on any replica.
"""

import asyncio
import hashlib

from starlette.websockets import WebSocket, WebSocketDisconnect

from veil.conference.fanout import channel
from veil.conference.handshake import (
    Refused,
    receive_hello,
    refuse,
    until_either,
    watch_device,
)
from veil.conference.service import ConferenceService
from veil.protocol import MediaKind
from veil.web.errors import forbidden

_TAG = 16


async def serve_media(websocket: WebSocket, service: ConferenceService, room_id: str) -> None:
    try:
        participant, _ = await receive_hello(websocket, service, "media", room_id)
    except (Refused, WebSocketDisconnect):
        return
    if await asyncio.to_thread(service.board.ended, room_id):
        await refuse(websocket, forbidden("room_ended", "this meeting has ended"))
        return
    tag = hashlib.sha256(participant.device_id.encode()).digest()[:_TAG]
    capacity = service.settings.relay_queue_frames
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=capacity)
    stats = {"received": 0, "forwarded": 0, "skipped": 0}

    def deliver(message: bytes) -> None:
        if message[:_TAG] == tag:
            return
        frame = message[_TAG:]
        crowded = queue.qsize() >= capacity // 2 and frame[0] != MediaKind.AUDIO
        if crowded or queue.full():
            stats["skipped"] += 1
            return
        queue.put_nowait(frame)

    name = channel("media", room_id)
    listener = await service.hub.join(name, deliver)
    try:
        await websocket.send_json({"type": "welcome", **participant.__dict__})
        await until_either(
            _send_frames(websocket, queue, stats),
            _receive_frames(websocket, service, name, tag, stats),
            watch_device(websocket, service, participant),
        )
    finally:
        await service.hub.leave(name, listener)


async def _send_frames(
    websocket: WebSocket, queue: "asyncio.Queue[bytes]", stats: dict[str, int]
) -> None:
    while True:
        frame = await queue.get()
        await websocket.send_bytes(frame)
        stats["forwarded"] += 1


async def _receive_frames(
    websocket: WebSocket,
    service: ConferenceService,
    name: str,
    tag: bytes,
    stats: dict[str, int],
) -> None:
    limit = service.settings.max_frame_bytes
    kinds = {int(k) for k in MediaKind}
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        frame = message.get("bytes")
        if not frame or not 2 <= len(frame) <= limit or frame[0] not in kinds:
            # Not a frame: say so once per bad frame, keep the connection.
            await websocket.send_json(
                {
                    "type": "error",
                    "code": "bad_frame",
                    "message": f"frames are binary, 2..{limit} bytes, with a media-kind byte",
                }
            )
            continue
        stats["received"] += 1
        await service.hub.publish(name, tag + frame)
