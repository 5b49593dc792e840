"""``veil bench keyserver``: group -> user -> device transforms through the real HTTP
service (uvicorn worker processes on loopback), beside the bare crypto in the same run.

The load is a closed loop: ``concurrency`` clients each send one signed transform
request at a time, for ``duration`` seconds, each on its own keep-alive connection.
Every request carries the same ciphertext, as a meeting's key post does for each
member. The load generator speaks HTTP/1.1 through h11, writing each request in one
piece, so that its own cost stays small beside the service's (httpx, which the SDK
uses, added about 1.7 ms to every request's latency here). ``crypto_only_ms`` is the
median of the server's own crypto for one request (two transforms and re-signing;
the ciphertext's strict decode is cached after the first request, as in the server)
run in this process after each quarter second of load (at least three runs each time,
a hundred in all), so that both see the same drift in the machine's speed.
"""

import asyncio
import functools
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h11
import httpx

from veil.bench.timing import samples_ms
from veil.client.keyserver import DeviceSession, KeyServerClient
from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import encrypt, generate_transform_key
from veil.crypto.signing import SigningKey
from veil.idp import DevIdentityProvider
from veil.keyserver import transformer
from veil.protocol import b64encode, sign_request

RUN = secrets.token_hex(4)
"""Names this run's users and group, so runs can share a database (``--database-url``)."""
GROUP = f"bench-group-{RUN}"
PLACEHOLDER_ESCROW = b"\x01\x20" + (600_000).to_bytes(4, "big") + bytes(16 + 12 + 48)
"""A well-formed escrow blob for benchmark users, whose keys are never recovered."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(env: dict[str, str], port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    """A key service in its own process(es) on loopback, configured by ``env``."""
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "veil.keyserver.app:create_app_from_env",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)  # noqa: S603
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
            return process
        except httpx.TransportError:
            if process.poll() is not None:
                raise RuntimeError("the key service exited during start-up") from None
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the key service did not start within 60 s")


async def _setup(
    base_url: str, idp: DevIdentityProvider, members: int
) -> tuple[list[DeviceSession], bytes]:
    """Register users with one device each, one group of all of them; encrypt a key to it."""
    sessions: list[DeviceSession] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        client = KeyServerClient(http)
        group_key = PrivateKey.generate()
        masters = []
        for i in range(members):
            user = f"bench-{RUN}-{i}"
            user_key, device_key = PrivateKey.generate(), PrivateKey.generate()
            signer = SigningKey.generate()
            token = idp.issue(user)
            _, master = await client.create_user(token, user_key.public_key, PLACEHOLDER_ESCROW)
            device_id = await client.add_device(
                idp.issue(user), user_id=user, user_key=user_key, master=master,
                device_key=device_key.public_key, signer=signer,
            )  # fmt: skip
            sessions.append(client.device(device_id, signer))
            masters.append((user, master))
        host = sessions[0]
        await host.create_group(GROUP, group_key, user_id=masters[0][0], master=masters[0][1])
        for user, master in masters:
            await host.add_member(GROUP, group_key, user_id=user, master=master)
        value = bytes(encrypt(Plaintext.generate(), group_key.public_key, host.signer))
    return sessions, value


class _Connection:
    """One keep-alive HTTP/1.1 connection of the load generator."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._http = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, port: int) -> "_Connection":
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        http = self._http
        fields = [("host", "127.0.0.1"), ("content-length", str(len(body))), *headers.items()]
        self._writer.write(
            http.send(h11.Request(method="POST", target=path, headers=fields))
            + http.send(h11.Data(data=body))
            + http.send(h11.EndOfMessage())
        )
        status, chunks = 0, []
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                http.receive_data(await self._reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise RuntimeError("the key service closed the connection")
        http.start_next_cycle()
        return status, b"".join(chunks)

    def close(self) -> None:
        self._writer.close()


async def _load(
    port: int,
    sessions: list[DeviceSession],
    value: bytes,
    *,
    concurrency: int,
    duration: float,
    phases: int = 1,
    between_phases: Callable[[], object] = lambda: None,
) -> tuple[list[float], int, float]:
    """The latencies of a closed loop run in ``phases`` equal parts, the number of
    requests, and the seconds the parts took. ``between_phases`` runs after each part,
    when no request is in flight. A connection's first request in a part meets a server
    that idled through the pause: it counts towards throughput, not latency."""
    body = json.dumps({"encrypted_key": b64encode(value), "group_id": GROUP}).encode()
    latencies: list[float] = []
    requests = 0

    async def worker(index: int, connection: _Connection, end: float) -> None:
        nonlocal requests
        device = sessions[index % len(sessions)]
        first = True
        while time.monotonic() < end:
            headers = sign_request(
                device.signer, device.device_id, "POST", "/v1/transform", "", body,
                int(time.time()),
            )  # fmt: skip
            headers["content-type"] = "application/json"
            start = time.perf_counter()
            status, answer = await connection.post("/v1/transform", body, headers)
            if not first:
                latencies.append(time.perf_counter() - start)
            first = False
            requests += 1
            if status != 200:
                raise RuntimeError(f"transform failed: {status} {answer[:200]!r}")

    connections = [await _Connection.open(port) for _ in range(concurrency)]
    elapsed = 0.0
    try:
        for _ in range(phases):
            started = time.monotonic()
            end = started + duration / phases
            await asyncio.gather(*(worker(i, c, end) for i, c in enumerate(connections)))
            elapsed += time.monotonic() - started
            between_phases()
    finally:
        for connection in connections:
            connection.close()
    return latencies, requests, elapsed


def crypto_only() -> Callable[[], object]:
    """The server's crypto for one request, to run here (warm transform-key cache)."""
    signer = SigningKey.generate()
    group, user, device = PrivateKey.generate(), PrivateKey.generate(), PrivateKey.generate()
    keys = [
        bytes(generate_transform_key(group, user.public_key, signer)),
        bytes(generate_transform_key(user, device.public_key, signer)),
    ]
    value = bytes(encrypt(Plaintext.generate(), group.public_key, signer))
    transformer._init_worker(secrets.token_bytes(32))
    return lambda: transformer.transform_chain(value, keys)


def run(
    *,
    workers: int,
    concurrency: int,
    duration: float,
    members: int,
    database_url: str | None,
    transform_workers: int = 1,
) -> dict[str, Any]:
    crypto = crypto_only()
    samples_ms(crypto, runs=5)  # warm-up
    # Timed between quarter-second phases of the load, when no request is in flight.
    # This shared machine's speed drifts within a second (the same transform took 7.6
    # or 11.2 ms): timed once before the load, p50 / crypto_only ranged over 1.05-1.47
    # in five runs; timed between phases, over 1.18-1.35 in ten.
    phases = max(1, round(duration * 4))
    crypto_ms: list[float] = []
    runs_per_phase = max(3, 100 // phases)
    idp = DevIdentityProvider(lifetime=3600)
    with tempfile.TemporaryDirectory(prefix="veil-bench-") as data_dir:
        env = {
            **os.environ,
            "VEIL_DATA_DIR": data_dir,
            "VEIL_DATABASE_URL": database_url
            or f"sqlite:///{Path(data_dir) / 'keyserver.sqlite3'}",
            "VEIL_SERVICE_SECRET": b64encode(secrets.token_bytes(32)),
            "VEIL_JWKS": json.dumps(idp.jwks()),
            "VEIL_JWT_ISSUER": idp.issuer,
            "VEIL_KEYSERVER_AUDIENCE": idp.audience,
            "VEIL_TRANSFORM_WORKERS": str(transform_workers),
        }
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        process = start_server(env, port, workers)
        try:
            sessions, value = asyncio.run(_setup(base_url, idp, members))
            load = functools.partial(_load, port, sessions, value, concurrency=concurrency)
            asyncio.run(load(duration=min(1.0, duration)))  # warm-up
            latencies, requests, elapsed = asyncio.run(
                load(
                    duration=duration,
                    phases=phases,
                    between_phases=lambda: crypto_ms.extend(
                        samples_ms(crypto, runs=runs_per_phase)
                    ),
                )
            )
        finally:
            process.terminate()
            process.wait(timeout=30)
    if not latencies:
        raise RuntimeError("no request finished after another in a phase: raise --duration")
    latencies.sort()
    processes = workers * (1 + transform_workers)  # request processes + transform processes
    throughput = requests / elapsed
    return {
        "transforms_per_s": round(throughput, 1),
        "processes": processes,
        "transforms_per_s_per_process": round(throughput / processes, 1),
        "workers": workers,
        "transform_workers": transform_workers,
        "concurrency": concurrency,
        "requests": requests,
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 3),
        "crypto_only_ms": round(statistics.median(crypto_ms), 3),
    }
