"""A meeting's timers and the clock they read (injectable, so tests move time by hand)."""

import asyncio
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """Where a meeting's timers read the time and wait."""

    def time(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class MeetingTimers:
    """Every value can be changed (the demo and the tests shorten them)."""

    debounce: float = 10.0
    """After a leave, how long the manager waits for more leavers before it rekeys."""
    rekey_interval: float = 300.0
    """The manager rekeys when this passes without a rekey (restarts at every rekey)."""
    join_retries: tuple[float, ...] = (1.0, 5.0, 10.0, 10.0)
    """A joiner's waits between attempts to get the key transformed for it."""
    epoch_grace: float = 5.0
    """How long a receiver keeps the previous epoch's keys after a rekey."""
    heartbeat: float = 3.0
    """How often the manager posts that it is alive (``alive``)."""
    failover: float = 10.0
    """How long the deputy waits without a sign of life from the manager before it
    takes over (it looks every ``heartbeat / 2``), and the manager without one from its
    deputy before it names another. With the defaults a take-over starts at most 11.5 s
    after the manager's last post and ends with a rekey well inside 15 s."""
    post_timeout: float = 120.0
    """How long a post (a key, a leave, a chat message) is retried across reconnects
    before the meeting reports it failed."""

    def __post_init__(self) -> None:
        if self.failover <= self.heartbeat:
            raise ValueError("failover must be longer than the heartbeat interval")
