"""A key-service replica killed in the middle of a rekey: two ``veil serve --keyserver``
processes on one PostgreSQL database behind a round-robin proxy (standing for a load
balancer), a conference service and the dev IdP, each its own process. The replica
that was serving is killed (SIGKILL) as a participant leaves; the devices' requests to
it fail, they retry, the proxy sends them to the other replica, and every remaining
device reaches the new epoch with the same security code. Skipped when PostgreSQL
does not answer."""

import asyncio
import contextlib
import secrets
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from veil.client import Device, MemoryDeviceStore
from veil.client.meeting import Meeting, MeetingTimers
from veil.keyserver.maintenance import verify_audit
from veil.protocol import b64encode

from ..processes import free_port, process, wait_for

SERVE = ("serve", "--host", "127.0.0.1")
TIMERS = MeetingTimers(debounce=0.2, heartbeat=0.5, failover=3.0, join_retries=(1.0, 2.0, 4.0))


class RoundRobin:
    """A TCP proxy that hands each new connection to the next backend that accepts it,
    as a load balancer does; a connection whose backend dies is dropped."""

    def __init__(self, backends: list[int]) -> None:
        self.backends, self._next = backends, 0
        self.connections = dict.fromkeys(backends, 0)
        self.refused = 0
        self._first: int | None = None
        self._open: dict[int, set[asyncio.StreamWriter]] = {port: set() for port in backends}

    def favour(self, port: int) -> None:
        """Try ``port`` first for every new connection, and close the connections open
        to the others, so that every device's next request goes to ``port``."""
        self._first = port
        for other, writers in self._open.items():
            if other != port:
                for writer in writers:
                    writer.close()

    def _order(self) -> list[int]:
        if self._first is not None:
            return [self._first, *(p for p in self.backends if p != self._first)]
        start, self._next = self._next, self._next + 1
        return [self.backends[(start + i) % len(self.backends)] for i in range(len(self.backends))]

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[int]:
        server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        async with server:
            yield server.sockets[0].getsockname()[1]

    async def _relay(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        for port in self._order():
            try:
                backend_in, backend_out = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                self.refused += 1
                continue  # down: the next one
            self.connections[port] += 1
            self._open[port].add(client_out)
            try:
                await asyncio.gather(_pipe(client_in, backend_out), _pipe(backend_in, client_out))
            finally:
                self._open[port].discard(client_out)
            return
        client_out.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        sink.close()


def test_devices_get_their_answers_from_the_other_replica_when_one_is_killed_mid_rekey(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    idp_port, first_port, second_port, conference_port = (free_port() for _ in range(4))
    idp_url = f"http://127.0.0.1:{idp_port}"
    replicas = {
        "VEIL_SERVICE_SECRET": b64encode(secrets.token_bytes(32)),
        "VEIL_DATABASE_URL": fresh_postgres_url,
        "VEIL_JWT_ISSUER_URL": idp_url,
        "VEIL_TRANSFORM_WORKERS": "1",
    }
    proxy = RoundRobin([first_port, second_port])
    with contextlib.ExitStack() as stack:
        idp = stack.enter_context(process(*SERVE, "--idp", "--port", str(idp_port)))
        wait_for(idp_url, idp)
        keyservers = {
            port: stack.enter_context(
                process(
                    *SERVE,
                    "--keyserver",
                    "--port",
                    str(port),
                    "--data-dir",
                    str(tmp_path / str(port)),
                    env=replicas,
                )
            )
            for port in (first_port, second_port)
        }
        for port, child in keyservers.items():
            wait_for(f"http://127.0.0.1:{port}", child)

        async def scenario() -> None:
            async with proxy.serving() as proxy_port:
                keyserver_url = f"http://127.0.0.1:{proxy_port}"
                conference = stack.enter_context(
                    process(
                        *SERVE,
                        "--conference",
                        "--port",
                        str(conference_port),
                        "--keyserver-url",
                        keyserver_url,
                        "--data-dir",
                        str(tmp_path / "conference"),
                        env={"VEIL_JWT_ISSUER_URL": idp_url},
                    )
                )
                conference_url = f"http://127.0.0.1:{conference_port}"
                await asyncio.to_thread(wait_for, conference_url, conference)
                await _meet_through_a_replica_failure(
                    idp_url, keyserver_url, conference_url, keyservers, proxy
                )

        asyncio.run(scenario())
    # Both replicas wrote one audit chain, unbroken.
    assert verify_audit(fresh_postgres_url).ok


async def _meet_through_a_replica_failure(
    idp_url: str,
    keyserver_url: str,
    conference_url: str,
    keyservers: dict[int, subprocess.Popen[str]],
    proxy: RoundRobin,
) -> None:
    devices = []
    async with contextlib.AsyncExitStack() as stack:
        for name in ("alice", "bob", "carol"):
            user = f"{name}-{secrets.token_hex(3)}"

            async def token(audience: str, user: str = user) -> str:
                async with httpx.AsyncClient() as http:
                    response = await http.post(
                        f"{idp_url}/token", json={"sub": user, "audience": audience}
                    )
                    return str(response.json()["token"])

            device = await Device.initialize(
                keyserver_url=keyserver_url, conference_url=conference_url, tokens=token,
                store=MemoryDeviceStore(secrets.token_bytes(32)),
            )  # fmt: skip
            devices.append(await stack.enter_async_context(device))
        alice, bob, carol = devices
        ma = await Meeting.start(alice, invitees=[bob.user_id, carol.user_id], timers=TIMERS)
        mb, mc = await asyncio.gather(
            *(Meeting.join(d, ma.invitation, timers=TIMERS) for d in (bob, carol))
        )
        meetings = [ma, mb, mc]
        try:
            assert {m.epoch for m in meetings} == {0}
            # Both replicas served the meeting so far.
            assert all(count > 0 for count in proxy.connections.values()), proxy.connections
            # Every device's next request goes to the replica about to be killed, so that
            # the rekey's requests meet it dead whatever the timing.
            killed, survivor = proxy.backends
            proxy.favour(killed)
            await mc.leave()  # the manager removes Carol and rekeys: kill a replica now
            keyservers[killed].send_signal(signal.SIGKILL)
            keyservers[killed].wait(10)
            served = proxy.connections[survivor]
            for m in (ma, mb):
                await m.wait_for_epoch(1, timeout=60)
            # The devices' connections to the killed replica broke; their next ones
            # found it down, and the other replica answered them.
            assert proxy.refused >= 1 and proxy.connections[survivor] > served
            assert ma.security_code == mb.security_code
            assert carol.user_id not in ma.members and ma.members == mb.members
            assert mc.epochs.key(1) is None
        finally:
            for m in meetings:
                with contextlib.suppress(Exception):
                    await m.close(rotate_device_keys=False)
