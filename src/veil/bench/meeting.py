"""``veil bench meeting``: a rekey in a real meeting of N devices, Veil against the
seed's "common alternative" (the host encrypts the new key pairwise to every device
with X25519 + AES-GCM), measured in the same run (issue 19).

Three parties, each in its own processes, so each number belongs to one party:

- the services, each a ``veil serve`` process of its own as in a deployment: the dev
  IdP, the key service (one uvicorn worker and ``transform_workers`` transform
  processes) and the conference service; with ``replicas=2``, two key services on one
  PostgreSQL database and two conference services sharing rooms through Redis;
- the host (this process: a real SDK ``Meeting``);
- the other N - 1 devices (one process; split evenly over more only where one may not
  hold them all under its open-file limit, ``devices_per_process``), which registers
  them, holds two board WebSockets for each (opened ``CONNECT_RATE`` devices a second,
  see there), and sends each device's transform request over a keep-alive
  HTTP/1.1 client of its own (``veil.bench.rawhttp``, a pool of ``POOL_SIZE``
  connections per key service): httpx's per-request cost, paid N - 1 times in this
  one process, had dominated what was measured. Device ``i`` always uses replica
  ``i % replicas`` of both services.

For each kind of rekey, medians over ``rounds`` rekeys:

- ``host_cpu_ms``: CPU time of the host process for the rekey (Veil: read the group,
  encrypt the new key once to it, sign and post; pairwise: one X25519 + HKDF +
  AES-GCM per device, sign and post the wrapped keys);
- ``delivered_all_ms``: wall time from the start of the host's rekey until the last
  device has its answer (Veil: the key post arrived on its board, it asked the key
  service for its transform of the post's ciphertext and has read the response;
  pairwise: the post with its wrapped key arrived on its board);
- ``decrypt_ms``: the median device's time from holding its answer to holding the key
  (Veil: decode the transformed value, check the key service's transform signer's
  signature and decrypt it with the origin check; pairwise: X25519, HKDF, AES-GCM),
  timed on a sample of ``DECRYPT_SAMPLE`` devices spread evenly over the meeting (all
  of them in a smaller meeting). Every other device only checks that its answer is
  well formed for it (Veil: ``EncryptedValue.from_bytes``, signed by the transform
  signer, level 2 (group -> user -> device), descended from the host's ciphertext;
  pairwise: a wrapped key of the right size);
- ``rekey_to_all_ms``: ``delivered_all_ms + decrypt_ms`` (the two medians' sum): when
  the last device would hold the key, each decrypting on its own CPU;
- ``bytes_per_device``: what the median device received for the rekey: the board
  messages that carried it (WebSocket text), plus, for Veil, the transform response's
  body;
- ``deliveries_per_s``: devices / ``delivered_all_ms``;
- Veil only, in a list by round: ``prepared_hits``, the transforms that used one the key
  service had prepared in the background (the change of
  ``veil_prepared_transform_lookups_total{result="hit"}`` in its ``/metrics``, summed
  over replicas; None for a key service without it). Each round's row also has
  ``preparing_s``, how long the key service then took to prepare the next ones, and
  where the round's time went: ``board_last_ms`` (the key post on the last device's
  board), ``first_request_ms`` (the first transform request sent), and the key
  service's time per request, its queue included (``request_ms_median``, ``_max``);
- in each round's row, both kinds: ``cpu_ms``, the CPU time each process used from the
  start of the rekey until every device had its answer (a key service with its
  transform processes, a conference service, each devices' process, and the host), so
  that what the harness spends is told apart from what the services spend.

After a device's transform of a level-0 value the key service prepares the next one for
that chain, while idle. After the first key and after each round, the benchmark waits
(up to ``PREPARED_TIMEOUT`` seconds) until every replica's
``veil_prepared_transforms_wanted`` is 0, so that each timed rekey meets a prepared
service and no round or decryption competes with the preparing for the cores; a key
service without that metric is not waited for.

All parties share this machine's cores, where in a deployment each has its own. So:
the devices decode each distinct board message once (``KeyPost.parse``, the host's
signature on its ciphertext, the pairwise chunks: a real device decodes only its own
copy, on its own CPU); they pause before each rekey (they leave what they receive
unread) and resume when the host's rekey call returns, so that the host's CPU is not
inflated by their work (``delivered_all_ms`` still counts from the start of the host's
rekey); and they check their answers and time the sample's decryption only once every
device has its answer and the key service is done preparing.

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
post: parse it strictly (``KeyPost.parse``), check that its ciphertext was signed by
the host's device (its signing key as the key service publishes it), have it
transformed, check that the transformed value is signed by the key service's
transform signer, and decrypt it with the origin check (the sample; the others check
their answer's form, above). They skip what a full client adds on top (the post's own
signature, the proof with the group key), which costs the pairwise device alike (it
would check the host's signature too). They do not announce: they never send media,
so the relay, which admits only announced senders, is not involved, and the host's
meeting names no deputy.

Setup is reported in seconds under ``setup_s`` (starting the services, registering the
devices, the host's ``Meeting.start``, the board connections, the first key, which the
key service has prepared nothing for, and the first preparing), and as progress lines
on stderr while it runs; each process's peak memory under ``peak_rss_mb``. The
benchmark raises its open-file limit (``raise_file_limit``; the processes it starts
inherit it): the devices' process and the conference service hold two WebSockets per
device.
"""

import asyncio
import hashlib
import json
import math
import multiprocessing
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from veil.bench.cputime import tree_cpu_seconds
from veil.bench.keyserver import PLACEHOLDER_ESCROW, free_port
from veil.bench.rawhttp import RawPool
from veil.client import Device, MemoryDeviceStore
from veil.client.conference import Board, open_socket, ws_url
from veil.client.errors import Unavailable
from veil.client.keyserver import KeyServerClient, result
from veil.client.meeting import Meeting, MeetingTimers
from veil.crypto.keys import PrivateKey
from veil.crypto.pre import EncryptedValue, VerifiedEncryptedValue, decrypt, descends_from
from veil.crypto.signing import SigningKey
from veil.protocol import CONFERENCE_AUDIENCE, b64decode, b64encode, sign_request
from veil.protocol.board import Chat, KeyPost

