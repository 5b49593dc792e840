"""Meeting fixtures: the real services (dev IdP, key service, conference service) on
loopback in a background thread, shared by every meeting test; ``Env``, which makes
devices for unique users and runs a test's async body on a fresh event loop; short
real timers; and ``FakeClock``, a meeting clock that only moves when a test says so.

Each test uses its own user names and meeting ids (random suffixes), so the tests
share one stack without seeing each other's users, groups or boards.
"""

import asyncio
import contextlib
import inspect
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from veil.client import Device, MemoryDeviceStore
from veil.client.conference import Post
from veil.client.meeting import Meeting, MeetingTimers
from veil.idp import DevIdentityProvider
from veil.protocol.board import KeyPost
from veil.stack import Endpoints, ThreadedStack, stack_in_thread, threaded_stack

T = TypeVar("T")

FAST = MeetingTimers(
    debounce=0.3, rekey_interval=60.0, join_retries=(0.2, 0.3, 0.3), epoch_grace=0.3
)
"""Short real timers: a joiner gives up after ~0.8 s; a leave rekeys 0.3 s later."""


@dataclass(frozen=True)
class Stack:
    endpoints: Endpoints
    idp: DevIdentityProvider
    data_dir: Path


@pytest.fixture(scope="session")
def meeting_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    idp = DevIdentityProvider()
    data_dir = tmp_path_factory.mktemp("meeting-stack")
    with stack_in_thread(data_dir, idp=idp) as endpoints:
        yield Stack(endpoints, idp, data_dir)


class FakeClock:
    """A meeting ``Clock`` whose time moves only by ``advance``; ``sleep`` returns once
    the advanced time passes its deadline (never by wall time)."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now
        self._waiters: list[asyncio.Future[None]] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        deadline = self.now + seconds
        while self.now < deadline:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        await asyncio.sleep(0)

    @property
    def sleepers(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def advance(self, seconds: float) -> None:
        self.now += seconds
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class Env:
    """Makes devices of unique users against the shared stack, and closes what it made."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._devices: list[Device] = []
        self._meetings: list[Meeting] = []

    @staticmethod
    def name(prefix: str = "user") -> str:
        return f"{prefix}-{secrets.token_hex(4)}"

    @staticmethod
    def meeting_id(prefix: str = "meeting") -> str:
        return f"{prefix}-{secrets.token_hex(6)}"

    def tokens(self, user_id: str) -> Callable[[str], Awaitable[str]]:
        async def token(audience: str) -> str:
            return self.stack.idp.issue(user_id, aud=audience)

        return token

    async def device(self, user_id: str, **options: Any) -> Device:
        device = await Device.initialize(
            keyserver_url=self.stack.endpoints.keyserver_url,
            conference_url=self.stack.endpoints.conference_url,
            tokens=self.tokens(user_id),
            store=MemoryDeviceStore(secrets.token_bytes(32)),
            **options,
        )
        self._devices.append(device)
        return device

    async def devices(self, *user_ids: str) -> list[Device]:
        return [await self.device(u) for u in user_ids]

    fast = FAST
    FakeClock = FakeClock

    @staticmethod
    async def eventually(
        check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0
    ) -> None:
        """Poll ``check`` (plain or async) until it holds (or fail after ``timeout`` s of
        wall time)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not await _held(check()):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("the condition did not hold in time")
            await asyncio.sleep(0.05)

    async def start_and_join(
        self,
        first: Device,
        others: list[Device],
        *,
        timers: MeetingTimers = FAST,
        meeting_id: str | None = None,
        extra_invitees: list[str] | None = None,
        **start_options: Any,
    ) -> list[Meeting]:
        """``first`` starts a meeting inviting the users of ``others``, who then join."""
        meeting_id = meeting_id or self.meeting_id()
        invitees = sorted({d.user_id for d in others} - {first.user_id} | set(extra_invitees or ()))
        started = await Meeting.start(
            first, meeting_id, invitees=invitees, timers=timers, **start_options
        )
        self.track(started)
        clock = start_options.get("clock")  # one injected clock for everyone, if any
        joined = await asyncio.gather(
            *(Meeting.join(d, started.invitation, timers=timers, clock=clock) for d in others),
            return_exceptions=True,
        )
        self.track(*(m for m in joined if isinstance(m, Meeting)))
        for outcome in joined:
            if isinstance(outcome, BaseException):
                raise outcome
        return [started, *(m for m in joined if isinstance(m, Meeting))]

    @staticmethod
    async def newest_key_post(device: Device, meeting_id: str) -> tuple[Post, KeyPost]:
        """The newest key post on a meeting's board, read as ``device`` reads the board
        (from outside any ``Meeting``)."""
        board = device.board(meeting_id)
        await board.connect(since=0)
        newest: tuple[Post, KeyPost] | None = None
        # Until the board is quiet, or for a second (heartbeats never let it be quiet).
        deadline = asyncio.get_running_loop().time() + 1.0
        try:
            while asyncio.get_running_loop().time() < deadline:
                try:
                    post = await board.next(timeout=0.3)
                except TimeoutError:
                    break
                if post.kind == KeyPost.KIND:
                    newest = (post, KeyPost.parse(post.body))
        finally:
            await board.close()
        assert newest is not None, "no key post on the board"
        return newest

    def track(self, *meetings: Meeting) -> None:
        """Close these meetings when the test ends (even if it fails)."""
        self._meetings.extend(meetings)

    def run(self, main: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
        """Run ``main()`` on a new event loop; close its meetings and devices afterwards."""

        async def wrapper() -> T:
            try:
                return await asyncio.wait_for(main(), timeout)
            finally:
                for meeting in self._meetings:
                    with contextlib.suppress(Exception):
                        await meeting.close(rotate_device_keys=False)
                for device in self._devices:
                    await device.close()
                self._meetings.clear()
                self._devices.clear()

        return asyncio.run(wrapper())


@pytest.fixture
def env(meeting_stack: Stack) -> Env:
    return Env(meeting_stack)


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[tuple[Env, ThreadedStack]]:
    """An ``Env`` on services of its own, whose conference service the test can stop and
    start again (``ThreadedStack``)."""
    idp = DevIdentityProvider()
    with threaded_stack(tmp_path, idp=idp) as services:
        yield Env(Stack(services.endpoints, idp, tmp_path)), services


async def _held(outcome: bool | Awaitable[bool]) -> bool:
    return await outcome if inspect.isawaitable(outcome) else bool(outcome)
