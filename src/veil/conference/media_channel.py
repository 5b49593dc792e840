"""The media relay: a binary WebSocket per participant; each frame goes to every other
participant of the room with its origin in front, its payload untouched.

Admission (``veil.conference.admission``): the media hello names the sender number the
device announced on the board and carries a membership capability for the key service;
the connection is bound to that sender.

Participant -> relay, one frame per binary message:

    kind (1 byte: veil.protocol.MediaKind) || SFrame frame (RFC 9605 header || ciphertext)

Relay -> participant:

    kind (1 byte) || n (1 byte) || origin device id (n bytes, ASCII) || SFrame frame
    {"type": "error", "code": "bad_frame" | "wrong_sender" | "rate_limited",
     "message": ..., "dropped": frames dropped since the previous notice}

The relay reads the routing byte, the SFrame header and the length, never the payload.
It drops (and counts) a frame over the connection's rate (token buckets on frames and
on bytes a second, ``ConferenceSettings.relay_*``), a frame that is not a media kind
and a parsable SFrame header within ``max_frame_bytes``, and a frame whose KID names a
sender other than the connection's (``veil.crypto.schedule.parse_media_kid``): one
member cannot send as another. The sender is told at most once a second, so a flood
does not turn into a flood of replies.

Each receiver has a bounded queue: when it is half full, video and data frames for
that receiver are skipped; when full, audio too. A slow receiver loses its own frames
and never stalls the room. A receiver skips frames whose origin is its own device, so
a participant never gets its own frames back, on any replica.
"""

import asyncio
import json
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from veil.conference.admission import admit
from veil.conference.bucket import TokenBucket
from veil.conference.fanout import channel
from veil.conference.handshake import (
    Participant,
    Refused,
    receive_hello,
    refuse,
    until_either,
    watch_device,
)
from veil.conference.service import ConferenceService
from veil.conference.settings import ConferenceSettings
from veil.crypto.schedule import parse_media_kid
from veil.crypto.sframe import SFrameHeader
from veil.protocol import MediaKind
from veil.web.errors import ApiError, forbidden

logger = logging.getLogger(__name__)

_KINDS = frozenset(int(k) for k in MediaKind)
_HEADER_MAX = 17
"""The longest SFrame header: a config byte, then at most 8 bytes each of KID and CTR."""
NOTICE_INTERVAL = 1.0
"""Seconds between two notices to one connection, at least."""


async def serve_media(websocket: WebSocket, service: ConferenceService, room_id: str) -> None:
    try:
        participant, hello = await receive_hello(websocket, service, "media", room_id)
    except (Refused, WebSocketDisconnect):
        return
    try:
        if await asyncio.to_thread(service.board.ended, room_id):
            raise forbidden("room_ended", "this meeting has ended")
        sender = await admit(service, room_id, participant, hello)
    except ApiError as error:
        await refuse(websocket, error)
        return
    relay = _Connection(service.settings, participant, sender)
    name = channel("media", room_id)
    listener = await service.hub.join(name, relay.deliver)
    service.metrics.opened("media", room_id, participant.device_id, relay.counters)
    try:
        await websocket.send_json({"type": "welcome", **participant.__dict__})
        await until_either(
            relay.send_loop(websocket),
            relay.receive_loop(websocket, service, name),
            watch_device(websocket, service, participant),
        )
    finally:
        service.metrics.closed("media", room_id, participant.device_id, relay.counters)
        await service.hub.leave(name, listener)
        logger.debug(
            "media connection of %s in %s closed: %s",
            participant.device_id,
            room_id,
            relay.counters,
        )


@dataclass
class Counters:
    """What one connection did (for operators; frames are never logged)."""

    received: int = 0
    forwarded: int = 0
    skipped: int = 0
    """Frames for this receiver skipped because it did not keep up."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Frames from this sender dropped, by reason."""


class _Notices:
    """At most one notice per ``NOTICE_INTERVAL``; each says how many frames were
    dropped since the previous one."""

    def __init__(self) -> None:
        self._last, self._dropped = -math.inf, 0

    def drop(self, code: str, message: str) -> dict[str, Any] | None:
        self._dropped += 1
        now = time.monotonic()
        if now - self._last < NOTICE_INTERVAL:
            return None
        notice = {"type": "error", "code": code, "message": message, "dropped": self._dropped}
        self._last, self._dropped = now, 0
        return notice


class _Connection:
    """One participant's relay connection, bound to its device and sender number."""

    def __init__(self, settings: ConferenceSettings, participant: Participant, sender: int) -> None:
        # The handshake took the id from the key service (at most 64 characters of its
        # path alphabet), so it fits the one-byte length.
        device = participant.device_id.encode("ascii")
        self.origin = bytes([len(device)]) + device
        self.sender = sender
        self.limit = settings.max_frame_bytes
        self.capacity = settings.relay_queue_frames
        self.queue: asyncio.Queue[bytes | str] = asyncio.Queue(maxsize=self.capacity)
        self.frames = TokenBucket(settings.relay_frames_per_second, settings.relay_frame_burst)
        self.bytes = TokenBucket(settings.relay_bytes_per_second, settings.relay_byte_burst)
        self.rates = (
            f"at most {settings.relay_frames_per_second:g} frames and "
            f"{settings.relay_bytes_per_second:g} bytes a second"
        )
        self.notices = _Notices()
        self.counters = Counters()

    def deliver(self, message: bytes) -> None:
        """A frame published in the room (runs on the event loop: only enqueues)."""
        if message[1 : 1 + len(self.origin)] == self.origin:
            return  # this device's own frame
        crowded = self.queue.qsize() >= self.capacity // 2 and message[0] != MediaKind.AUDIO
        if crowded or self.queue.full():
            self.counters.skipped += 1
            return
        self.queue.put_nowait(message)

    async def send_loop(self, websocket: WebSocket) -> None:
        while True:
            item = await self.queue.get()
            if isinstance(item, str):
                await websocket.send_text(item)
                continue
            await websocket.send_bytes(item)
            self.counters.forwarded += 1

    async def receive_loop(
        self, websocket: WebSocket, service: ConferenceService, name: str
    ) -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            frame = message.get("bytes")
            size = len(frame if frame is not None else message.get("text") or "")
            if not (self.frames.take() and self.bytes.take(size)):
                self._drop("rate_limited", self.rates)
                continue
            problem = self._check(frame)
            if problem is not None:
                self._drop(*problem)
                continue
            assert frame is not None
            self.counters.received += 1
            await service.hub.publish(name, frame[:1] + self.origin + frame[1:])

    def _check(self, frame: bytes | None) -> tuple[str, str] | None:
        """Why ``frame`` is dropped (code, message), or ``None`` to forward it."""
        if not frame or not 2 <= len(frame) <= self.limit or frame[0] not in _KINDS:
            return "bad_frame", (
                f"frames are binary, 2..{self.limit} bytes: a media-kind byte, then an SFrame frame"
            )
        try:
            header, _ = SFrameHeader.parse(frame[1 : 1 + _HEADER_MAX])
            _, sender, _ = parse_media_kid(header.kid)
        except ValueError:
            return "bad_frame", "the SFrame header does not parse"
        if sender != self.sender:
            return "wrong_sender", f"this connection sends as sender {self.sender} only"
        return None

    def _drop(self, code: str, message: str) -> None:
        self.counters.dropped[code] += 1
        notice = self.notices.drop(code, message)
        if notice is not None and not self.queue.full():
            self.queue.put_nowait(json.dumps(notice))
