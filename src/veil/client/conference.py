"""An asyncio client for the conference service: the platform's escrow share, the
message board and the media relay (see ``veil.conference`` for the wire protocol).

Board posts are checked here, end to end: a post is delivered only if its signature
verifies against the poster device's key *as the key service publishes it*, so the
conference service can forge or alter no post. It can still drop, delay or reorder
posts (``seq`` is the service's, not signed): meetings rely on posts' content (epochs,
proofs by the group key), never on their order alone.

Both connections outlive the network. After a drop (a conference-service restart, a
network change) each reconnects with backoff (``veil.client.retry.RECONNECT``)
for as long as it is open: the board resumes from its last ``seq`` (no post lost, none
delivered twice) and resends the posts not acknowledged yet; the media channel opens a
fresh connection with a fresh membership capability. Nothing of this is silent: each
tells its ``on_state`` callback ("connected", "reconnecting", "failed", "closed"), and a
refusal that retrying cannot cure (the device was revoked, the user is not admitted) is
raised to the application and ends the reconnecting.
"""

import asyncio
import contextlib
import json
import logging
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from veil.client.errors import ServiceError, Unavailable, VeilError, service_error
from veil.client.keyserver import send
from veil.client.retry import RECONNECT, Backoff
from veil.crypto.errors import InvalidSignature
from veil.crypto.signing import SigningKey, VerifyingKey
from veil.protocol import (
    CONFERENCE_AUDIENCE,
    MediaKind,
    b64decode,
    b64encode,
    hello_message,
    path_segment,
    post_message,
)

logger = logging.getLogger(__name__)

KeyLookup = Callable[..., Awaitable[tuple[str, VerifyingKey]]]
"""``(device_id, fresh=False)`` -> (its user id, its signing key), from the key service
(cached unless ``fresh``: a device may have rotated its keys)."""
StateCallback = Callable[[str], None]
"""Called with a connection's new state: "connected" (also after each reconnect),
"reconnecting" (the connection dropped; retrying), "failed" (refused for good: the
error is raised to the application) or "closed" (closed by the application)."""
Opener = Callable[[], Awaitable[ClientConnection]]
"""Opens one connection, past the hello; raises the ``ServiceError`` that refused it."""

HANDSHAKE_SECONDS = 10.0
MEDIA_PATH = "/v1/rooms/{room_id}/media"


def membership_path(room_id: str) -> str:
    """The key-service request whose signed headers admit a device to a room's relay
    (``veil.conference.admission``)."""
    return f"/v1/groups/{path_segment(room_id)}/membership"


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
    """A board or media WebSocket, past the hello (``veil.conference.handshake``).
    Whatever keeps it from opening, short of the service's refusal, is ``Unavailable``
    (worth retrying); a refusal is the ``ServiceError`` for its code and status."""
    try:
        # No per-message compression: what travels is ciphertext, which does not compress.
        socket = await connect(
            url, max_size=1 << 20, open_timeout=HANDSHAKE_SECONDS, compression=None
        )
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        cause = str(exc) or type(exc).__name__  # e.g. the refused connection, the status
        raise Unavailable(0, "unreachable", f"{url}: {cause}") from None
    try:
        async with asyncio.timeout(HANDSHAKE_SECONDS):
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
            if not isinstance(welcome, dict):
                raise TypeError("the answer to a hello is a JSON object")
            if welcome.get("type") == "error":
                await socket.wait_closed()  # its close code carries the status
    except (ConnectionClosed, OSError, TimeoutError):
        await socket.close()
        raise Unavailable(0, "closed", "the conference service closed the connection") from None
    except (ValueError, KeyError, TypeError):
        await socket.close()
        raise Unavailable(0, "bad_hello", "the conference service's hello is malformed") from None
    if welcome.get("type") != "error":
        return socket
    code, text = str(welcome.get("code", "refused")), str(welcome.get("message", ""))
    close_code = socket.close_code or 0
    if not 4000 <= close_code < 5000:
        raise Unavailable(0, code, text)  # a refusal without its status: try again
    raise service_error(close_code - 4000, code, text)


