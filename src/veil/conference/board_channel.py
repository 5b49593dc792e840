"""The board over WebSocket: resume from a sequence number, then live posts; posts
sent by the client are verified, stored and fanned out.

Client -> server, after the hello (which may carry ``"since": N``):
    {"type": "post", "post_id", "kind", "body", "timestamp", "signature"}
Server -> client:
    {"type": "welcome", "user_id", "device_id"}
    {"type": "post", "post": {seq, post_id, kind, device_id, user_id, timestamp, body, signature}}
    {"type": "ack", "post_id", "seq"} | {"type": "error", "status", "code", "message", "post_id"?}

A post's body must be its kind's message in canonical form (``veil.protocol.board``):
anything else is refused (400 ``bad_body``, naming the defect) before the timestamp,
the signature or an ``end``'s proof is looked at, and the connection stays open.
Clients check every body again: the service is not trusted.

Every post with ``seq > since`` is delivered once, in order: the connection joins the
room's channel before reading the backlog, skips what it already sent, and fills a
gap from the database when a live post arrives early. A subscriber too slow to keep
up is disconnected (4429) and resumes from its last ``seq``.

A post whose ``post_id`` is on the board already, from the same device with the same
kind and body, is acknowledged with the stored post's ``seq`` and not stored or fanned
out again: a client that lost its connection before the ack resends its post (same
``post_id``, fresh timestamp and signature) and gets one copy on the board. The same
id from another device, or with another content, is refused (409 ``replayed_post``).
"""

import asyncio
import json
from typing import Any

import httpx
from starlette.websockets import WebSocket, WebSocketDisconnect

from veil.conference.board import PAGE, NewPost, Stored
from veil.conference.bucket import TokenBucket
from veil.conference.fanout import MemoryFanout, channel
from veil.conference.handshake import (
    Participant,
    Refused,
    device_record,
    receive_hello,
    until_either,
    watch_device,
)
from veil.conference.service import ConferenceService
from veil.crypto.errors import InvalidSignature
from veil.crypto.keys import PublicKey
from veil.protocol import b64decode, post_message
from veil.protocol.board import KINDS, BoardMessageError, End, parse
from veil.web.errors import ApiError, bad_request, forbidden, unauthorized

_OVERFLOW = b""  # queued when a subscriber falls too far behind
_QUIET_POLL_SECONDS = 5.0


async def serve_board(websocket: WebSocket, service: ConferenceService, room_id: str) -> None:
    try:
        participant, hello = await receive_hello(websocket, service, "board", room_id)
    except (Refused, WebSocketDisconnect):
        return
    since = hello.get("since", 0)
    if not isinstance(since, int) or isinstance(since, bool) or since < 0:
        since = 0
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    limit = service.settings.board_queue_posts

    def deliver(message: bytes) -> None:
        if queue.qsize() >= limit:
            queue.put_nowait(_OVERFLOW)
        else:
            queue.put_nowait(message)

    name = channel("board", room_id)
    listener = await service.hub.join(name, deliver)
    service.metrics.opened("board", room_id, participant.device_id)
    lock = asyncio.Lock()

    async def send(message: dict[str, Any]) -> None:
        async with lock:
            await websocket.send_json(message)

    try:
        await send({"type": "welcome", **participant.__dict__})
        await until_either(
            _forward(websocket, service, room_id, since, queue, send),
            _receive(websocket, service, room_id, participant, send),
            watch_device(websocket, service, participant),
        )
    finally:
        service.metrics.closed("board", room_id, participant.device_id)
        await service.hub.leave(name, listener)


async def _forward(
    websocket: WebSocket,
    service: ConferenceService,
    room_id: str,
    since: int,
    queue: "asyncio.Queue[bytes]",
    send: Any,
) -> None:
    async def catch_up(last: int, until: int | None = None) -> int:
        """Send what the board holds after ``last`` (up to ``until``), page by page."""
        while True:
            page = await asyncio.to_thread(service.board.after, room_id, last, until)
            for post in page:
                await send({"type": "post", "post": post})
                last = post["seq"]
            if len(page) < PAGE:
                return last

    last = await catch_up(since)
    # Across replicas fan-out is at-most-once: a lost post is filled in when the next one
    # arrives, or by this poll when the room goes quiet. In one process nothing is lost.
    poll = None if isinstance(service.hub.fanout, MemoryFanout) else _QUIET_POLL_SECONDS
    while True:
        try:
            message = await asyncio.wait_for(queue.get(), poll)
        except TimeoutError:
            last = await catch_up(last)
            continue
        if message == _OVERFLOW:
            await websocket.close(code=4429, reason="slow_subscriber")
            return
        post = json.loads(message)
        if post["seq"] <= last:
            continue
        if post["seq"] > last + 1:
            await catch_up(last, post["seq"] - 1)
        await send({"type": "post", "post": post})
        last = post["seq"]


