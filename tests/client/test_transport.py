"""``Device.initialize(transport=...)``: both services' HTTP calls go through the
transport the application gives. Here it is the key service's and the conference
service's ASGI apps, in this process through ``httpx.ASGITransport``, with no socket:
a device registers (split trust: one share from each service), creates a group, and a
document encrypted to it is read by a member and by an admin."""

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from veil.client import Device, MemoryDeviceStore
from veil.conference import ConferenceSettings
from veil.conference import create_app as create_conference
from veil.idp import DevIdentityProvider
from veil.keyserver import KeyServerSettings
from veil.keyserver import create_app as create_keyserver
from veil.protocol import CONFERENCE_AUDIENCE, KEYSERVER_AUDIENCE

KEYSERVER_URL = "http://keys.invalid"
CONFERENCE_URL = "http://meet.invalid"


class ByHost(httpx.AsyncBaseTransport):
    """One transport for both services: each request goes to its host's app."""

    def __init__(self, routes: dict[str, httpx.AsyncBaseTransport]) -> None:
        self._routes = routes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._routes[request.url.host].handle_async_request(request)


@contextlib.asynccontextmanager
async def running(*apps: FastAPI) -> AsyncIterator[None]:
    """The apps' start-up and shut-down, which ``ASGITransport`` does not run."""
    async with contextlib.AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
        yield


def in_process_services(data_dir: Path, idp: DevIdentityProvider) -> tuple[FastAPI, FastAPI]:
    common: dict[str, Any] = {"issuer": idp.issuer, "jwks": idp.jwks()}
    keyserver = create_keyserver(
        KeyServerSettings(
            database_url=f"sqlite:///{data_dir / 'keyserver.sqlite3'}",
            service_secret=secrets.token_bytes(32),
            audience=KEYSERVER_AUDIENCE,
            **common,
        )
    )
    conference = create_conference(
        ConferenceSettings(
            database_url=f"sqlite:///{data_dir / 'conference.sqlite3'}",
            keyserver_url=KEYSERVER_URL,  # for board and media only, not used here
            audience=CONFERENCE_AUDIENCE,
            **common,
        )
    )
    return keyserver, conference


def no_sockets(*_: object, **__: object) -> None:
    raise AssertionError("a network connection was attempted")


def test_a_device_works_against_the_services_in_process(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    idp = DevIdentityProvider()
    keyserver, conference = in_process_services(tmp_path, idp)
    transport = ByHost(
        {
            "keys.invalid": httpx.ASGITransport(app=keyserver),
            "meet.invalid": httpx.ASGITransport(app=conference),
        }
    )
    monkeypatch.setattr(socket.socket, "connect", no_sockets)
    monkeypatch.setattr(socket, "create_connection", no_sockets)

    def tokens(user_id: str) -> Callable[[str], Awaitable[str]]:
        async def token(audience: str) -> str:
            return idp.issue(user_id, aud=audience)

        return token

    async def device(user_id: str) -> Device:
        return await Device.initialize(
            keyserver_url=KEYSERVER_URL,
            conference_url=CONFERENCE_URL,
            tokens=tokens(user_id),
            store=MemoryDeviceStore(secrets.token_bytes(32)),
            transport=transport,
        )

    async def main() -> None:
        async with running(keyserver, conference):
            alice, bob, carol = [await device(u) for u in ("alice", "bob", "carol")]
            try:
                group = await alice.groups.create(members=["bob"], admins=["carol"])
                document = await alice.documents.encrypt(
                    b"minutes", groups=[group], keep_access=False
                )
                assert await bob.documents.decrypt(document) == b"minutes"
                # carol is an admin: the group's private key comes from the key service.
                group_key = await carol.groups.key(group)
                assert group_key.public_key == await alice.groups.public_key(group)
            finally:
                for each in (alice, bob, carol):
                    await each.close()

    asyncio.run(main())


def test_without_a_transport_the_device_really_connects(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The default is httpx's own transport (which the test above replaced)."""
    monkeypatch.setattr(socket.socket, "connect", no_sockets)
    monkeypatch.setattr(socket, "create_connection", no_sockets)

    async def token(audience: str) -> str:
        return "unused"

    # anyio's connect (happy eyeballs) wraps the failure of its one attempt in a group.
    with pytest.raises(ExceptionGroup) as caught:
        asyncio.run(
            Device.initialize(
                keyserver_url="http://127.0.0.1:9",
                conference_url="http://127.0.0.1:10",
                tokens=token,
                store=MemoryDeviceStore(secrets.token_bytes(32)),
            )
        )
    assert caught.group_contains(AssertionError, match="network connection was attempted")
