"""Conference service fixtures: the real stack on loopback (one per test module, whose
conference service a test may stop and start again: ``conf.stack.services``),
``Person``s registered at its key service over HTTP (no escrow PBKDF2: the conference
service only cares about devices), raw WebSocket helpers that speak the wire protocol
themselves (``conf.join_media`` does what a relay connection needs: a group, an
announce, a membership capability), and ``serve`` to run extra conference-service
replicas with their own settings. The board stores only bodies that are their kind's
message in canonical form: ``conf.chat(text)`` is one for a test whose posts may be
anything.
"""

import asyncio
import contextlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from veil.bench.keyserver import PLACEHOLDER_ESCROW
from veil.client.conference import Board, StateCallback, membership_path
from veil.client.keyserver import (
    KeyServerClient,
    add_member_body,
    create_group_body,
    device_keys_body,
)
from veil.conference import ConferenceSettings
from veil.crypto import schnorr
from veil.crypto.keys import PrivateKey, PublicKey
from veil.crypto.schedule import SENDER_LIMIT, media_kid
from veil.crypto.sframe import encode_header
from veil.crypto.signing import SigningKey, VerifyingKey
from veil.idp import DevIdentityProvider
from veil.protocol import (
    CONFERENCE_AUDIENCE,
    KEYSERVER_AUDIENCE,
    MediaKind,
    b64decode,
    b64encode,
    group_proof_message,
    hello_message,
    post_message,
    sign_request,
)
from veil.protocol.board import Announce, Chat
from veil.stack import Endpoints, ThreadedStack, threaded_stack


def chat(text: bytes) -> bytes:
    """A well-formed ``chat`` body carrying ``text`` as its sealed bytes: what a test
    posts when any post will do (the board refuses a body that is not its kind's
    message in canonical form: 400 ``bad_body``)."""
    return bytes(Chat(0, 0, text))


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Stack:
    endpoints: Endpoints
    idp: DevIdentityProvider
    data_dir: Path
    services: ThreadedStack
    """To stop and start the conference service (``stop_conference``, ...)."""

    def settings(self, database_url: str, **overrides: Any) -> ConferenceSettings:
        """Settings for another conference service on this stack's IdP and key service."""
        values: dict[str, Any] = {
            "keyserver_url": self.endpoints.keyserver_url,
            "issuer": self.idp.issuer,
            "audience": CONFERENCE_AUDIENCE,
            "jwks": self.idp.jwks(),
        }
        return ConferenceSettings(database_url=database_url, **{**values, **overrides})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    idp = DevIdentityProvider(audience=CONFERENCE_AUDIENCE)  # tokens for this service
    data_dir = tmp_path_factory.mktemp("stack")
    with threaded_stack(data_dir, idp=idp) as services:
        yield Stack(services.endpoints, idp, data_dir, services)


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn on a loopback port in a background thread; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the conference service did not start")
        time.sleep(0.02)
    host, port = sock.getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@dataclass
