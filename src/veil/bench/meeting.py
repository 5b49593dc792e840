"""``veil bench meeting``: one leave-triggered rekey in a real meeting of N devices,
Veil against the seed's "common alternative" (the host encrypts the new key pairwise
to every device with X25519 + AES-GCM), measured in the same run.

Three processes, so each number belongs to one party: the services (``veil serve``,
one process plus its transform process), the host (this process: a real SDK
``Meeting``), and the other N - 1 devices (one process of real SDK key-service and
board clients). For each rekey:

- ``host_cpu_ms``: CPU time of the host process for the rekey (Veil: read the group,
  encrypt the new key once to it, sign and post; pairwise: one X25519 + HKDF +
  AES-GCM per device, sign and post the wrapped keys);
- ``rekey_to_all_ms``: wall time from the moment the host starts the rekey until the
  last device holds the new key (Veil: the key post arrives, the key service
  transforms it group -> user -> device, the device decrypts it; pairwise: the
  wrapped keys arrive, the device unwraps its own);
- ``bytes_per_device``: bytes each device received for it (median over devices):
  the board messages that carried it, plus, for Veil, the transform response.

All three parties share this machine's cores, where in a deployment each has its own:
so that the host's CPU is not inflated by the devices' work competing for the same
cores and caches, the devices pause before each rekey (they leave what they receive
unread) and resume when the host's rekey call returns (a few milliseconds after the
post; ``rekey_to_all_ms`` still counts from the start of the host's rekey).

The pairwise alternative is not part of Veil's protocol, and the board takes only
Veil's message kinds (``veil.protocol.board``). So the benchmark carries it in a
carrier of its own, sized like the real thing: the host posts the wrapped keys as
``chat`` posts (``Chat``: the round as ``epoch``, the host's announced sender,
``sealed`` = the wrapped keys in a compact binary form, ``_pack_pairwise``) on a
room of their own at the conference service, ``<meeting id>-pairwise``, in posts of
at most ``PAIRWISE_PER_POST`` wrapped keys (a board post is limited to 64 KiB). Every
device reads that room's board and receives all of them, as on any broadcast
channel. (No Veil client reads that room, and no Veil client would take these posts
for chat: they are sealed under no chat key.)

The devices read the boards raw (WebSocket) and do what a Veil client does with a key
post, no less: parse it strictly (``KeyPost.parse``), check that its ciphertext was
signed by the host's device (its signing key as the key service publishes it), have it
transformed, check that the transformed value is signed by the key service's transform
signer (``KeyServerClient.transformed``), and decrypt it with the origin check. They
skip what a full client adds on top (the post's own signature, the proof with the
group key), which costs the pairwise device alike (it would check the host's
signature too). They do not announce: they never send media, so the relay, which
admits only announced senders, is not involved, and the host's meeting only names
no deputy.
"""

import asyncio
import json
import multiprocessing
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from veil.bench.keyserver import PLACEHOLDER_ESCROW
from veil.client import Device, MemoryDeviceStore
from veil.client.conference import Board, open_socket, ws_url
from veil.client.keyserver import KeyServerClient, result
from veil.client.meeting import Meeting, MeetingTimers
from veil.crypto.keys import PrivateKey
from veil.crypto.pre import EncryptedValue, decrypt
from veil.crypto.signing import SigningKey
from veil.protocol import CONFERENCE_AUDIENCE, b64decode, b64encode, sign_request
from veil.protocol.board import Chat, KeyPost

PAIRWISE_PER_POST = 256
_RAW = PublicFormat.Raw


def _wrap_key(shared: bytes, meeting_id: str, epoch: int, device_id: str) -> bytes:
    info = f"veil-bench pairwise {meeting_id} {epoch} {device_id}".encode()
    return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(shared)


# --- the services -------------------------------------------------------------------------


