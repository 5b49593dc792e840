"""Client SDK fixtures: the real services (dev IdP, key service, conference service) on
loopback in a background thread, one stack per test module, and ``Sdk``, which makes
devices for unique users and runs a test's async body on a fresh event loop (the
services keep running on theirs).

Each test uses its own user names (``sdk.user("alice")`` adds a random suffix), so the
tests of a module share one stack without seeing each other's users, groups or
documents.
"""

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from veil.client import Device, DeviceStore, MemoryDeviceStore
from veil.idp import DevIdentityProvider
from veil.stack import Endpoints, stack_in_thread

T = TypeVar("T")


@dataclass(frozen=True)
class Stack:
    endpoints: Endpoints
    idp: DevIdentityProvider
    data_dir: Path

    @property
    def keyserver_database(self) -> Path:
        """The key service's SQLite file (tests that play a malicious key service edit it)."""
        return self.data_dir / "keyserver.sqlite3"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    idp = DevIdentityProvider()
    data_dir = tmp_path_factory.mktemp("stack")
    with stack_in_thread(data_dir, idp=idp) as endpoints:
        yield Stack(endpoints, idp, data_dir)


class Sdk:
    """Makes devices of unique users against the module's stack."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._open: list[Device] = []

    @staticmethod
    def user(prefix: str = "user") -> str:
        return f"{prefix}-{secrets.token_hex(4)}"

    def tokens(self, user_id: str) -> Callable[[str], Awaitable[str]]:
        async def token(audience: str) -> str:
            return self.stack.idp.issue(user_id, aud=audience)

        return token

    @staticmethod
    def store() -> MemoryDeviceStore:
        return MemoryDeviceStore(secrets.token_bytes(32))

    async def device(
        self, user_id: str, *, store: DeviceStore | None = None, **options: Any
    ) -> Device:
        """``Device.initialize`` for ``user_id`` (split trust unless ``mode`` says otherwise)."""
        options.setdefault("tokens", self.tokens(user_id))
        device = await Device.initialize(
            keyserver_url=self.stack.endpoints.keyserver_url,
            conference_url=self.stack.endpoints.conference_url,
            store=store if store is not None else self.store(),
            **options,
        )
        self._open.append(device)
        return device

    def run(self, main: Callable[[], Awaitable[T]]) -> T:
        """Run ``main()`` on a new event loop; close every device it made afterwards."""

        async def wrapper() -> T:
            try:
                return await main()
            finally:
                while self._open:
                    await self._open.pop().close()

        return asyncio.run(wrapper())


@pytest.fixture
def sdk(stack: Stack) -> Sdk:
    return Sdk(stack)