class Person:
    """A user with a registered device, made over the key service's real HTTP API."""

    user_id: str
    stack: Stack
    user_key: PrivateKey = field(default_factory=PrivateKey.generate)
    signer: SigningKey = field(default_factory=SigningKey.generate)
    device_id: str = ""
    master: PublicKey | None = None
    _signers: dict[str, tuple[str, VerifyingKey]] = field(default_factory=dict)

    def token(self, audience: str = CONFERENCE_AUDIENCE) -> str:
        return self.stack.idp.issue(self.user_id, aud=audience)

    async def tokens(self) -> str:
        return self.token()

    def _http(self) -> httpx.Client:
        return httpx.Client(base_url=self.stack.endpoints.keyserver_url, timeout=30)

    def register(self) -> "Person":
        with self._http() as http:
            response = http.post(
                "/v1/users",
                headers={"Authorization": f"Bearer {self.token(KEYSERVER_AUDIENCE)}"},
                json={
                    "public_key": b64encode(bytes(self.user_key.public_key)),
                    "escrow": b64encode(PLACEHOLDER_ESCROW),
                },
            )
            assert response.status_code == 201, response.text
        self.master = PublicKey.from_bytes(b64decode(response.json()["master_public_key"]))
        self.device_id = self.add_device(self.signer)
        return self

    def add_device(self, signer: SigningKey) -> str:
        """Register a device with ``signer`` as its signing key; returns its id."""
        assert self.master is not None
        token = self.token(KEYSERVER_AUDIENCE)
        body = device_keys_body(
            token,
            user_id=self.user_id,
            user_key=self.user_key,
            master=self.master,
            device_key=PrivateKey.generate().public_key,
            signer=signer,
            now=int(time.time()),
        )
        with self._http() as http:
            response = http.post(
                "/v1/devices", headers={"Authorization": f"Bearer {token}"}, json=body
            )
        assert response.status_code == 201, response.text
        return str(response.json()["device_id"])

    def signed(
        self, method: str, path: str, body: Any = None, *, query: str = ""
    ) -> httpx.Response:
        """A request to the key service signed by this person's first device."""
        raw = b"" if body is None else json.dumps(body).encode()
        now = int(time.time())
        headers = sign_request(self.signer, self.device_id, method, path, query, raw, now)
        headers["content-type"] = "application/json"
        with self._http() as http:
            url = f"{path}?{query}" if query else path
            return http.request(method, url, content=raw, headers=headers)

    def revoke(self, device_id: str) -> None:
        """Revoke one of this user's devices."""
        response = self.signed("DELETE", f"/v1/devices/{device_id}")
        assert response.status_code == 200, response.text

    def create_group(self, group_id: str) -> PrivateKey:
        """Create a group at the key service (this person its admin); returns its key."""
        assert self.master is not None
        group_key = PrivateKey.generate()
        body = create_group_body(
            group_id,
            group_key,
            user_id=self.user_id,
            master=self.master,
            signer=self.signer,
            now=int(time.time()),
        )
        response = self.signed("POST", "/v1/groups", body)
        assert response.status_code == 201, response.text
        return group_key

    def add_member(self, group_id: str, group_key: PrivateKey, member: "Person") -> None:
        """As the group's admin, add ``member`` to it."""
        assert member.master is not None
        body = add_member_body(
            group_id,
            group_key,
            user_id=member.user_id,
            master=member.master,
            signer=self.signer,
            now=int(time.time()),
        )
        response = self.signed("POST", f"/v1/groups/{group_id}/members", body)
        assert response.status_code == 201, response.text

    def remove_member(self, group_id: str, group_key: PrivateKey, user_id: str) -> None:
        """As the group's admin, remove ``user_id`` from it."""
        now = int(time.time())
        proof = schnorr.sign(
            group_proof_message("remove-member", group_id, user_id, now), group_key
        )
        query = f"timestamp={now}&proof={b64encode(bytes(proof))}"
        response = self.signed("DELETE", f"/v1/groups/{group_id}/members/{user_id}", query=query)
        assert response.status_code == 200, response.text

    def membership(
        self, room_id: str, *, device_id: str | None = None, signer: SigningKey | None = None
    ) -> dict[str, str]:
        """A membership capability for the relay: a signed key-service request."""
        return sign_request(
            signer or self.signer,
            device_id or self.device_id,
            "GET",
            membership_path(room_id),
            "",
            b"",
            int(time.time()),
        )

    async def capability(self, room_id: str) -> dict[str, str]:
        """``membership`` as the SDK's media channel asks for it (once per connection)."""
        return self.membership(room_id)

    async def lookup(self, device_id: str) -> tuple[str, VerifyingKey]:
        """The SDK board's key lookup, against the real key service."""
        if device_id not in self._signers:
            async with httpx.AsyncClient(base_url=self.stack.endpoints.keyserver_url) as http:
                record = await KeyServerClient(http).device_record(device_id)
            self._signers[device_id] = (record.user_id, record.signing_key)
        return self._signers[device_id]

    def board(
        self,
        room_id: str,
        conference_url: str | None = None,
        *,
        device_id: str | None = None,
        signer: SigningKey | None = None,
        on_state: StateCallback | None = None,
    ) -> Board:
        """The SDK's board client for this person (not connected yet)."""
        return Board(
            conference_url or self.stack.endpoints.conference_url,
            room_id,
            device_id or self.device_id,
            signer or self.signer,
            self.tokens,
            self.lookup,
            time.time,
            on_state=on_state,
        )

    def post(
        self,
        room_id: str,
        kind: str = "chat",
        body: bytes | None = None,
        *,
        timestamp: int | None = None,
        signer: SigningKey | None = None,
        signed_room: str | None = None,
        post_id: bytes | None = None,
        device_id: str | None = None,
    ) -> dict[str, Any]:
        """A board post as the wire carries it (``body`` by default a well-formed chat
        body); the keyword arguments forge it (or make it another of this person's
        devices')."""
        body = chat(b"hello") if body is None else body
        post_id = post_id or secrets.token_bytes(16)
        timestamp = int(time.time()) if timestamp is None else timestamp
        message = post_message(
            signed_room or room_id, post_id, kind, device_id or self.device_id, timestamp, body
        )
        return {
            "type": "post",
            "post_id": b64encode(post_id),
            "kind": kind,
            "body": b64encode(body),
            "timestamp": timestamp,
            "signature": b64encode((signer or self.signer).sign(message)),
        }


