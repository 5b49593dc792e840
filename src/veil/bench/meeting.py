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

The pairwise keys travel on the board like Veil's key post, in posts of at most
``PAIRWISE_PER_POST`` wrapped keys (a board post is limited to 64 KiB), and every
device receives all of them, as on any broadcast channel.
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
from veil.client.conference import open_socket, ws_url
from veil.client.keyserver import KeyServerClient, result
from veil.client.meeting import Meeting, MeetingTimers
from veil.crypto.keys import PrivateKey
from veil.crypto.pre import EncryptedValue, decrypt
from veil.crypto.signing import SigningKey
from veil.protocol import CONFERENCE_AUDIENCE, b64decode, b64encode, sign_request

PAIRWISE_PER_POST = 256
_RAW = PublicFormat.Raw


def _wrap_key(shared: bytes, meeting_id: str, epoch: int, device_id: str) -> bytes:
    info = f"veil-bench pairwise {meeting_id} {epoch} {device_id}".encode()
    return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(shared)


# --- the services -------------------------------------------------------------------------


def _start_services(folder: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    command = [
        sys.executable, "-m", "veil.cli", "serve", "--port", "0",
        "--data-dir", str(folder), "--transform-workers", "1",
    ]  # fmt: skip
    process = subprocess.Popen(  # noqa: S603
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise RuntimeError("veil serve did not start")
    return process, json.loads(line)


async def _token(http: httpx.AsyncClient, idp_url: str, user: str, audience: str) -> str:
    response = await http.post(f"{idp_url}/token", json={"sub": user, "audience": audience})
    return str(response.json()["token"])


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
            semaphore = asyncio.Semaphore(16)
            await asyncio.gather(*(self._register(i, semaphore) for i in range(self.count)))
            pubs = {d["device_id"]: d["x25519"].public_key().public_bytes(Encoding.Raw, _RAW)
                    for d in self.devices}  # fmt: skip
            self.conn.send(("ready", [d["user"] for d in self.devices], pubs))
            meeting_id = await asyncio.get_running_loop().run_in_executor(None, self.conn.recv)
            sockets = await asyncio.gather(
                *(self._connect(d, meeting_id, semaphore) for d in self.devices)
            )
            self.conn.send(("connected",))
            asyncio.get_running_loop().create_task(self._hear_the_host())
            await asyncio.gather(
                *(
                    self._listen(d, s, meeting_id)
                    for d, s in zip(self.devices, sockets, strict=True)
                )
            )

    async def _register(self, index: int, semaphore: asyncio.Semaphore) -> None:
        async with semaphore:
            user = f"bench-{index}-{secrets.token_hex(3)}"
            user_key, device_key, signer = (
                PrivateKey.generate(),
                PrivateKey.generate(),
                SigningKey.generate(),
            )
            client = KeyServerClient(self.http)
            _, master = await client.create_user(
                await _token(self.http, self.urls["idp_url"], user, client.audience),
                user_key.public_key,
                PLACEHOLDER_ESCROW,
            )
            token = await _token(self.http, self.urls["idp_url"], user, client.audience)
            device_id = await client.add_device(
                token, user_id=user, user_key=user_key, master=master,
                device_key=device_key.public_key, signer=signer,
            )  # fmt: skip
            self.devices.append({
                "user": user, "device_id": device_id, "device_key": device_key,
                "signer": signer, "x25519": X25519PrivateKey.generate(),
            })  # fmt: skip

    async def _connect(
        self, device: dict[str, Any], meeting_id: str, semaphore: asyncio.Semaphore
    ) -> Any:
        async with semaphore:
            url = ws_url(self.urls["conference_url"], f"/v1/rooms/{meeting_id}/board")
            token = await _token(
                self.http, self.urls["idp_url"], device["user"], CONFERENCE_AUDIENCE
            )
            return await open_socket(
                url, meeting_id, "board", token, device["device_id"], device["signer"], since=0
            )

    def _report(self, kind: str, epoch: int, done: float, received: int) -> None:
        rows = self.reports.setdefault((kind, epoch), [])
        rows.append((done, received))
        if len(rows) == self.count:
            self.conn.send(("done", kind, epoch, rows))

    async def _listen(self, device: dict[str, Any], socket: Any, meeting_id: str) -> None:
        pairwise_bytes: dict[int, int] = {}
        async for raw in socket:
            await self.resumed.wait()
            message = json.loads(raw)
            if message.get("type") != "post":
                continue
            post = message["post"]
            body = json.loads(b64decode(post["body"]))
            if post["kind"] == "key":
                epoch = int(body["epoch"])
                await self._gate("veil", epoch).wait()
                received = len(raw) + await self._transform(device, meeting_id, body)
                self._report("veil", epoch, time.time(), received)
            elif post["kind"] == "notice" and "pairwise" in body:
                epoch = int(body["pairwise"])
                pairwise_bytes[epoch] = pairwise_bytes.get(epoch, 0) + len(raw)
                mine = body["keys"].get(device["device_id"])
                if mine is not None:
                    await self._gate("pairwise", epoch).wait()
                    device["pairwise_done"] = (
                        epoch,
                        time.time(),
                        self._unwrap(device, meeting_id, epoch, body, mine),
                    )
                if body["last"] and "pairwise_done" in device:
                    epoch_done, when, _ = device.pop("pairwise_done")
                    self._report("pairwise", epoch_done, when, pairwise_bytes.pop(epoch))

    async def _transform(
        self, device: dict[str, Any], meeting_id: str, body: dict[str, Any]
    ) -> int:
        origin = EncryptedValue.from_bytes(b64decode(body["encrypted_key"])).verify()
        request = json.dumps(
            {"encrypted_key": body["encrypted_key"], "group_id": meeting_id}
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
        value = EncryptedValue.from_bytes(b64decode(data["encrypted_key"])).verify()
        decrypt(value, device["device_key"], origin=origin)
        return len(response.content)

    @staticmethod
    def _unwrap(
        device: dict[str, Any], meeting_id: str, epoch: int, body: dict[str, Any], mine: str
    ) -> bytes:
        shared = device["x25519"].exchange(
            X25519PublicKey.from_public_bytes(b64decode(body["ephemeral"]))
        )
        wrapped = b64decode(mine)
        key = _wrap_key(shared, meeting_id, epoch, device["device_id"])
        return AESGCM(key).decrypt(wrapped[:12], wrapped[12:], meeting_id.encode())


# --- the host (this process) -----------------------------------------------------------------


async def _pairwise_rekey(meeting: Meeting, epoch: int, devices: dict[str, bytes]) -> None:
    """The alternative: a fresh 32-byte key wrapped for each device, posted in chunks."""
    session_key = os.urandom(32)
    ephemeral = X25519PrivateKey.generate()
    public = b64encode(ephemeral.public_key().public_bytes(Encoding.Raw, _RAW))
    wrapped: dict[str, str] = {}
    for device_id, device_public in devices.items():
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(device_public))
        nonce = os.urandom(12)
        key = _wrap_key(shared, meeting.meeting_id, epoch, device_id)
        wrapped[device_id] = b64encode(
            nonce + AESGCM(key).encrypt(nonce, session_key, meeting.meeting_id.encode())
        )
    items = list(wrapped.items())
    for start in range(0, len(items), PAIRWISE_PER_POST):
        chunk = dict(items[start : start + PAIRWISE_PER_POST])
        last = start + PAIRWISE_PER_POST >= len(items)
        body = {"pairwise": epoch, "ephemeral": public, "keys": chunk, "last": last}
        await meeting.board.post("notice", json.dumps(body).encode())


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
            return await _token(http, urls["idp_url"], "bench-host", audience)

        host = await Device.initialize(
            keyserver_url=urls["keyserver_url"], conference_url=urls["conference_url"],
            tokens=token, store=MemoryDeviceStore(secrets.token_bytes(32)),
        )  # fmt: skip
        async with host:
            _, users, x25519 = await _from_devices(conn)
            timers = MeetingTimers(rekey_interval=1e9)
            meeting = await Meeting.start(host, invitees=users, timers=timers)
            conn.send(meeting.meeting_id)
            await _from_devices(conn)  # every device is on the board
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
                        await _pairwise_rekey(meeting, epoch, x25519)
                    host_cpu = time.process_time() - cpu
                    conn.send(("go", kind, epoch))
                    _, got_kind, got_epoch, rows = await _from_devices(conn)
                    assert (got_kind, got_epoch) == (kind, epoch), (got_kind, got_epoch)
                    to_all = max(done for done, _ in rows) - started
                    per_device = statistics.median(received for _, received in rows)
                    samples[kind].append((host_cpu * 1000, to_all * 1000, per_device))
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
        services, urls = _start_services(Path(folder))
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        receivers = context.Process(target=receivers_main, args=(child, urls, participants - 1))
        receivers.start()
        try:
            measured = asyncio.run(_host(parent, urls, rounds))
        finally:
            receivers.kill()
            receivers.join(10)
            services.send_signal(signal.SIGINT)
            try:
                services.wait(20)
            except subprocess.TimeoutExpired:
                services.kill()
    return {"participants": participants, "rounds": rounds, **measured}