class _Link:
    """One connection that opens itself again after a drop: its socket (``None`` while
    down), its state and the application's callback, the backoff, and the refusal
    that ended it, if one did."""

    def __init__(
        self,
        opener: Opener,
        on_state: StateCallback | None,
        *,
        backoff: Backoff = RECONNECT,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._opener, self._on_state = opener, on_state
        self._backoff, self._sleep = backoff, sleep
        self.socket: ClientConnection | None = None
        self.state = "new"
        self.failure: ServiceError | None = None
        self.closed = False
        self._changed = asyncio.Event()

    async def open(self) -> ClientConnection:
        """The first connection (its refusal is raised to the caller)."""
        socket = await self._opener()
        self._set(socket, "connected")
        return socket

    async def reopen(self) -> ClientConnection | None:
        """After a drop: retry until a connection opens (returned), the service refuses
        for good (``None``; ``failure`` says why) or the application closes (``None``)."""
        self._set(None, "reconnecting")
        for delay in self._backoff:
            await self._sleep(delay)
            if self.closed:
                return None
            try:
                socket = await self._opener()
            except Unavailable:
                continue
            except ServiceError as error:
                self.failure = error
                self._set(None, "failed")
                return None
            except Exception:  # the application's token source, say: keep trying, loudly
                logger.warning("reconnecting to the conference service failed", exc_info=True)
                continue
            if self.closed:
                await socket.close()
                return None
            self._set(socket, "connected")
            return socket
        raise AssertionError("unreachable: the delays never end")

    async def until_not(self, socket: ClientConnection | None) -> None:
        """Wait until the link has another socket than ``socket``, failed or closed."""
        while self.socket is socket and self.failure is None and not self.closed:
            changed = self._changed
            await changed.wait()

    async def close(self) -> None:
        self.closed = True
        socket = self.socket
        self._set(None, "closed")
        if socket is not None:
            await socket.close()

    def _set(self, socket: ClientConnection | None, state: str) -> None:
        self.socket, self.state = socket, state
        self._changed.set()
        self._changed = asyncio.Event()
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:
                logger.exception("an on_state callback raised")


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
        on_state: StateCallback | None = None,
    ) -> "Board":
        """A room's board (not connected yet: ``await board.connect()``)."""
        return Board(
            self.base_url, room_id, device_id, signer, token, lookup, clock, on_state=on_state
        )

    async def media(
        self,
        room_id: str,
        *,
        device_id: str,
        signer: SigningKey,
        token: Callable[[], Awaitable[str]],
        sender: int,
        membership: Callable[[], Awaitable[dict[str, str]]],
        on_state: StateCallback | None = None,
    ) -> "MediaChannel":
        """This device's relay connection for a room, open: ``sender`` is the sender
        number it announced on the room's board; ``membership`` makes, for each
        connection, the signed headers of ``GET membership_path(room_id)`` at the key
        service. Raises the ``ServiceError`` that refused the first connection."""
        url = ws_url(self.base_url, MEDIA_PATH.format(room_id=path_segment(room_id)))

        async def opener() -> ClientConnection:
            return await open_socket(
                url, room_id, "media", await token(), device_id, signer,
                sender=sender, membership=await membership(),
            )  # fmt: skip

        channel = MediaChannel(opener, on_state=on_state)
        await channel.connect()
        return channel


@dataclass(frozen=True)
class _Outgoing:
    """A post waiting for the board's acknowledgement (resent after each reconnect)."""

    post_id: bytes
    kind: str
    body: bytes = field(repr=False)
    acked: "asyncio.Future[int]" = field(repr=False, compare=False)