def start_services(
    folder: Path, *, transform_workers: int = 1
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``veil serve`` (the dev IdP, the key service and the conference service in one
    process, plus its transform processes) on free loopback ports, SQLite in ``folder``;
    the process and its endpoints (``idp_url``, ``keyserver_url``, ``conference_url``)."""
    command = [
        sys.executable, "-m", "veil.cli", "serve", "--port", "0",
        "--data-dir", str(folder), "--transform-workers", str(transform_workers),
    ]  # fmt: skip
    errors = tempfile.TemporaryFile()  # noqa: SIM115 (read only if it fails to start)
    process = subprocess.Popen(  # noqa: S603
        command, stdout=subprocess.PIPE, stderr=errors, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        process.wait()
        errors.seek(0)
        said = errors.read().decode(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError("veil serve did not start: " + " | ".join(said))
    errors.close()  # the file lives on, unnamed, while the process writes to it
    return process, json.loads(line)


def stop_services(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


async def dev_token(http: httpx.AsyncClient, idp_url: str, user: str, audience: str) -> str:
    """A token from the dev IdP, asked again if a kept-alive connection was closed under
    the request (as any token source of an application would)."""
    for attempt in range(3):
        try:
            response = await http.post(f"{idp_url}/token", json={"sub": user, "audience": audience})
            return str(result(response)["token"])
        except httpx.TransportError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


# --- the pairwise carrier -----------------------------------------------------------------

_DEVICE_ID_BYTES = 16  # a device id is 32 hex digits
_WRAPPED_BYTES = 12 + 32 + 16  # nonce || AES-256-GCM(32-byte key) || tag
_ENTRY_BYTES = _DEVICE_ID_BYTES + _WRAPPED_BYTES


def _pack_pairwise(ephemeral: bytes, wrapped: dict[str, bytes], *, last: bool) -> bytes:
    """``ephemeral X25519 key (32) || last (1) || (device id (16) || wrapped key (60))*``."""
    entries = b"".join(bytes.fromhex(device) + key for device, key in wrapped.items())
    return ephemeral + bytes([last]) + entries


def _unpack_pairwise(sealed: bytes) -> tuple[bytes, bool, dict[str, bytes]]:
    ephemeral, last, entries = sealed[:32], sealed[32] == 1, sealed[33:]
    if len(ephemeral) != 32 or len(entries) % _ENTRY_BYTES:
        raise ValueError("not a pairwise chunk")
    wrapped = {
        entries[i : i + _DEVICE_ID_BYTES].hex(): entries[i + _DEVICE_ID_BYTES : i + _ENTRY_BYTES]
        for i in range(0, len(entries), _ENTRY_BYTES)
    }
    return ephemeral, last, wrapped


def pairwise_room(meeting_id: str) -> str:
    """The conference-service room that carries the benchmark's pairwise alternative."""
    return f"{meeting_id}-pairwise"


# --- the other devices (their own process) ----------------------------------------------------


def receivers_main(conn: Connection, urls: dict[str, str], count: int) -> None:
    asyncio.run(_Receivers(conn, urls, count).main())


class _Receivers:
    def __init__(self, conn: Connection, urls: dict[str, str], count: int) -> None:
        self.conn, self.urls, self.count = conn, urls, count
        self.devices: list[dict[str, Any]] = []
        self.reports: dict[tuple[str, int], list[tuple[float, int]]] = {}
        self.released: dict[tuple[str, int], asyncio.Event] = {}
        self.resumed = asyncio.Event()  # cleared while the host is timing its rekey
        self.resumed.set()

    def _gate(self, kind: str, epoch: int) -> asyncio.Event:
        return self.released.setdefault((kind, epoch), asyncio.Event())

    async def _hear_the_host(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await loop.run_in_executor(None, self.conn.recv)
            if message == ("pause",):
                self.resumed.clear()
                self.conn.send(("paused",))
                continue
            _, kind, epoch = message
            self._gate(kind, epoch).set()
            self.resumed.set()

    async def main(self) -> None:
        try:
            await self.run()
        except BaseException as exc:  # the host must hear of it, not wait forever
            self.conn.send(("failed", f"{type(exc).__name__}: {exc!r}"))
            raise

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=self.urls["keyserver_url"], timeout=600, limits=limits
        ) as http:
            self.http = http
            self.keyserver = KeyServerClient(http)
            semaphore = asyncio.Semaphore(16)
            await asyncio.gather(*(self._register(i, semaphore) for i in range(self.count)))
            pubs = {d["device_id"]: d["x25519"].public_key().public_bytes(Encoding.Raw, _RAW)
                    for d in self.devices}  # fmt: skip
            self.conn.send(("ready", [d["user"] for d in self.devices], pubs))
            loop = asyncio.get_running_loop()
            meeting_id, host_device = await loop.run_in_executor(None, self.conn.recv)
            # Whose ciphertexts a key post may carry: the host device's, as published.
            self.host_device = host_device
            self.host_signer = (await self.keyserver.device_record(host_device)).signing_key
            await self.keyserver.transform_signer()  # asked once, before any timing
            rooms = (meeting_id, pairwise_room(meeting_id))
            sockets = await asyncio.gather(
                *(self._connect(d, room, semaphore) for d in self.devices for room in rooms)
            )
            self.conn.send(("connected",))
            hearing = loop.create_task(self._hear_the_host())
            listeners = []
            for index, device in enumerate(self.devices):
                veil, pairwise = sockets[2 * index], sockets[2 * index + 1]
                listeners.append(self._listen_veil(device, veil, meeting_id))
                listeners.append(self._listen_pairwise(device, pairwise, meeting_id))
            await asyncio.gather(hearing, *listeners)

    async def _register(self, index: int, semaphore: asyncio.Semaphore) -> None:
        async with semaphore:
            user = f"bench-{index}-{secrets.token_hex(3)}"
            user_key, device_key, signer = (
                PrivateKey.generate(),
                PrivateKey.generate(),
                SigningKey.generate(),
            )
            client = self.keyserver
            _, master = await client.create_user(
                await dev_token(self.http, self.urls["idp_url"], user, client.audience),
                user_key.public_key,
                PLACEHOLDER_ESCROW,
            )
            token = await dev_token(self.http, self.urls["idp_url"], user, client.audience)
            device_id = await client.add_device(
                token, user_id=user, user_key=user_key, master=master,
                device_key=device_key.public_key, signer=signer,
            )  # fmt: skip
            self.devices.append({
                "user": user, "device_id": device_id, "device_key": device_key,
                "signer": signer, "x25519": X25519PrivateKey.generate(),
            })  # fmt: skip

    async def _connect(
        self, device: dict[str, Any], room: str, semaphore: asyncio.Semaphore
    ) -> Any:
        async with semaphore:
            url = ws_url(self.urls["conference_url"], f"/v1/rooms/{room}/board")
            token = await dev_token(
                self.http, self.urls["idp_url"], device["user"], CONFERENCE_AUDIENCE
            )
            return await open_socket(
                url, room, "board", token, device["device_id"], device["signer"], since=0
            )

    def _report(self, kind: str, epoch: int, done: float, received: int) -> None:
        rows = self.reports.setdefault((kind, epoch), [])
        rows.append((done, received))
        if len(rows) == self.count:
            self.conn.send(("done", kind, epoch, rows))

    async def _posts(self, socket: Any, kind: str) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        """(message size, post) of each post of ``kind``, read once the host lets the
        devices go on."""
        async for raw in socket:
            await self.resumed.wait()
            message = json.loads(raw)
            if message.get("type") == "post" and message["post"]["kind"] == kind:
                yield len(raw), message["post"]

    async def _listen_veil(self, device: dict[str, Any], socket: Any, meeting_id: str) -> None:
        async for size, post in self._posts(socket, KeyPost.KIND):
            key_post = KeyPost.parse(b64decode(post["body"]))
            await self._gate("veil", key_post.epoch).wait()
            received = size + await self._transform(device, meeting_id, key_post)
            self._report("veil", key_post.epoch, time.time(), received)

    async def _listen_pairwise(self, device: dict[str, Any], socket: Any, meeting_id: str) -> None:
        received: dict[int, int] = {}
        done: tuple[int, float] | None = None
        async for size, post in self._posts(socket, Chat.KIND):
            if post["device_id"] != self.host_device:
                continue
            chunk = Chat.parse(b64decode(post["body"]))
            epoch = chunk.epoch
            received[epoch] = received.get(epoch, 0) + size
            ephemeral, last, wrapped = _unpack_pairwise(chunk.sealed)
            mine = wrapped.get(device["device_id"])
            if mine is not None:
                await self._gate("pairwise", epoch).wait()
                self._unwrap(device, meeting_id, epoch, ephemeral, mine)
                done = (epoch, time.time())
            if last and done is not None:
                epoch_done, when = done
                self._report("pairwise", epoch_done, when, received.pop(epoch))
                done = None

    async def _transform(self, device: dict[str, Any], meeting_id: str, post: KeyPost) -> int:
        origin = EncryptedValue.from_bytes(post.encrypted_key).verify(signer=self.host_signer)
        request = json.dumps(
            {"encrypted_key": b64encode(post.encrypted_key), "group_id": meeting_id}
        ).encode()
        for attempt in range(3):
            headers = sign_request(
                device["signer"], device["device_id"], "POST", "/v1/transform", "", request,
                int(time.time()),
            )  # fmt: skip
            headers["content-type"] = "application/json"
            try:
                response = await self.http.post("/v1/transform", content=request, headers=headers)
                break
            except httpx.TransportError:  # a kept-alive connection the server had closed
                if attempt == 2:
                    raise
        data = result(response)
        value = await self.keyserver.transformed(b64decode(data["encrypted_key"]))
        decrypt(value, device["device_key"], origin=origin)
        return len(response.content)

    @staticmethod
    def _unwrap(
        device: dict[str, Any], meeting_id: str, epoch: int, ephemeral: bytes, wrapped: bytes
    ) -> bytes:
        shared = device["x25519"].exchange(X25519PublicKey.from_public_bytes(ephemeral))
        key = _wrap_key(shared, meeting_id, epoch, device["device_id"])
        return AESGCM(key).decrypt(wrapped[:12], wrapped[12:], meeting_id.encode())


# --- the host (this process) -----------------------------------------------------------------


async def _pairwise_rekey(
    meeting: Meeting, carrier: Board, epoch: int, devices: dict[str, bytes]
) -> None:
    """The alternative: a fresh 32-byte key wrapped for each device, posted in chunks
    on the pairwise room's board."""
    session_key = os.urandom(32)
    ephemeral = X25519PrivateKey.generate()
    public = ephemeral.public_key().public_bytes(Encoding.Raw, _RAW)
    wrapped: dict[str, bytes] = {}
    for device_id, device_public in devices.items():
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(device_public))
        nonce = os.urandom(12)
        key = _wrap_key(shared, meeting.meeting_id, epoch, device_id)
        wrapped[device_id] = nonce + AESGCM(key).encrypt(
            nonce, session_key, meeting.meeting_id.encode()
        )
    items = list(wrapped.items())
    for start in range(0, len(items), PAIRWISE_PER_POST):
        last = start + PAIRWISE_PER_POST >= len(items)
        sealed = _pack_pairwise(public, dict(items[start : start + PAIRWISE_PER_POST]), last=last)
        chunk = Chat(epoch, meeting.sender, sealed)
        await carrier.post(Chat.KIND, bytes(chunk), timeout=meeting.timers.post_timeout)


