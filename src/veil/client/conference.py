"""An asyncio client for the conference service: the platform's escrow share, the
message board and the media relay (see ``veil.conference`` for the wire protocol).

Board posts are checked here, end to end: a post is delivered only if its signature
verifies against the poster device's key *as the key service publishes it*, so the
conference service can forge or alter no post. It can still drop, delay or reorder
posts (``seq`` is the service's, not signed): meetings rely on posts' content (epochs,
proofs by the group key), never on their order alone.
"""

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from veil.client.errors import ServiceError, Unavailable, VeilError, service_error
from veil.client.keyserver import send
from veil.crypto.errors import InvalidSignature
from veil.crypto.signing import SigningKey, VerifyingKey
from veil.protocol import (
    CONFERENCE_AUDIENCE,
    MediaKind,
    b64decode,
    b64encode,
    hello_message,
    post_message,
)

KeyLookup = Callable[..., Awaitable[tuple[str, VerifyingKey]]]
"""``(device_id, fresh=False)`` -> (its user id, its signing key), from the key service
(cached unless ``fresh``: a device may have rotated its keys)."""


@dataclass(frozen=True)
class Post:
    """A board post whose signature verified."""

    seq: int
    kind: str
    user_id: str
    device_id: str
    timestamp: int
    body: bytes = field(repr=False)


def ws_url(base_url: str, path: str) -> str:
    """The ws:// (or wss://) URL of a path on an http(s) service."""
    url = httpx.URL(base_url)
    scheme = "wss" if url.scheme == "https" else "ws"
    return str(url.copy_with(scheme=scheme, path=url.path.rstrip("/") + path))


async def open_socket(
    url: str,
    room_id: str,
    channel: str,
    token: str,
    device_id: str,
    signer: SigningKey,
    **extra: Any,
) -> ClientConnection:
    """A board or media WebSocket, past the hello (``veil.conference.handshake``)."""
    try:
        # No per-message compression: what travels is ciphertext, which does not compress.
        socket = await connect(url, max_size=1 << 20, open_timeout=10, compression=None)
    except (OSError, TimeoutError) as exc:
        raise Unavailable(0, "unreachable", f"{url}: {type(exc).__name__}") from None
    try:
        challenge = json.loads(await socket.recv())
        message = hello_message(room_id, channel, b64decode(challenge["challenge"]), device_id)
        hello = {
            "type": "hello",
            "token": token,
            "device_id": device_id,
            "signature": b64encode(signer.sign(message)),
            **extra,
        }
        await socket.send(json.dumps(hello))
        welcome = json.loads(await socket.recv())
    except ConnectionClosed:
        raise Unavailable(0, "closed", "the conference service closed the connection") from None
    if welcome.get("type") == "error":
        await socket.close()
        status = (socket.close_code or 4400) - 4000
        raise service_error(status, welcome["code"], welcome["message"])
    return socket


class ConferenceClient:
    """``audience`` is the ``aud`` of the JWTs the conference service takes (its own,
    never the key service's: see ``veil.protocol.CONFERENCE_AUDIENCE``)."""

    def __init__(
        self, base_url: str, http: httpx.AsyncClient, *, audience: str = CONFERENCE_AUDIENCE
    ) -> None:
        self.base_url, self.http, self.audience = base_url, http, audience

    async def share(self, token: str) -> bytes:
        """The platform's share of this user's escrow password."""
        headers = {"Authorization": f"Bearer {token}"}
        data = await send(self.http, "POST", "/v1/users/me/share", headers=headers)
        return b64decode(data["share"])

    def board(
        self,
        room_id: str,
        *,
        device_id: str,
        signer: SigningKey,
        token: Callable[[], Awaitable[str]],
        lookup: KeyLookup,
        clock: Callable[[], float],
    ) -> "Board":
        return Board(self.base_url, room_id, device_id, signer, token, lookup, clock)

    async def media(
        self, room_id: str, *, device_id: str, signer: SigningKey, token: str
    ) -> "MediaChannel":
        url = ws_url(self.base_url, f"/v1/rooms/{room_id}/media")
        return MediaChannel(await open_socket(url, room_id, "media", token, device_id, signer))


