"""Conference service fixtures: the real stack on loopback (one per test module),
``Person``s registered at its key service over HTTP (no escrow PBKDF2: the conference
service only cares about devices), raw WebSocket helpers that speak the wire protocol
themselves, and ``serve`` to run extra conference-service replicas with their own
settings.
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
from veil.client.conference import Board
from veil.client.keyserver import KeyServerClient, create_group_body, device_keys_body
from veil.conference import ConferenceSettings
from veil.crypto.keys import PrivateKey, PublicKey
from veil.crypto.signing import SigningKey, VerifyingKey
from veil.idp import DevIdentityProvider
from veil.protocol import (
    CONFERENCE_AUDIENCE,
    KEYSERVER_AUDIENCE,
    b64decode,
    b64encode,
    hello_message,
    post_message,
    sign_request,
)
from veil.stack import Endpoints, stack_in_thread


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

    def settings(self, database_url: str, **overrides: Any) -> ConferenceSettings:
        """Settings for another conference service on this stack's IdP and key service."""
        return ConferenceSettings(
            database_url=database_url,
            keyserver_url=self.endpoints.keyserver_url,
            issuer=self.idp.issuer,
            audience=CONFERENCE_AUDIENCE,
            jwks=self.idp.jwks(),
            **overrides,
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    idp = DevIdentityProvider(audience=CONFERENCE_AUDIENCE)  # tokens for this service
    data_dir = tmp_path_factory.mktemp("stack")
    with stack_in_thread(data_dir, idp=idp) as endpoints:
        yield Stack(endpoints, idp, data_dir)


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

    def signed(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """A request to the key service signed by this person's first device."""
        raw = b"" if body is None else json.dumps(body).encode()
        headers = sign_request(self.signer, self.device_id, method, path, "", raw, int(time.time()))
        headers["content-type"] = "application/json"
        with self._http() as http:
            return http.request(method, path, content=raw, headers=headers)

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
        )

    def post(
        self,
        room_id: str,
        kind: str = "chat",
        body: bytes = b"hello",
        *,
        timestamp: int | None = None,
        signer: SigningKey | None = None,
        signed_room: str | None = None,
        post_id: bytes | None = None,
        device_id: str | None = None,
    ) -> dict[str, Any]:
        """A board post as the wire carries it; the keyword arguments forge it (or make
        it another of this person's devices')."""
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
