"""What a meeting tells its application: typed events, to callbacks and async iterators.

``meeting.events.subscribe()`` gives an async iterator of every event from then on
(each subscriber has its own queue, unbounded: read it, or stop iterating);
``meeting.events.on(callback)`` calls a plain function for each event, in the
meeting's task (it must not block; an exception it raises goes to the event loop's
exception handler, never into the meeting). Nothing a
meeting does fails silently: a failure of background work (a rekey that could not
be posted, a removal the key service refused, a malformed or untrusted post) is a
``MeetingFailure`` event.
"""

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal, Union


@dataclass(frozen=True)
class ParticipantJoined:
    sender: int
    user_id: str
    device_id: str


@dataclass(frozen=True)
class ParticipantLeft:
    sender: int
    user_id: str
    device_id: str


@dataclass(frozen=True)
class EpochChanged:
    """This device holds a new epoch's key (or, two admins having raced, the key every
    client agreed on for the epoch)."""

    epoch: int
    members: tuple[str, ...]
    security_code: str
    manager: str
    """The device id of the key's poster, who manages the meeting from then on."""


@dataclass(frozen=True)
class ChatReceived:
    user_id: str
    sender: int
    epoch: int
    text: str = field(repr=False)


@dataclass(frozen=True)
class ConnectionChanged:
    channel: Literal["board", "media"]
    state: str
    """"connected", "reconnecting", "failed" or "closed"."""


@dataclass(frozen=True)
class ManagementChanged:
    """The manager's heartbeat named a new deputy, or a deputy took over."""

    manager: str
    deputy: int | None


@dataclass(frozen=True)
class MeetingFailure:
    """Something the meeting did in the background failed, or a post was refused."""

    error: BaseException


@dataclass(frozen=True)
class Removed:
    """This device is no longer in the meeting's group: it holds no key any more."""


@dataclass(frozen=True)
class Ended:
    """The meeting ended: every key is gone."""


MeetingEvent = Union[  # noqa: UP007
    ParticipantJoined, ParticipantLeft, EpochChanged, ChatReceived, ConnectionChanged,
    ManagementChanged, MeetingFailure, Removed, Ended,
]  # fmt: skip

_HISTORY = 256


class EventStream:
    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[MeetingEvent]] = []
        self._callbacks: list[Callable[[MeetingEvent], None]] = []
        self.failures: deque[BaseException] = deque(maxlen=_HISTORY)
        """The newest failures (also sent as ``MeetingFailure`` events), for a look back."""

    def on(self, callback: Callable[[MeetingEvent], None]) -> None:
        self._callbacks.append(callback)

    def subscribe(self) -> AsyncIterator[MeetingEvent]:
        queue: asyncio.Queue[MeetingEvent] = asyncio.Queue()
        self._queues.append(queue)

        async def events() -> AsyncIterator[MeetingEvent]:
            try:
                while True:
                    yield await queue.get()
            finally:
                self._queues.remove(queue)

        return events()

    def emit(self, event: MeetingEvent) -> None:
        if isinstance(event, MeetingFailure):
            self.failures.append(event.error)
        for queue in self._queues:
            queue.put_nowait(event)
        for callback in list(self._callbacks):
            try:
                callback(event)
            except Exception as exc:  # the application's bug must not stop the meeting
                asyncio.get_running_loop().call_exception_handler(
                    {"message": "a meeting event callback raised", "exception": exc}
                )

    def fail(self, error: BaseException) -> None:
        self.emit(MeetingFailure(error))