class Board:
    """A room's board: ``posts()`` yields every verified post in order, reconnecting
    and resuming from the last ``seq`` if the connection drops; ``post()`` signs and
    sends one and returns its ``seq``. Posts that fail verification are counted in
    ``rejected`` and never delivered."""

    def __init__(
        self,
        base_url: str,
        room_id: str,
        device_id: str,
        signer: SigningKey,
        token: Callable[[], Awaitable[str]],
        lookup: KeyLookup,
        clock: Callable[[], float],
    ) -> None:
        self.room_id, self.device_id, self.signer = room_id, device_id, signer
        self._url = ws_url(base_url, f"/v1/rooms/{room_id}/board")
        self._token, self._lookup, self._clock = token, lookup, clock
        self.last_seq = 0
        self.rejected = 0
        self._seen: set[str] = set()
        self._socket: ClientConnection | None = None
        self._incoming: asyncio.Queue[Post | BaseException] = asyncio.Queue()
        self._pending: dict[str, asyncio.Future[int]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    async def connect(self, since: int | None = None) -> None:
        if since is not None:
            self.last_seq = since
        self._socket = await open_socket(
            self._url,
            self.room_id,
            "board",
            await self._token(),
            self.device_id,
            self.signer,
            since=self.last_seq,
        )
        self._reader = asyncio.create_task(self._read(self._socket))

    async def _read(self, socket: ClientConnection) -> None:
        try:
            async for raw in socket:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue  # not a message of the protocol: nothing to deliver
                if not isinstance(message, dict):
                    continue
                kind = message.get("type")
                if kind == "post":
                    post = await self._verified(message.get("post"))
                    if post is None or post.seq <= self.last_seq:
                        continue
                    self.last_seq = post.seq
                    # The service numbers posts, so it could deliver a signed post twice
                    # under two numbers: a post id is delivered once.
                    post_id = message["post"]["post_id"]
                    if post_id in self._seen:
                        self.rejected += 1
                        continue
                    self._seen.add(post_id)
                    await self._incoming.put(post)
                elif kind in ("ack", "error") and message.get("post_id") in self._pending:
                    future = self._pending.pop(message["post_id"])
                    seq, status = message.get("seq"), message.get("status", 400)
                    if kind == "ack" and type(seq) is int:
                        future.set_result(seq)
                    else:
                        future.set_exception(
                            service_error(
                                status if type(status) is int else 400,
                                str(message.get("code", "bad_reply")),
                                str(message.get("message", "the board sent a malformed reply")),
                            )
                        )
        except ConnectionClosed:
            pass
        if not self._closed:
            await self._reconnect()

    async def _reconnect(self) -> None:
        for delay in (0.1, 0.5, 1, 2, 5):
            await asyncio.sleep(delay)
            try:
                await self.connect()
                return
            except ServiceError as error:
                if isinstance(error, Unavailable):
                    continue
                await self._incoming.put(error)
                return
        await self._incoming.put(Unavailable(0, "disconnected", "the board connection is lost"))

    async def _verified(self, data: Any) -> Post | None:
        try:
            post_id, body, signature = (
                b64decode(data[k]) for k in ("post_id", "body", "signature")
            )
            seq, kind, device_id, timestamp = (
                data[k] for k in ("seq", "kind", "device_id", "timestamp")
            )
            if not (isinstance(kind, str) and isinstance(device_id, str)):
                raise ValueError("kind and device_id are strings")
            if not all(type(n) is int and n >= 0 for n in (seq, timestamp)):
                raise ValueError("seq and timestamp are integers")
            message = post_message(self.room_id, post_id, kind, device_id, timestamp, body)
            user_id, key = await self._lookup(device_id)
            try:
                key.verify(signature, message)
            except InvalidSignature:  # the poster may have rotated its keys since
                user_id, key = await self._lookup(device_id, fresh=True)
                key.verify(signature, message)
            if user_id != data["user_id"]:
                raise InvalidSignature
        except (InvalidSignature, ValueError, KeyError, TypeError, OverflowError, VeilError):
            # Malformed (a service that is not conforming, or not honest), forged, or
            # from a device its user's pinned key did not certify.
            self.rejected += 1
            return None
        return Post(seq, kind, user_id, device_id, timestamp, body)

    async def post(self, kind: str, body: bytes) -> int:
        """Sign and post; returns the post's ``seq`` once the board has stored it."""
        if self._socket is None:
            raise RuntimeError("connect() first")
        post_id = secrets.token_bytes(16)
        timestamp = int(self._clock())
        message = post_message(self.room_id, post_id, kind, self.device_id, timestamp, body)
        key = b64encode(post_id)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        await self._socket.send(
            json.dumps(
                {
                    "type": "post",
                    "post_id": key,
                    "kind": kind,
                    "body": b64encode(body),
                    "timestamp": timestamp,
                    "signature": b64encode(self.signer.sign(message)),
                }
            )
        )
        return await asyncio.wait_for(future, 30)

    async def next(self, timeout: float | None = None) -> Post:
        item = await asyncio.wait_for(self._incoming.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    async def posts(self) -> AsyncIterator[Post]:
        while True:
            yield await self.next()

    async def drop_connection(self) -> None:
        """Close the socket as a network failure would (the board resumes on its own)."""
        if self._socket is not None:
            await self._socket.close()

    async def close(self) -> None:
        self._closed = True
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class MediaChannel:
    """One participant's media connection: send frames, receive everyone else's."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket

    async def send(self, kind: MediaKind, frame: bytes) -> None:
        await self._socket.send(bytes([kind]) + frame)

    async def receive(self) -> tuple[MediaKind, bytes]:
        """The next frame from another participant: (media kind, SFrame bytes)."""
        while True:
            message = await self._socket.recv()
            if isinstance(message, bytes):
                return MediaKind(message[0]), message[1:]

    async def close(self) -> None:
        await self._socket.close()