class Board:
    """A room's board: ``next()``/``posts()`` yield every verified post once, in order;
    ``post()`` signs and posts one and returns its ``seq``. Posts that fail
    verification are counted in ``rejected`` and never delivered.

    After ``connect()`` the board stays connected until ``close()``: it reconnects
    with backoff after any drop and resumes from ``last_seq``. A refusal that retrying
    cannot cure (a ``ServiceError`` other than ``Unavailable``: the device was revoked,
    say) ends it: ``next()`` raises it, after the posts delivered before it."""

    def __init__(
        self,
        base_url: str,
        room_id: str,
        device_id: str,
        signer: SigningKey,
        token: Callable[[], Awaitable[str]],
        lookup: KeyLookup,
        clock: Callable[[], float],
        *,
        on_state: StateCallback | None = None,
    ) -> None:
        self.room_id, self.device_id, self.signer = room_id, device_id, signer
        self._url = ws_url(base_url, f"/v1/rooms/{path_segment(room_id)}/board")
        self._token, self._lookup, self._clock = token, lookup, clock
        self.last_seq = 0
        self.rejected = 0
        self._seen: set[str] = set()
        self._link = _Link(self._open, on_state)
        self._incoming: asyncio.Queue[Post | BaseException] = asyncio.Queue()
        self._pending: dict[str, _Outgoing] = {}
        self._runner: asyncio.Task[None] | None = None

    @property
    def state(self) -> str:
        return self._link.state

    async def connect(self, since: int | None = None) -> None:
        """Open the board (from ``since``, else from ``last_seq``); raises the
        ``ServiceError`` that refused it. From then on it reconnects by itself."""
        if self._runner is not None:
            raise RuntimeError("the board is connected already (it reconnects by itself)")
        if since is not None:
            self.last_seq = since
        socket = await self._link.open()
        self._runner = asyncio.create_task(self._run(socket))

    async def _open(self) -> ClientConnection:
        return await open_socket(
            self._url, self.room_id, "board", await self._token(), self.device_id,
            self.signer, since=self.last_seq,
        )  # fmt: skip

    async def _run(self, socket: ClientConnection | None) -> None:
        while socket is not None:
            resend = asyncio.create_task(self._resend(socket))
            try:
                await self._read(socket)
            finally:
                resend.cancel()
            if self._link.closed:
                return
            socket = await self._link.reopen()
        failure = self._link.failure
        if failure is not None:
            for outgoing in self._pending.values():
                if not outgoing.acked.done():
                    outgoing.acked.set_exception(failure)
            await self._incoming.put(failure)

    async def _read(self, socket: ClientConnection) -> None:
        """Deliver what arrives until the connection drops. A post whose poster's key
        cannot be fetched now (the key service is unavailable) drops the connection:
        the board resumes before that post, instead of losing it."""
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
                    await self._receive_post(message)
                elif kind in ("ack", "error") and message.get("post_id") in self._pending:
                    self._answer(message)
                elif kind == "error" and "post_id" not in message:
                    code = str(message.get("code"))[:64]
                    logger.warning("the board is closing this device's connection: %s", code)
        except ConnectionClosed:
            pass
        except Unavailable as error:
            logger.warning("board of %s: %s; resuming", self.room_id, error)
            await socket.close()
        except Exception:  # a key lookup's own failure, say: resume rather than stop
            logger.exception("board of %s: reading failed; resuming", self.room_id)
            await socket.close()

    async def _receive_post(self, message: dict[str, Any]) -> None:
        post = await self._verified(message.get("post"))
        if post is None or post.seq <= self.last_seq:
            return
        self.last_seq = post.seq
        # The service numbers posts, so it could deliver a signed post twice under two
        # numbers: a post id is delivered once.
        post_id = message["post"]["post_id"]
        if post_id in self._seen:
            self.rejected += 1
            return
        self._seen.add(post_id)
        await self._incoming.put(post)

    def _answer(self, message: dict[str, Any]) -> None:
        future = self._pending[message["post_id"]].acked
        if future.done():
            return  # a resent post acknowledged twice
        seq, status = message.get("seq"), message.get("status", 400)
        if message["type"] == "ack" and type(seq) is int:
            future.set_result(seq)
        else:
            future.set_exception(
                service_error(
                    status if type(status) is int else 400,
                    str(message.get("code", "bad_reply")),
                    str(message.get("message", "the board sent a malformed reply")),
                )
            )

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
        except Unavailable:
            raise  # not the post's fault: read it again later
        except (InvalidSignature, ValueError, KeyError, TypeError, OverflowError, VeilError):
            # Malformed (a service that is not conforming, or not honest), forged, or
            # from a device its user's pinned key did not certify.
            self.rejected += 1
            return None
        return Post(seq, kind, user_id, device_id, timestamp, body)

    async def post(self, kind: str, body: bytes, *, timeout: float = 120.0) -> int:
        """Sign and post; returns the post's ``seq`` once the board has stored it.

        While the connection is down the post waits; it is resent after each reconnect
        (same post id, fresh timestamp and signature: the board stores it once) until
        acknowledged. Raises the board's refusal of it (a ``ServiceError``), the
        board's failure, or ``Unavailable`` ``post_timeout`` if ``timeout`` seconds
        pass without an acknowledgement (the post may still land)."""
        if self._link.failure is not None:
            raise self._link.failure
        if self._link.closed or self._runner is None:
            raise RuntimeError("the board is not open: connect() first")
        outgoing = _Outgoing(
            secrets.token_bytes(16), kind, body, asyncio.get_running_loop().create_future()
        )
        key = b64encode(outgoing.post_id)
        self._pending[key] = outgoing
        try:
            async with asyncio.timeout(timeout):
                socket = self._link.socket
                if socket is not None:
                    await self._send(socket, outgoing)
                return await outgoing.acked
        except TimeoutError:
            raise Unavailable(
                0,
                "post_timeout",
                f"the board did not acknowledge a {kind} post within {timeout:g} s "
                "(it may still land)",
            ) from None
        finally:
            self._pending.pop(key, None)

    async def _resend(self, socket: ClientConnection) -> None:
        for outgoing in list(self._pending.values()):
            if not outgoing.acked.done():
                await self._send(socket, outgoing)

    async def _send(self, socket: ClientConnection, outgoing: _Outgoing) -> None:
        timestamp = int(self._clock())
        message = post_message(
            self.room_id, outgoing.post_id, outgoing.kind, self.device_id, timestamp,
            outgoing.body,
        )  # fmt: skip
        with contextlib.suppress(ConnectionClosed):  # resent after the reconnect
            await socket.send(
                json.dumps(
                    {
                        "type": "post",
                        "post_id": b64encode(outgoing.post_id),
                        "kind": outgoing.kind,
                        "body": b64encode(outgoing.body),
                        "timestamp": timestamp,
                        "signature": b64encode(self.signer.sign(message)),
                    }
                )
            )

    async def next(self, timeout: float | None = None) -> Post:
        """The next post; raises the board's failure once the posts before it are read,
        ``RuntimeError`` once the board is closed (and ``TimeoutError`` after
        ``timeout`` seconds without a post)."""
        if self._incoming.empty():
            if self._link.failure is not None:
                raise self._link.failure
            if self._link.closed:
                raise RuntimeError("the board is closed")
        item = await asyncio.wait_for(self._incoming.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    async def posts(self) -> AsyncIterator[Post]:
        while True:
            yield await self.next()

    async def close(self) -> None:
        await self._link.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        closed = Unavailable(0, "closed", "the board was closed before the post was acknowledged")
        for outgoing in self._pending.values():
            if not outgoing.acked.done():
                outgoing.acked.set_exception(closed)
        self._incoming.put_nowait(RuntimeError("the board is closed"))  # wakes a reader


class MediaChannel:
    """One participant's relay connection: ``send()`` frames, ``receive()`` everyone
    else's with the device each came from.

    It reconnects with backoff after a drop, each time with a fresh hello and
    membership capability (``opener``), for as long as it is open. While it is down
    ``send()`` returns False at once (counted in ``dropped_while_disconnected``) and
    ``receive()`` waits; a refusal that retrying cannot cure is raised by
    ``receive()``. Frames the relay reports dropping are counted in ``relay_dropped``
    by reason ("wrong_sender", "bad_frame", "rate_limited")."""

    def __init__(self, opener: Opener, *, on_state: StateCallback | None = None) -> None:
        self._link = _Link(opener, on_state)
        self._watcher: asyncio.Task[None] | None = None
        self.dropped_while_disconnected = 0
        self.malformed = 0
        """Messages from the relay that were not frames in its format (never delivered)."""
        self.relay_dropped: Counter[str] = Counter()

    @property
    def state(self) -> str:
        return self._link.state

    async def connect(self) -> None:
        """Open the channel; raises the ``ServiceError`` that refused it."""
        if self._watcher is not None:
            raise RuntimeError("the media channel is open already (it reconnects by itself)")
        socket = await self._link.open()
        self._watcher = asyncio.create_task(self._watch(socket))

    async def _watch(self, socket: ClientConnection | None) -> None:
        while socket is not None:
            await socket.wait_closed()
            if self._link.closed:
                return
            socket = await self._link.reopen()

    async def send(self, kind: MediaKind, frame: bytes) -> bool:
        """Send one SFrame frame; False (and counted) if the channel is down."""
        socket = self._link.socket
        if socket is not None:
            try:
                await socket.send(bytes([kind]) + frame)
                return True
            except ConnectionClosed:
                pass
        self.dropped_while_disconnected += 1
        return False

    async def receive(self) -> tuple[MediaKind, str, bytes]:
        """The next frame from another participant: (media kind, the device it came
        from as the relay says, SFrame bytes). Waits across reconnects; raises the
        refusal that ended the channel."""
        while True:
            socket = self._link.socket
            if socket is None:
                if self._link.failure is not None:
                    raise self._link.failure
                if self._link.closed:
                    raise RuntimeError("the media channel is closed")
                await self._link.until_not(None)
                continue
            try:
                message = await socket.recv()
            except ConnectionClosed:
                await self._link.until_not(socket)
                continue
            if isinstance(message, str):
                self._notice(message)
                continue
            frame = _relayed(message)
            if frame is None:
                self.malformed += 1
                continue
            return frame

    def _notice(self, text: str) -> None:
        """A notice of frames the relay dropped, or the reason it is closing the
        connection (the reconnect then tells whether that lasts)."""
        try:
            notice = json.loads(text)
            code, dropped = str(notice["code"])[:64], notice.get("dropped")
        except (ValueError, KeyError, TypeError):
            self.malformed += 1
            return
        if type(dropped) is not int or dropped < 1:
            logger.warning("the relay is closing this device's connection: %s", code)
            return
        self.relay_dropped[code] += dropped
        logger.warning("the relay dropped %d of this device's frames: %s", dropped, code)

    async def close(self) -> None:
        await self._link.close()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher


_KINDS = frozenset(int(k) for k in MediaKind)


def _relayed(message: bytes) -> tuple[MediaKind, str, bytes] | None:
    """``kind || n || origin (n bytes, ASCII) || frame`` from the relay, or ``None``."""
    if len(message) < 2 or message[0] not in _KINDS or message[1] == 0:
        return None
    end = 2 + message[1]
    if len(message) <= end:
        return None
    try:
        origin = message[2:end].decode("ascii")
    except UnicodeDecodeError:
        return None
    return MediaKind(message[0]), origin, message[end:]