@dataclass(frozen=True)
class Joined:
    """A raw relay connection: its socket, the relay's answer, the sender it announced."""

    socket: ClientConnection
    reply: dict[str, Any]
    sender: int


def ws_url(base_url: str, path: str) -> str:
    return base_url.replace("http://", "ws://", 1) + path


class Kit:
    """What the conference tests share (they cannot import this module: pytest runs
    with --import-mode=importlib), handed out as the ``conf`` fixture."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.url = stack.endpoints.conference_url
        self.serve = serve
        self.answers = answers
        self.chat = chat

    def person(self, prefix: str = "user") -> Person:
        """A new user (unique name) with one registered device."""
        return Person(f"{prefix}-{secrets.token_hex(4)}", self.stack).register()

    @staticmethod
    def room() -> str:
        return f"room-{secrets.token_hex(6)}"

    def settings(self, database_url: str, **overrides: Any) -> ConferenceSettings:
        return self.stack.settings(database_url, **overrides)

    async def open(
        self,
        channel: str,
        room_id: str,
        person: Person,
        *,
        base_url: str | None = None,
        device_id: str | None = None,
        signer: SigningKey | None = None,
        token: str | None = None,
        signed_room: str | None = None,
        connect_options: dict[str, Any] | None = None,
        **extra: Any,
    ) -> tuple[ClientConnection, dict[str, Any]]:
        """Connect to a room's ``board`` or ``media`` and send the hello ourselves;
        returns the socket and the server's answer (welcome or error). The keywords
        forge the hello."""
        socket_ = await connect(
            ws_url(base_url or self.url, f"/v1/rooms/{room_id}/{channel}"),
            compression=None,
            max_size=1 << 21,
            open_timeout=10,
            **(connect_options or {}),
        )
        challenge = json.loads(await socket_.recv())
        assert challenge["type"] == "challenge"
        device_id = device_id or person.device_id
        message = hello_message(
            signed_room or room_id, channel, b64decode(challenge["challenge"]), device_id
        )
        hello = {
            "type": "hello",
            "token": person.token() if token is None else token,
            "device_id": device_id,
            "signature": b64encode((signer or person.signer).sign(message)),
            **extra,
        }
        await socket_.send(json.dumps(hello))
        return socket_, json.loads(await socket_.recv())

    def meeting(self, *people: Person) -> str:
        """A new room whose group exists at the key service: the first person its admin,
        all of them members."""
        room_id = self.room()
        group_key = people[0].create_group(room_id)
        for person in people:
            people[0].add_member(room_id, group_key, person)
        return room_id

    async def announce(
        self,
        room_id: str,
        person: Person,
        sender: int | None = None,
        *,
        base_url: str | None = None,
        device_id: str | None = None,
        signer: SigningKey | None = None,
    ) -> int:
        """Post an ``announce`` of ``sender`` (random if not given) on the room's board
        from the person's device (or another of theirs); returns the sender."""
        sender = secrets.randbelow(SENDER_LIMIT) if sender is None else sender
        board, welcome = await self.open(
            "board", room_id, person, base_url=base_url, device_id=device_id, signer=signer
        )
        assert welcome["type"] == "welcome", welcome
        post = person.post(
            room_id, Announce.KIND, bytes(Announce(sender)), device_id=device_id, signer=signer
        )
        await board.send(json.dumps(post))
        answer = await self.answer(board)
        assert answer["type"] == "ack", answer
        await board.close()
        return sender

    async def join_media(
        self,
        room_id: str,
        person: Person,
        *,
        sender: int | None = None,
        announce: bool = True,
        membership: dict[str, str] | None = None,
        base_url: str | None = None,
        device_id: str | None = None,
        signer: SigningKey | None = None,
        **extra: Any,
    ) -> Joined:
        """Open a relay connection as a participant does: announce ``sender`` on the
        board (unless ``announce`` is false), then send the media hello with it and a
        fresh membership capability (or the ``membership`` given). The room's group
        must hold the person (``meeting``) for the relay to admit them."""
        device = {"device_id": device_id, "signer": signer}
        if announce:
            sender = await self.announce(room_id, person, sender, base_url=base_url, **device)
        elif sender is None:
            sender = secrets.randbelow(SENDER_LIMIT)
        capability = person.membership(room_id, **device) if membership is None else membership
        socket_, reply = await self.open(
            "media", room_id, person, base_url=base_url, sender=sender, membership=capability,
            **device, **extra,
        )  # fmt: skip
        return Joined(socket_, reply, sender)

    @staticmethod
    def frame(
        sender: int,
        payload: bytes = b"payload",
        *,
        kind: MediaKind = MediaKind.AUDIO,
        ctr: int = 0,
        epoch: int = 0,
    ) -> bytes:
        """What a participant sends: a routing byte, then an SFrame header for
        ``sender``'s KID and counter, then ``payload`` (standing for the ciphertext:
        the relay never reads it)."""
        return bytes([kind]) + encode_header(media_kid(epoch=epoch, sender=sender), ctr) + payload

    @staticmethod
    def relayed(frame: bytes, origin: str) -> bytes:
        """``frame`` as the relay forwards it: its origin device inserted after the kind."""
        return frame[:1] + bytes([len(origin)]) + origin.encode() + frame[1:]

    @staticmethod
    async def receive(socket_: ClientConnection, timeout: float = 5) -> dict[str, Any]:
        """The next message, which must be JSON text."""
        message = await asyncio.wait_for(socket_.recv(), timeout)
        assert isinstance(message, str), message
        data: dict[str, Any] = json.loads(message)
        return data

    async def answer(self, socket_: ClientConnection, timeout: float = 5) -> dict[str, Any]:
        """The next ``ack`` or ``error`` on a board socket (posts fanned out to it skipped)."""
        while True:
            message = await self.receive(socket_, timeout)
            if message["type"] in ("ack", "error"):
                return message

    async def posts(
        self, socket_: ClientConnection, count: int, timeout: float = 5
    ) -> list[dict[str, Any]]:
        """The next ``count`` posts on a board socket (acks skipped)."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            message = await self.receive(socket_, timeout)
            if message["type"] == "post":
                found.append(message["post"])
        return found

    async def refused(self, socket_: ClientConnection, close_code: int) -> str:
        """Wait for the server to close after an error; checks the close code and
        returns the close reason (the error code)."""
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(socket_.recv(), 5)
        assert socket_.close_code == close_code, (socket_.close_code, socket_.close_reason)
        return str(socket_.close_reason)

    @staticmethod
    async def silent(socket_: ClientConnection, timeout: float = 0.3) -> bool:
        """True if nothing arrives within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(socket_.recv(), timeout)
        except TimeoutError:
            return True
        return False


@pytest.fixture
def conf(stack: Stack) -> Kit:
    return Kit(stack)