PAIRWISE_PER_POST = 256
DECRYPT_SAMPLE = 50
"""Devices per round that decrypt in full (all of them in a smaller meeting)."""
POOL_SIZE = 64
"""Keep-alive connections the devices share to each key service."""
SETUP_CONCURRENCY = 32
"""Registrations and board connections under way at once."""
PREPARED_TIMEOUT = 600.0
"""Seconds to wait for the key service to finish preparing before a round."""
CONNECT_RATE = 30.0
"""Devices a second that open their board connections, over all the devices' processes.
When the conference service looked each connection's device up at the key service
every 30 s, one request each, connections opened together looked up together: 1,000
devices connecting in 10 s sent bursts of look-ups that stalled it for tens of
seconds here, and at this pace 2,000 still did. It now looks them up together, 500 a
request (``veil.conference.watch``); this pace is kept so runs compare with earlier
ones."""
CONNECT_ATTEMPTS = 5
FANOUT_URL = "redis://127.0.0.1:6379"
"""What conference replicas share rooms through."""
TRANSFORM_LEVEL = 2  # group -> user -> device
_RAW = PublicFormat.Raw


def progress(message: str) -> None:
    """A progress line on stderr (the result goes to stdout)."""
    print(f"veil bench meeting: {message}", file=sys.stderr, flush=True)


def _wrap_key(shared: bytes, meeting_id: str, epoch: int, device_id: str) -> bytes:
    info = f"veil-bench pairwise {meeting_id} {epoch} {device_id}".encode()
    return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(shared)


FILE_SLACK = 1024
"""Open files a process needs beside its WebSockets: pools, databases, logs."""


def files_needed(devices: int) -> int:
    """Open files a process that holds ``devices`` devices' two board WebSockets needs
    (a devices' process, or the conference service at the other end)."""
    return 2 * devices + FILE_SLACK


def devices_per_process(files: int) -> int:
    """How many devices a process may hold under an open-file limit of ``files``. Up
    to that, every device is in one process; past it (N = 10,000 against a hard limit
    of 20,000 here, which even root could not raise) they are split evenly over as
    many processes as it takes."""
    return max(1, (files - FILE_SLACK) // 2)


def raise_file_limit(needed: int = 0) -> int:
    """Raise this process's open-file limit to its hard limit (processes it starts
    inherit it), and the hard limit too if ``needed`` is more and the system lets this
    user (root may); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and needed > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return needed
        except (ValueError, OSError):
            pass  # not allowed: the hard limit is as far as it goes
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- the services -------------------------------------------------------------------------


def start_services(
    folder: Path,
    *,
    transform_workers: int = 1,
    database_url: str | None = None,
    cors_origins: Sequence[str] = (),
    prefix: Sequence[str] = (),
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``veil serve`` (the dev IdP, the key service and the conference service in one
    process, plus its transform processes) on free loopback ports, SQLite in ``folder``
    unless ``database_url``, answering pages from ``cors_origins`` too, run through
    ``prefix`` if given (``ip netns exec NAME``: on a network namespace's loopback); the
    process and its endpoints (``idp_url``, ``keyserver_url``, ``conference_url``)."""
    command = [
        *prefix, sys.executable, "-m", "veil.cli", "serve", "--port", "0",
        "--data-dir", str(folder), "--transform-workers", str(transform_workers),
    ]  # fmt: skip
    if database_url:
        command += ["--database-url", database_url]
    errors = tempfile.TemporaryFile()  # noqa: SIM115 (read only if it fails to start)
    env = {**os.environ, **({"VEIL_CORS_ORIGINS": ",".join(cors_origins)} if cors_origins else {})}
    process = subprocess.Popen(  # noqa: S603
        command, stdout=subprocess.PIPE, stderr=errors, text=True, env=env
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


@dataclass(frozen=True)
class Endpoints:
    """Where the services listen: one key service and one conference service per
    replica (a device uses those of replica ``index % replicas``)."""

    idp_url: str
    keyserver_urls: tuple[str, ...]
    conference_urls: tuple[str, ...]

    def keyserver(self, index: int) -> str:
        return self.keyserver_urls[index % len(self.keyserver_urls)]

    def conference(self, index: int) -> str:
        return self.conference_urls[index % len(self.conference_urls)]


@dataclass
class Services:
    """The service processes the benchmark started, by name, and their endpoints."""

    endpoints: Endpoints
    processes: dict[str, subprocess.Popen[str]]

    def peak_rss_mb(self) -> dict[str, float]:
        """Each process's peak resident memory (not its transform processes'), where
        the system says (Linux)."""
        peaks = {name: _peak_rss_mb(p.pid) for name, p in self.processes.items()}
        return {name: peak for name, peak in peaks.items() if peak is not None}

    def stop(self) -> None:
        for process in reversed(self.processes.values()):
            stop_services(process)


def _peak_rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def start_separately(
    folder: Path, replicas: int, *, transform_workers: int, database_url: str | None
) -> Services:
    """The dev IdP, then ``replicas`` key services (sharing one service secret, made here
    and passed in their environment only), then as many conference services (sharing
    rooms through Redis when there are several), each a ``veil serve`` process of its
    own on a free loopback port, as in a deployment. All on ``database_url``, else each
    on SQLite in its own folder (one replica only). One at a time, so that only one of
    them runs the database migrations.

    Not ``veil serve``'s all-in-one process: there the conference service's calls to
    the key service wait on the same event loop as the key service that answers them
    and the transforms it measures (at N = 1,000 its device re-checks, every 30 s for
    every board connection, stalled that loop for tens of seconds here)."""
    services = Services(Endpoints("", (), ()), {})
    try:
        idp_url = _start_role(
            services, folder, "idp", [], ready_path="/.well-known/openid-configuration"
        )
        env = {**os.environ, "VEIL_SERVICE_SECRET": b64encode(secrets.token_bytes(32))}
        common = ["--jwt-issuer-url", idp_url]
        if database_url:
            common += ["--database-url", database_url]
        keyserver_flags = [*common, "--transform-workers", str(transform_workers)]
        keyservers = []
        for i in range(replicas):
            name = f"keyserver-{i}"
            keyservers.append(_start_role(services, folder, name, keyserver_flags, env=env))
        conferences = []
        for i in range(replicas):
            flags = [*common, "--keyserver-url", keyservers[i]]
            if replicas > 1:
                flags += ["--fanout-url", FANOUT_URL]
            conferences.append(_start_role(services, folder, f"conference-{i}", flags))
    except BaseException:
        services.stop()
        raise
    services.endpoints = Endpoints(idp_url, tuple(keyservers), tuple(conferences))
    return services


def _start_role(
    services: Services,
    folder: Path,
    name: str,
    flags: list[str],
    *,
    ready_path: str = "/readyz",
    env: dict[str, str] | None = None,
) -> str:
    """Start ``veil serve --<role>`` (the role is ``name`` up to a ``-``), its output in
    ``folder/<name>.log``; its URL once ``ready_path`` answers 200."""
    role = name.partition("-")[0]
    port = free_port()
    data_dir = folder / name
    data_dir.mkdir()
    command = [sys.executable, "-m", "veil.cli", "serve", f"--{role}", "--port", str(port)]
    if role != "idp":
        command += ["--data-dir", str(data_dir), *flags]
    log_path = folder / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603
            command, stdout=log, stderr=subprocess.STDOUT, env=env, text=True
        )
    services.processes[name] = process
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"veil serve --{role} did not start: " + " | ".join(said))
        try:
            if httpx.get(url + ready_path, timeout=2).status_code == 200:
                return url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"veil serve --{role} was not ready after 120 s")


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