async def _from_devices(conn: Connection, timeout: float = 900.0) -> Any:
    """The devices' next message; their failure or silence is an error, never a hang."""
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, conn.poll, timeout):
        raise RuntimeError(f"the devices said nothing for {timeout:.0f} s")
    message = conn.recv()
    if isinstance(message, tuple) and message and message[0] == "failed":
        raise RuntimeError(f"the devices failed: {message[1]}")
    return message


async def _host(conn: Connection, urls: dict[str, str], rounds: int) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:

        async def token(audience: str) -> str:
            return await dev_token(http, urls["idp_url"], "bench-host", audience)

        host = await Device.initialize(
            keyserver_url=urls["keyserver_url"], conference_url=urls["conference_url"],
            tokens=token, store=MemoryDeviceStore(secrets.token_bytes(32)),
        )  # fmt: skip
        async with host:
            _, users, x25519 = await _from_devices(conn)
            timers = MeetingTimers(rekey_interval=1e9)
            meeting = await Meeting.start(host, invitees=users, timers=timers)
            carrier = host.board(pairwise_room(meeting.meeting_id))
            await carrier.connect(since=0)
            conn.send((meeting.meeting_id, host.device_id))
            await _from_devices(conn)  # every device is on both boards
            conn.send(("go", "veil", 0))
            # The board replays the epoch-0 key to every device as it connects: wait for them.
            await _from_devices(conn)
            samples: dict[str, list[tuple[float, float, float]]] = {"veil": [], "pairwise": []}
            for round_ in range(1, rounds + 1):
                for kind in ("veil", "pairwise"):
                    conn.send(("pause",))
                    assert await _from_devices(conn) == ("paused",)
                    cpu, started = time.process_time(), time.time()
                    if kind == "veil":
                        await meeting.rekey()
                        epoch = meeting.epoch or 0
                    else:
                        epoch = round_
                        await _pairwise_rekey(meeting, carrier, epoch, x25519)
                    host_cpu = time.process_time() - cpu
                    conn.send(("go", kind, epoch))
                    _, got_kind, got_epoch, rows = await _from_devices(conn)
                    assert (got_kind, got_epoch) == (kind, epoch), (got_kind, got_epoch)
                    to_all = max(done for done, _ in rows) - started
                    per_device = statistics.median(received for _, received in rows)
                    samples[kind].append((host_cpu * 1000, to_all * 1000, per_device))
            await carrier.close()
            await meeting.close(rotate_device_keys=False)
    return {
        kind: {
            "host_cpu_ms": round(statistics.median(s[0] for s in rows), 3),
            "rekey_to_all_ms": round(statistics.median(s[1] for s in rows), 1),
            "bytes_per_device": int(statistics.median(s[2] for s in rows)),
        }
        for kind, rows in samples.items()
    }


def run(participants: int, rounds: int = 3) -> dict[str, Any]:
    """Measure one leave-triggered rekey at ``participants`` devices (host included)."""
    if participants < 2:
        raise ValueError("a meeting needs at least 2 participants")
    with tempfile.TemporaryDirectory(prefix="veil-bench-meeting-") as folder:
        services, urls = start_services(Path(folder))
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        receivers = context.Process(target=receivers_main, args=(child, urls, participants - 1))
        receivers.start()
        try:
            measured = asyncio.run(_host(parent, urls, rounds))
        finally:
            receivers.kill()
            receivers.join(10)
            stop_services(services)
    return {"participants": participants, "rounds": rounds, **measured}
