"""The SDK's one backoff policy (``veil.client.retry``): its two schedules, and a
dropped connection retrying along ``RECONNECT`` until it opens, is refused for good or
is closed."""

import asyncio
import itertools
from typing import Any

import pytest

from veil.client.conference import _Link
from veil.client.errors import DeviceRevoked, Unavailable
from veil.client.retry import RECONNECT, RETRY, Backoff


def test_reconnects_wait_longer_each_time_then_every_five_seconds() -> None:
    assert list(itertools.islice(RECONNECT, 8)) == [0.1, 0.5, 1.0, 2.0, 5.0, 5.0, 5.0, 5.0]
    assert [RECONNECT.delay(n) for n in range(7)] == [0.1, 0.5, 1.0, 2.0, 5.0, 5.0, 5.0]


def test_refused_work_waits_half_a_second_then_longer_up_to_five() -> None:
    assert [RETRY.delay(n) for n in range(7)] == [0.5, 1.0, 2.0, 5.0, 5.0, 5.0, 5.0]
    assert list(itertools.islice(RETRY, 6)) == [0.5, 1.0, 2.0, 5.0, 5.0, 5.0]


def test_a_schedule_repeats_its_only_delay() -> None:
    assert list(itertools.islice(Backoff((0.0,)), 3)) == [0.0, 0.0, 0.0]
    assert Backoff((2.0,)).delay(100) == 2.0


@pytest.mark.parametrize("delays", [(), (1.0, -0.5), (float("nan"),)])
def test_a_schedule_without_usable_delays_is_refused(delays: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="one or more delays, none negative"):
        Backoff(delays)


class Socket:
    closed = False

    async def close(self) -> None:
        self.closed = True


class Reconnecting:
    """A ``_Link`` whose opener fails as told, and whose waits are recorded, not slept."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.waits: list[float] = []
        self.states: list[str] = []
        self.socket = Socket()
        self.link = _Link(self.open, self.states.append, sleep=self.sleep)
        self.on_wait: Any = None

    async def open(self) -> Any:
        if self.failures:
            raise self.failures.pop(0)
        return self.socket

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.on_wait is not None:
            await self.on_wait()


def test_a_dropped_connection_retries_along_the_reconnect_schedule() -> None:
    down = Unavailable(503, "unavailable", "restarting")
    test = Reconnecting(*[down] * 6, ConnectionRefusedError("refused"))
    assert asyncio.run(test.link.reopen()) is test.socket
    assert test.waits == list(itertools.islice(RECONNECT, 8))
    assert test.states == ["reconnecting", "connected"]


def test_a_refusal_that_retrying_cannot_cure_ends_the_retries() -> None:
    revoked = DeviceRevoked(403, "device_revoked", "revoked")
    test = Reconnecting(Unavailable(503, "unavailable", ""), revoked)
    assert asyncio.run(test.link.reopen()) is None
    assert test.waits == [0.1, 0.5]
    assert (test.link.failure, test.states) == (revoked, ["reconnecting", "failed"])


def test_closing_the_connection_ends_the_retries() -> None:
    test = Reconnecting(*[Unavailable(503, "unavailable", "")] * 10)

    async def close_on_the_third_wait() -> None:
        if len(test.waits) == 3:
            await test.link.close()

    test.on_wait = close_on_the_third_wait
    assert asyncio.run(test.link.reopen()) is None
    assert test.waits == [0.1, 0.5, 1.0]
    assert test.states == ["reconnecting", "closed"]