def decrypt_sample(count: int, size: int = DECRYPT_SAMPLE) -> frozenset[int]:
    """``size`` device indices spread evenly over ``0..count-1`` (first and last
    included), or all of them if there are no more."""
    if count <= size:
        return frozenset(range(count))
    return frozenset(round(i * (count - 1) / (size - 1)) for i in range(size))


@dataclass(frozen=True)
class DevicesConfig:
    """One devices' process: devices ``first`` to ``first + count - 1`` of ``total``."""

    endpoints: Endpoints
    count: int
    first: int = 0
    total: int = 0
    sample: int = DECRYPT_SAMPLE
    pool_size: int = POOL_SIZE
    concurrency: int = SETUP_CONCURRENCY
    files: int = 0


@dataclass(eq=False)
class _Sim:
    """One simulated device: its user, keys, and the replica it uses."""

    index: int
    user: str
    device_id: str
    device_key: PrivateKey
    signer: SigningKey
    x25519: X25519PrivateKey


@dataclass(frozen=True)
class _VeilPost:
    """A key post as every device takes it: parsed, its ciphertext checked against the
    host device, and the transform request's body (the same for every device)."""

    epoch: int
    origin: VerifiedEncryptedValue
    request: bytes


@dataclass(frozen=True)
class _PairwiseChunk:
    epoch: int
    ephemeral: bytes
    last: bool
    wrapped: dict[str, bytes]


@dataclass
class _Round:
    """What the devices received for one rekey: (device, delivered at, bytes, answer)."""

    deliveries: list[tuple[_Sim, float, int, Any]] = field(default_factory=list)
    times: list[tuple[float, float, float]] = field(default_factory=list)
    """Veil: when each device's key post arrived, its request was sent, its answer read."""


def devices_main(conn: Connection, config: DevicesConfig) -> None:
    raise_file_limit(config.files)
    asyncio.run(_Devices(conn, config).main())