async def _receive(
    websocket: WebSocket,
    service: ConferenceService,
    room_id: str,
    participant: Participant,
    send: Any,
) -> None:
    rate = service.settings.post_rate_per_second
    # A token bucket per connection: any holder of a JWT may post, so no one may fill a
    # board (or its subscribers' memory) faster than this.
    bucket = TokenBucket(rate, service.settings.post_burst)
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        post_id = None
        try:
            data = _parse(message.get("text"), service.settings.max_post_bytes)
            post_id = data["post_id"]
            if not bucket.take():
                raise ApiError(429, "rate_limited", f"at most {rate:g} posts per second")
            new = await _verify(service, room_id, participant, data)
            stored = await _store(service, room_id, participant, new)
        except ApiError as error:
            reply = {
                "type": "error", "status": error.status, "code": error.code,
                "message": error.message,
            }  # fmt: skip
            if isinstance(post_id, str):
                reply["post_id"] = post_id
            service.metrics.board_post(error.code)
            await send(reply)
            continue
        service.metrics.board_post("stored" if stored.new else "resent")
        if stored.new:
            await service.hub.publish(channel("board", room_id), json.dumps(stored.post).encode())
        await send({"type": "ack", "post_id": post_id, "seq": stored.post["seq"]})


async def _store(
    service: ConferenceService, room_id: str, participant: Participant, post: NewPost
) -> Stored:
    """Store a verified post, or find it stored (resent by its device). An ``end`` is
    checked only when new: a resent one's proof may have gone stale meanwhile."""
    earlier = await asyncio.to_thread(service.board.repost, post)
    if earlier is not None:
        return Stored(earlier, new=False)
    if post.kind == "end":
        await _check_end(service, room_id, participant.user_id, post.body)
    return await asyncio.to_thread(service.board.append, post, service.now())


def _parse(text: str | None, max_bytes: int) -> dict[str, Any]:
    if text is None:
        raise bad_request("bad_message", "board messages are JSON text")
    if len(text) > 2 * max_bytes:
        raise bad_request("post_too_large", f"post bodies are limited to {max_bytes} bytes")
    try:
        data = json.loads(text)
    except ValueError:
        raise bad_request("bad_message", "the message is not JSON") from None
    if not isinstance(data, dict) or data.get("type") != "post":
        raise bad_request("bad_message", "expected a post")
    fields = {"type", "post_id", "kind", "body", "timestamp", "signature"}
    if set(data) != fields:
        raise bad_request("bad_message", f"a post has exactly the fields {sorted(fields)}")
    if not isinstance(data["timestamp"], int) or isinstance(data["timestamp"], bool):
        raise bad_request("bad_message", "timestamp must be an integer")
    if data["kind"] not in KINDS:
        raise bad_request("bad_message", f"kind must be one of {sorted(KINDS)}")
    return data


async def _verify(
    service: ConferenceService, room_id: str, participant: Participant, data: dict[str, Any]
) -> NewPost:
    try:
        post_id, body, signature = (b64decode(data[k]) for k in ("post_id", "body", "signature"))
    except ValueError:
        raise bad_request("bad_message", "post_id, body and signature must be base64url") from None
    if len(post_id) != 16 or len(signature) != 64:
        raise bad_request("bad_message", "post_id is 16 bytes and signature 64")
    if len(body) > service.settings.max_post_bytes:
        raise bad_request("post_too_large", "the post body is too large")
    try:  # the board stores only well-formed messages (clients check them again)
        parse(data["kind"], body)
    except BoardMessageError as error:
        raise bad_request("bad_body", str(error)) from None
    if abs(service.now() - data["timestamp"]) > service.settings.clock_skew_seconds:
        raise unauthorized("stale_post", "the post's timestamp is too far from now")
    message = post_message(
        room_id, post_id, data["kind"], participant.device_id, data["timestamp"], body
    )
    for fresh in (False, True):  # a failure may be a rotated key: check a fresh record
        record = await device_record(service, participant.device_id, fresh=fresh)
        if record is None or not record.active:
            raise forbidden("device_revoked", "this device has been revoked")
        try:
            record.signing_key.verify(signature, message)
            break
        except InvalidSignature:
            if fresh:
                raise unauthorized("bad_signature", "the post signature did not verify") from None
    return NewPost(
        room_id=room_id,
        post_id=post_id,
        kind=data["kind"],
        device_id=participant.device_id,
        user_id=participant.user_id,
        timestamp=data["timestamp"],
        body=body,
        signature=signature,
    )


async def _check_end(service: ConferenceService, room_id: str, user_id: str, body: bytes) -> None:
    """An ``end`` closes the room for everyone: it must carry a proof made with the
    meeting group's private key (``veil.protocol.meeting_proof_message``), which only
    the group's admins hold. The group's public key comes from the key service."""
    refused = forbidden("not_host", "ending a meeting needs a proof by a meeting admin")
    proof = End.parse(body).proof  # well formed: checked in _verify
    if abs(service.now() - proof.timestamp) > service.settings.clock_skew_seconds:
        raise unauthorized("stale_post", "the end proof's timestamp is too far from now")
    try:
        response = await service.http.get(f"/v1/groups/{room_id}/public-key")
    except httpx.HTTPError:
        raise ApiError(503, "keyserver_unavailable", "the key service did not answer") from None
    if response.status_code == 404:
        raise refused
    if not response.is_success:
        raise ApiError(503, "keyserver_unavailable", "the key service did not answer")
    try:
        group_key = PublicKey.from_bytes(b64decode(response.json()["public_key"]))
        proof.verify("end", room_id, user_id, group_key)
    except (InvalidSignature, ValueError, KeyError, TypeError):
        raise refused from None