class _Devices:
    def __init__(self, conn: Connection, config: DevicesConfig) -> None:
        self.conn, self.config, self.count = conn, config, config.count
        self.endpoints = config.endpoints
        self.devices: list[_Sim] = []
        self.sample = decrypt_sample(config.total or config.count, config.sample)
        self.rounds: dict[tuple[str, int], _Round] = {}
        self.released: dict[tuple[str, int], asyncio.Event] = {}
        self.resumed = asyncio.Event()  # cleared while the host is timing its rekey
        self.resumed.set()
        # Each distinct board message decoded once for all devices (by its text).
        self.decoded: dict[str, _VeilPost | _PairwiseChunk | None] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def _gate(self, kind: str, epoch: int) -> asyncio.Event:
        return self.released.setdefault((kind, epoch), asyncio.Event())

    async def _recv(self) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, self.conn.recv)

    async def _hear_the_host(self) -> None:
        while True:
            message = await self._recv()
            if message == ("pause",):
                self.resumed.clear()
                self.conn.send(("paused",))
            elif message[0] == "go":
                _, kind, epoch = message
                self._gate(kind, epoch).set()
                self.resumed.set()
            else:  # ("check", kind, epoch)
                _, kind, epoch = message
                task = asyncio.get_running_loop().create_task(self._check_round(kind, epoch))
                self.tasks.add(task)  # kept until done (the loop holds only a weak reference)
                task.add_done_callback(self.tasks.discard)

    async def main(self) -> None:
        try:
            await self.run()
        except BaseException as exc:  # the host must hear of it, not wait forever
            self.conn.send(("failed", f"{type(exc).__name__}: {exc}"))
            raise

    async def run(self) -> None:
        config = self.config
        limits = httpx.Limits(
            max_connections=config.concurrency, max_keepalive_connections=config.concurrency
        )
        async with httpx.AsyncClient(timeout=600, limits=limits) as http:
            self.http = http
            self.keyservers = [
                KeyServerClient(httpx.AsyncClient(base_url=url, timeout=600, limits=limits))
                for url in self.endpoints.keyserver_urls
            ]
            try:
                await self._setup_and_listen()
            finally:
                for client in self.keyservers:
                    await client.http.aclose()

    async def _setup_and_listen(self) -> None:
        started = time.monotonic()
        await self._register_all()
        pubs = {d.device_id: d.x25519.public_key().public_bytes(Encoding.Raw, _RAW)
                for d in self.devices}  # fmt: skip
        users = [d.user for d in self.devices]
        self.conn.send(("ready", users, pubs, time.monotonic() - started))
        meeting_id, host_device = await self._recv()
        self.meeting_id, self.host_device = meeting_id, host_device
        # Whose ciphertexts a key post may carry: the host device's, as published.
        keyserver = self.keyservers[0]
        self.host_signer = (await keyserver.device_record(host_device)).signing_key
        self.transform_signer = await keyserver.transform_signer()  # asked once, untimed
        self.pools = [RawPool(url, self.config.pool_size) for url in self.endpoints.keyserver_urls]
        started = time.monotonic()
        sockets = await self._connect_all(meeting_id)
        self.conn.send(("connected", time.monotonic() - started))
        listeners = []
        for device, (veil, pairwise) in zip(self.devices, sockets, strict=True):
            listeners.append(self._listen_veil(device, veil))
            listeners.append(self._listen_pairwise(device, pairwise))
        await asyncio.gather(self._hear_the_host(), *listeners)

    async def _concurrently(
        self, what: str, work: Callable[[int], Any], count: int, *, spread: float = 0.0
    ) -> list[Any]:
        """``work(i)`` for every ``i`` in ``range(count)``, ``concurrency`` at a time, the
        ``i``-th not before ``i / count`` of ``spread`` seconds, with a progress line
        every tenth of a large count (and its pace), and at the end."""
        semaphore = asyncio.Semaphore(self.config.concurrency)
        started, done, step = time.monotonic(), 0, max(1, count // 10)

        async def one(index: int) -> Any:
            nonlocal done
            async with semaphore:
                await asyncio.sleep(started + spread * index / count - time.monotonic())
                value = await work(index)
            done += 1
            if done == count or (count >= 100 and done % step == 0):
                elapsed = time.monotonic() - started
                progress(f"{what}: {done}/{count} in {elapsed:.1f} s ({done / elapsed:.0f}/s)")
            return value

        return list(await asyncio.gather(*(one(i) for i in range(count))))

    async def _register_all(self) -> None:
        self.devices = await self._concurrently("registered", self._register, self.count)

    async def _register(self, local: int) -> _Sim:
        """A new user with one device, on the device's key service; a user whose
        registration was cut off (a kept-alive connection closed under a request, say)
        is left, and another made in its place."""
        index = self.config.first + local  # over all the devices' processes
        for attempt in range(3):
            try:
                return await self._register_once(index)
            except Unavailable as error:
                if attempt == 2:
                    raise
                progress(f"registering device {index} again: {error}")
        raise AssertionError("unreachable")

    async def _register_once(self, index: int) -> _Sim:
        user = f"bench-{index}-{secrets.token_hex(3)}"
        user_key, device_key, signer = (
            PrivateKey.generate(),
            PrivateKey.generate(),
            SigningKey.generate(),
        )
        client = self.keyservers[index % len(self.keyservers)]
        # One token for both calls (they need one issued in the last two minutes).
        token = await dev_token(self.http, self.endpoints.idp_url, user, client.audience)
        _, master = await client.create_user(token, user_key.public_key, PLACEHOLDER_ESCROW)
        device_id = await client.add_device(
            token, user_id=user, user_key=user_key, master=master,
            device_key=device_key.public_key, signer=signer,
        )  # fmt: skip
        return _Sim(index, user, device_id, device_key, signer, X25519PrivateKey.generate())

    async def _connect_all(self, meeting_id: str) -> list[tuple[Any, Any]]:
        async def connect(index: int) -> tuple[Any, Any]:
            device = self.devices[index]
            token = await dev_token(
                self.http, self.endpoints.idp_url, device.user, CONFERENCE_AUDIENCE
            )
            rooms = (meeting_id, pairwise_room(meeting_id))
            veil, pairwise = [await self._open_board(device, room, token) for room in rooms]
            return veil, pairwise

        return await self._concurrently(
            "on both boards", connect, self.count,
            spread=(self.config.total or self.count) / CONNECT_RATE,
        )  # fmt: skip

    async def _open_board(self, device: _Sim, room: str, token: str) -> Any:
        """A board connection, opened again after a pause if the conference service did
        not complete the handshake (as the SDK's boards do; at N = 10,000 on a busy
        machine some handshakes outlasted the client's timeout)."""
        url = ws_url(self.endpoints.conference(device.index), f"/v1/rooms/{room}/board")
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                return _Inbox(
                    await open_socket(
                        url, room, "board", token, device.device_id, device.signer, since=0
                    )
                )
            except Unavailable as error:
                if attempt == CONNECT_ATTEMPTS:
                    raise
                progress(f"device {device.index} opens its board again: {error}")
                await asyncio.sleep(attempt)
        raise AssertionError("unreachable")

    # Receiving: each device's two board connections.

    async def _posts(
        self, inbox: "_Inbox"
    ) -> AsyncIterator[tuple[float, int, _VeilPost | _PairwiseChunk]]:
        """(arrival time, message size, decoded post) of each key post and pairwise chunk,
        read once the host lets the devices go on."""
        while isinstance(item := await inbox.arrived.get(), tuple):
            arrived, raw = item
            await self.resumed.wait()
            decoded = self.decoded[raw] if raw in self.decoded else self._decode(raw)
            if decoded is not None:
                yield arrived, len(raw), decoded
        if isinstance(item, ConnectionClosed):
            raise RuntimeError(f"a board connection closed: {item}")
        raise RuntimeError("a board connection closed")

    def _decode(self, raw: str) -> _VeilPost | _PairwiseChunk | None:
        message = json.loads(raw)
        post = message.get("post") if message.get("type") == "post" else None
        decoded: _VeilPost | _PairwiseChunk | None = None
        if post is not None and post["kind"] == KeyPost.KIND:
            decoded = self._veil_post(b64decode(post["body"]))
        elif post is not None and post["kind"] == Chat.KIND:
            decoded = self._pairwise_chunk(post)
        self.decoded[raw] = decoded
        return decoded

    def _pairwise_chunk(self, post: dict[str, Any]) -> _PairwiseChunk | None:
        if post["device_id"] != self.host_device:
            return None  # not the benchmark's carrier
        chat = Chat.parse(b64decode(post["body"]))
        ephemeral, last, wrapped = _unpack_pairwise(chat.sealed)
        return _PairwiseChunk(chat.epoch, ephemeral, last, wrapped)

    def _veil_post(self, body: bytes) -> _VeilPost:
        post = KeyPost.parse(body)
        origin = EncryptedValue.from_bytes(post.encrypted_key).verify(signer=self.host_signer)
        request = {"encrypted_key": b64encode(post.encrypted_key), "group_id": self.meeting_id}
        return _VeilPost(post.epoch, origin, json.dumps(request).encode())

    async def _listen_veil(self, device: _Sim, socket: Any) -> None:
        async for arrived, size, post in self._posts(socket):
            if isinstance(post, _VeilPost):
                await self._gate("veil", post.epoch).wait()
                answer, asked = await self._transform(device, post.request)
                self._delivered(
                    "veil", post.epoch, device, size + len(answer), (post, answer),
                    times=(arrived, *asked),
                )  # fmt: skip

    async def _transform(self, device: _Sim, body: bytes) -> tuple[bytes, tuple[float, float]]:
        """The key service's answer to this device's signed transform request, signed
        once a connection is free (at N = 5,000 the first key's requests waited for one
        longer than the key service's clock skew, and were refused as stale); and when
        the request was sent and its answer read."""
        pool = self.pools[device.index % len(self.pools)]
        async with pool.connection() as connection:
            sent = time.time()
            headers = sign_request(
                device.signer, device.device_id, "POST", "/v1/transform", "", body,
                int(time.time()),
            )  # fmt: skip
            headers["content-type"] = "application/json"
            status, _, answer = await connection.request("POST", "/v1/transform", headers, body)
        if status != 200:
            raise RuntimeError(f"a transform was answered {status}: {_error_code(answer)}")
        return answer, (sent, time.time())

    async def _listen_pairwise(self, device: _Sim, socket: Any) -> None:
        received: dict[int, int] = {}  # bytes by round
        mine: dict[int, tuple[float, bytes, bytes]] = {}  # when, ephemeral, wrapped key
        async for _, size, chunk in self._posts(socket):
            if not isinstance(chunk, _PairwiseChunk):
                continue
            await self._gate("pairwise", chunk.epoch).wait()
            received[chunk.epoch] = received.get(chunk.epoch, 0) + size
            wrapped = chunk.wrapped.get(device.device_id)
            if wrapped is not None:
                mine[chunk.epoch] = (time.time(), chunk.ephemeral, wrapped)
            if chunk.last:
                if chunk.epoch not in mine:
                    raise RuntimeError(f"no wrapped key for a device in round {chunk.epoch}")
                when, ephemeral, wrapped = mine.pop(chunk.epoch)
                answer = (ephemeral, wrapped)
                self._delivered("pairwise", chunk.epoch, device, received.pop(chunk.epoch),
                                answer, when)  # fmt: skip

    # Once every device has its answer: when, and how much they received. Then, when
    # the host says (the key service is done preparing and the machine quiet): the
    # checks, and the sample's decryption, timed.

    def _delivered(
        self, kind: str, epoch: int, device: _Sim, received: int, answer: Any,
        when: float | None = None, times: tuple[float, float, float] | None = None,
    ) -> None:  # fmt: skip
        when = time.time() if when is None else when
        round_ = self.rounds.setdefault((kind, epoch), _Round())
        round_.deliveries.append((device, when, received, answer))
        if times is not None:
            round_.times.append(times)
        if len(round_.deliveries) == self.count:
            summary: dict[str, Any] = {
                "last": max(when for _, when, _, _ in round_.deliveries),
                "bytes": [got for _, _, got, _ in round_.deliveries],
            }
            if round_.times:
                arrived, sent, answered = zip(*round_.times, strict=True)
                summary["board_last"] = max(arrived)
                summary["first_sent"] = min(sent)
                summary["request_ms"] = [
                    (done - start) * 1000 for start, done in zip(sent, answered, strict=True)
                ]
            self.conn.send(("delivered", kind, epoch, summary))

    async def _check_round(self, kind: str, epoch: int) -> None:
        try:
            round_ = self.rounds.pop((kind, epoch))
            decrypt_ms: list[float] = []
            keys: set[bytes] = set()
            for n, (device, _, _, answer) in enumerate(round_.deliveries):
                if device.index in self.sample:
                    start = time.perf_counter()
                    keys.add(self._open(kind, epoch, device, answer))
                    decrypt_ms.append((time.perf_counter() - start) * 1000)
                else:
                    self._check(kind, answer)
                if n % 64 == 63:
                    await asyncio.sleep(0)  # the sockets' keep-alive pings go on meanwhile
            if len(keys) > 1:
                raise RuntimeError(f"the sampled devices opened {len(keys)} different keys")
            summary = {
                "decrypt_ms": decrypt_ms,
                # Compared across the devices' processes: a digest, not the key itself.
                "keys": [hashlib.sha256(key).hexdigest() for key in keys],
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
            self.conn.send(("checked", kind, epoch, summary))
        except BaseException as exc:
            self.conn.send(("failed", f"{type(exc).__name__}: {exc}"))
            raise

    def _open(self, kind: str, epoch: int, device: _Sim, answer: Any) -> bytes:
        """The key a device opens from its answer, as a real device would."""
        if kind == "veil":
            post, body = answer
            value = self._transformed(body)
            return decrypt(value, device.device_key, origin=post.origin).to_secret_bytes()
        ephemeral, wrapped = answer
        shared = device.x25519.exchange(X25519PublicKey.from_public_bytes(ephemeral))
        key = _wrap_key(shared, self.meeting_id, epoch, device.device_id)
        return AESGCM(key).decrypt(wrapped[:12], wrapped[12:], self.meeting_id.encode())

    def _check(self, kind: str, answer: Any) -> None:
        """That an answer a device does not open is well formed for it."""
        if kind == "veil":
            post, body = answer
            value = self._transformed(body)
            if value.level != TRANSFORM_LEVEL or not descends_from(value, post.origin):
                raise RuntimeError("a transformed key of another level or ciphertext")
        elif len(answer[1]) != _WRAPPED_BYTES:
            raise RuntimeError("a wrapped key of the wrong size")

    def _transformed(self, body: bytes) -> VerifiedEncryptedValue:
        raw = b64decode(json.loads(body)["encrypted_key"])
        return EncryptedValue.from_bytes(raw).verify(signer=self.transform_signer)


def _error_code(body: bytes) -> str:
    """The error code of a service's error body (never more of it)."""
    try:
        return str(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "no error body"


# --- the key service's preparing -----------------------------------------------------------


def prepared_metrics(text: str) -> tuple[float | None, float | None]:
    """``veil_prepared_transforms_wanted`` and the prepared-transform hits so far in a
    ``/metrics`` page (Prometheus text), each None if the page has none."""
    wanted = hits = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "veil_prepared_transforms_wanted":
                wanted = sample.value
            elif (
                sample.name == "veil_prepared_transform_lookups_total"
                and sample.labels.get("result") == "hit"
            ):
                hits = sample.value
    return wanted, hits


class PreparedWatch:
    """The key services' preparing, read from their ``/metrics`` (summed over replicas)."""

    SETTLE = 0.5
    """Seconds ``wanted`` must stay 0: the last chains are taken off the list when their
    preparing starts, and it takes a few milliseconds more."""

    def __init__(self, http: httpx.AsyncClient, keyserver_urls: Sequence[str]) -> None:
        self.http, self.urls = http, keyserver_urls

    async def read(self) -> tuple[float | None, float | None]:
        """(chains wanted, hits so far), or None for either if a replica lacks it."""
        pages = [
            prepared_metrics((await self.http.get(f"{url}/metrics")).raise_for_status().text)
            for url in self.urls
        ]
        wanted = [w for w, _ in pages]
        hits = [h for _, h in pages]
        return (
            None if None in wanted else sum(w for w in wanted if w is not None),
            None if None in hits else sum(h for h in hits if h is not None),
        )

    async def wait_idle(self, timeout: float) -> float | None:
        """Seconds waited until no chain is waiting for a prepared transform (or
        ``timeout`` passed, said on stderr); None if the key service has no such metric."""
        started = last_said = time.monotonic()
        while True:
            wanted, _ = await self.read()
            waited = time.monotonic() - started
            if wanted is None:
                return None
            if wanted == 0:
                await asyncio.sleep(self.SETTLE)
                if (await self.read())[0] == 0:
                    return time.monotonic() - started
                continue
            if waited > timeout:
                progress(f"the key service still wants {wanted:.0f} prepared transforms "
                         f"after {timeout:.0f} s: measuring anyway")  # fmt: skip
                return waited
            if time.monotonic() - last_said >= 10:
                progress(f"waiting for the key service to prepare: {wanted:.0f} chains left")
                last_said = time.monotonic()
            await asyncio.sleep(0.5)


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
    deadline = time.monotonic() + timeout
    # Polled a second at a time: a thread blocked in a long poll would hold up the
    # event loop's shutdown, and so Ctrl-C, until it returned.
    while not await loop.run_in_executor(None, conn.poll, 1.0):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the devices said nothing for {timeout:.0f} s")
    message = conn.recv()
    if isinstance(message, tuple) and message and message[0] == "failed":
        raise RuntimeError(f"the devices failed: {message[1]}")
    return message


class _Inbox:
    """A board connection read from the moment it opens, into a queue, whatever its
    device waits for. websockets stops reading a connection once 16 messages wait
    unread, keepalive pongs included: the devices' first connections, opened over a
    minute before they are listened to at N = 2,000, were closed by their keepalive
    timeout (``sent 1011``)."""

    def __init__(self, socket: Any) -> None:
        self.arrived: asyncio.Queue[tuple[float, str] | ConnectionClosed | None] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read(socket))

    async def _read(self, socket: Any) -> None:
        try:
            async for raw in socket:
                self.arrived.put_nowait((time.time(), raw))
        except ConnectionClosed as closed:
            self.arrived.put_nowait(closed)
        else:
            self.arrived.put_nowait(None)


class _DeviceProcesses:
    """The devices' processes, spoken to as one: the host's messages go to each, and
    each answer is had from each (their own timestamps say when things happened)."""

    def __init__(self, conns: Sequence[Connection]) -> None:
        self.conns = conns

    def send(self, message: Any) -> None:
        for conn in self.conns:
            conn.send(message)

    async def gather(self, timeout: float = 900.0) -> list[Any]:
        return [await _from_devices(conn, timeout) for conn in self.conns]

    async def expect(self, what: str, kind: str, epoch: int, timeout: float = 900.0) -> list[Any]:
        """The summaries the processes send with ``what`` (delivered, checked)."""
        summaries = []
        for said, got_kind, got_epoch, summary in await self.gather(timeout):
            assert (said, got_kind, got_epoch) == (what, kind, epoch), (said, got_kind, got_epoch)
            summaries.append(summary)
        return summaries


SETUP_TIMEOUT = 3600.0
"""Seconds the host waits for the devices to register or connect (10,000 of them take
minutes)."""


@dataclass
class _Host:
    """The host's side of the run: its meeting, the pairwise carrier, what it measured."""

    devices: _DeviceProcesses
    endpoints: Endpoints
    setup: dict[str, float]
    watch: PreparedWatch
    x25519: dict[str, bytes] = field(default_factory=dict)
    rows: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"veil": [], "pairwise": []}
    )
    devices_peak_rss_mb: float = 0.0
    pids: dict[str, int] = field(default_factory=dict)
    """The processes (with their descendants: a key service's transform processes)
    whose CPU time from the start of each rekey until every device has its answer the
    round reports under ``cpu_ms``, by name, beside the host's own."""

    async def start(self, host: Device) -> tuple[Meeting, Board]:
        """The meeting with every device's user invited, once they are registered, and
        every device on both boards with the first key."""
        users: list[str] = []
        self.setup["register"] = 0.0
        for _, some, x25519, seconds in await self.devices.gather(SETUP_TIMEOUT):
            users += some
            self.x25519.update(x25519)
            self.setup["register"] = max(self.setup["register"], seconds)
        started = time.monotonic()
        timers = MeetingTimers(rekey_interval=1e9)
        meeting = await Meeting.start(host, invitees=users, timers=timers)
        carrier = host.board(pairwise_room(meeting.meeting_id))
        await carrier.connect(since=0)
        self.setup["meeting_start"] = time.monotonic() - started
        progress(f"meeting started with {len(users) + 1} members in "
                 f"{self.setup['meeting_start']:.1f} s")  # fmt: skip
        self.devices.send((meeting.meeting_id, host.device_id))
        connected = await self.devices.gather(SETUP_TIMEOUT)
        self.setup["connect"] = max(seconds for _, seconds in connected)
        # The board replays the epoch-0 key to every device as it connects: each has it
        # transformed (the key service prepares nothing before a chain's first transform).
        started = time.monotonic()
        self.devices.send(("go", "veil", 0))
        await self.devices.expect("delivered", "veil", 0, SETUP_TIMEOUT)
        self.setup["first_key"] = time.monotonic() - started
        progress(f"every device has the first key, in {self.setup['first_key']:.1f} s")
        self.setup["first_prepare"] = await self._settle()
        await self._checked("veil", 0)
        return meeting, carrier

    async def _settle(self) -> float:
        """Seconds until the key service is done preparing (0 if it says nothing of it):
        so that neither the next round nor the devices' timed decryption competes with
        it for the cores."""
        waited = await self.watch.wait_idle(PREPARED_TIMEOUT)
        return 0.0 if waited is None else waited

    async def _checked(self, kind: str, epoch: int) -> tuple[float, int]:
        """Once the machine is quiet: every answer checked, the sample decrypted; the
        median decryption and the devices that decrypted."""
        self.devices.send(("check", kind, epoch))
        summaries = await self.devices.expect("checked", kind, epoch)
        if len({key for summary in summaries for key in summary["keys"]}) != 1:
            raise RuntimeError("the sampled devices did not all open the same key")
        self.devices_peak_rss_mb = max(summary["peak_rss_mb"] for summary in summaries)
        decrypt_ms = [ms for summary in summaries for ms in summary["decrypt_ms"]]
        return statistics.median(decrypt_ms), len(decrypt_ms)

    async def rekey(self, meeting: Meeting, carrier: Board, kind: str, round_: int) -> None:
        """One timed rekey of ``kind`` (the key service is done preparing)."""
        _, hits_before = await self.watch.read()
        self.devices.send(("pause",))
        assert await self.devices.gather() == [("paused",)] * len(self.devices.conns)
        cpu_before = tree_cpu_seconds(self.pids.values())
        cpu, started = time.process_time(), time.time()
        if kind == "veil":
            await meeting.rekey()
            epoch = meeting.epoch or 0
        else:
            epoch = round_
            await _pairwise_rekey(meeting, carrier, epoch, self.x25519)
        host_cpu = time.process_time() - cpu
        self.devices.send(("go", kind, epoch))
        delivered = await self.devices.expect("delivered", kind, epoch)
        cpu_after = tree_cpu_seconds(self.pids.values())
        host_cpu_to_all = time.process_time() - cpu
        _, hits_after = await self.watch.read()
        preparing = await self._settle()
        decrypt_ms, decrypted = await self._checked(kind, epoch)
        last = max(summary["last"] for summary in delivered)
        received = statistics.median(got for summary in delivered for got in summary["bytes"])
        row: dict[str, Any] = {
            "host_cpu_ms": round(host_cpu * 1000, 3),
            "delivered_all_ms": round((last - started) * 1000, 1),
            "decrypt_ms": round(decrypt_ms, 3),
            "bytes_per_device": int(received),
            "decrypted": decrypted,
        }
        if kind == "veil":
            hits = None if hits_before is None or hits_after is None else hits_after - hits_before
            row["prepared_hits"] = None if hits is None else int(hits)
            row["preparing_s"] = round(preparing, 1)
            row.update(_breakdown(delivered, started))
        row["cpu_ms"] = {
            name: round((cpu_after[pid] - cpu_before[pid]) * 1000)
            for name, pid in self.pids.items()
        } | {"host": round(host_cpu_to_all * 1000)}
        self.rows[kind].append(row)
        progress(f"round {round_}, {kind}: every device had it after "
                 f"{row['delivered_all_ms']:.0f} ms")  # fmt: skip


def _breakdown(delivered: list[dict[str, Any]], started: float) -> dict[str, Any]:
    """Where a Veil round's time went, from the devices' timestamps (ms from the start of
    the host's rekey): the key post on the last device's board, the first transform
    request sent, and the key service's time per request (sent to answer read, its
    queue included) at the median and the slowest."""
    request_ms = sorted(ms for summary in delivered for ms in summary["request_ms"])
    return {
        "board_last_ms": round((max(s["board_last"] for s in delivered) - started) * 1000, 1),
        "first_request_ms": round((min(s["first_sent"] for s in delivered) - started) * 1000, 1),
        "request_ms_median": round(statistics.median(request_ms), 1),
        "request_ms_max": round(request_ms[-1], 1),
    }


async def _host(
    devices: _DeviceProcesses,
    endpoints: Endpoints,
    rounds: int,
    setup: dict[str, float],
    pids: dict[str, int],
) -> dict[str, Any]:
    # A user of its own, as each device's: a database kept from an earlier run (the
    # PostgreSQL one) holds an earlier host under its own keys, and refused this one.
    host_user = f"bench-host-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(timeout=600) as http:

        async def token(audience: str) -> str:
            return await dev_token(http, endpoints.idp_url, host_user, audience)

        host = await Device.initialize(
            keyserver_url=endpoints.keyserver_urls[0], conference_url=endpoints.conference_urls[0],
            tokens=token, store=MemoryDeviceStore(secrets.token_bytes(32)),
        )  # fmt: skip
        run = _Host(devices, endpoints, setup, PreparedWatch(http, endpoints.keyserver_urls))
        run.pids = pids
        async with host:
            meeting, carrier = await run.start(host)
            for round_ in range(1, rounds + 1):
                for kind in ("veil", "pairwise"):
                    await run.rekey(meeting, carrier, kind, round_)
            await carrier.close()
            await meeting.close(rotate_device_keys=False)
    count = len(run.x25519)
    return {
        **{kind: summarize(rows, count) for kind, rows in run.rows.items()},
        "peak_rss_mb": {
            "host": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "devices": run.devices_peak_rss_mb,  # the largest devices' process
        },
    }


def summarize(rows: list[dict[str, Any]], devices: int) -> dict[str, Any]:
    """Medians over rounds; ``rekey_to_all_ms`` is the sum of the two medians, and
    ``deliveries_per_s`` follows from the median ``delivered_all_ms``."""

    def median(name: str) -> float:
        return float(statistics.median(row[name] for row in rows))

    delivered, decrypt_ms = median("delivered_all_ms"), median("decrypt_ms")
    summary: dict[str, Any] = {
        "host_cpu_ms": round(median("host_cpu_ms"), 3),
        "delivered_all_ms": round(delivered, 1),
        "decrypt_ms": round(decrypt_ms, 3),
        "rekey_to_all_ms": round(delivered + decrypt_ms, 1),
        "bytes_per_device": int(median("bytes_per_device")),
        "deliveries_per_s": round(devices / (delivered / 1000), 1) if delivered else None,
    }
    if "prepared_hits" in rows[0]:
        summary["prepared_hits"] = [row["prepared_hits"] for row in rows]
    summary["rounds"] = rows
    return summary


def run(
    participants: int,
    rounds: int = 3,
    *,
    database_url: str | None = None,
    replicas: int = 1,
    transform_workers: int = 1,
) -> dict[str, Any]:
    """Measure ``rounds`` rekeys of each kind at ``participants`` devices (host included)."""
    if participants < 2:
        raise ValueError("a meeting needs at least 2 participants")
    if replicas < 1:
        raise ValueError("--replicas must be at least 1")
    if replicas > 1 and not (database_url or "").startswith("postgresql"):
        raise ValueError("replicas share one database: give --database-url postgresql://...")
    files = raise_file_limit(files_needed(participants - 1))
    per_conference = math.ceil((participants - 1) / replicas)
    if files < files_needed(per_conference):
        raise ValueError(
            f"each conference service would hold {2 * per_conference} WebSockets, and the "
            f"open-file limit here is {files} (ulimit -Hn; not raised past it for this "
            "user): give --replicas more conference services"
        )
    processes = math.ceil((participants - 1) / devices_per_process(files))
    setup: dict[str, float] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="veil-bench-meeting-") as folder:
        progress(f"starting the services ({replicas} of each)")
        services = start_separately(
            Path(folder), replicas, transform_workers=transform_workers, database_url=database_url
        )
        setup["services"] = time.monotonic() - started
        try:
            measured = _measure(services, participants, rounds, setup, processes)
        finally:
            services.stop()
    database = "sqlite" if not database_url else database_url.partition(":")[0].split("+")[0]
    return {
        "participants": participants,
        "rounds": rounds,
        "replicas": replicas,
        "database": database,  # the kind only: a URL may hold a password
        "transform_workers": transform_workers,
        "device_processes": processes,
        **measured,
        "setup_s": {name: round(seconds, 1) for name, seconds in setup.items()},
        "total_s": round(time.monotonic() - started, 1),
    }


def _measure(
    services: Services, participants: int, rounds: int, setup: dict[str, float], processes: int
) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    conns, started = [], []
    try:
        for first, count in _split(participants - 1, processes):
            parent, child = context.Pipe()
            config = DevicesConfig(
                services.endpoints, count, first=first, total=participants - 1,
                files=files_needed(count),
            )  # fmt: skip
            process = context.Process(target=devices_main, args=(child, config))
            process.start()
            conns.append(parent)
            started.append(process)
        pids = {name: process.pid for name, process in services.processes.items() if name != "idp"}
        pids.update({f"devices-{i}": p.pid for i, p in enumerate(started) if p.pid is not None})
        measured = asyncio.run(
            _host(_DeviceProcesses(conns), services.endpoints, rounds, setup, pids)
        )
        measured["peak_rss_mb"]["services"] = services.peak_rss_mb()
    finally:
        for process in started:
            process.kill()
            process.join(10)
    return measured


def _split(total: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` consecutive ranges (first, count) covering ``range(total)``, as even as
    can be."""
    size, extra = divmod(total, parts)
    ranges, first = [], 0
    for part in range(parts):
        count = size + (part < extra)
        ranges.append((first, count))
        first += count
    return ranges
