"""A replica's local view of its rooms: which connections listen on which channel.

The first local listener of a channel subscribes this replica to it on the fan-out
backend; the last one to leave unsubscribes. Everything published reaches every
local listener through one fan-out subscription per channel and replica.
"""

import asyncio
import itertools

from veil.conference.fanout import Deliver, Fanout


class Hub:
    def __init__(self, fanout: Fanout) -> None:
        self.fanout = fanout
        self._listeners: dict[str, dict[int, Deliver]] = {}
        self._ids = itertools.count()
        self._lock = asyncio.Lock()

    def _dispatch(self, channel: str) -> Deliver:
        def deliver(message: bytes) -> None:
            for listener in list(self._listeners.get(channel, {}).values()):
                listener(message)

        return deliver

    async def join(self, channel: str, deliver: Deliver) -> int:
        async with self._lock:
            listeners = self._listeners.get(channel)
            if listeners is None:
                listeners = self._listeners[channel] = {}
                await self.fanout.subscribe(channel, self._dispatch(channel))
            listener_id = next(self._ids)
            listeners[listener_id] = deliver
            return listener_id

    async def leave(self, channel: str, listener_id: int) -> None:
        async with self._lock:
            listeners = self._listeners.get(channel, {})
            listeners.pop(listener_id, None)
            if not listeners and channel in self._listeners:
                del self._listeners[channel]
                await self.fanout.unsubscribe(channel)

    async def publish(self, channel: str, message: bytes) -> None:
        await self.fanout.publish(channel, message)

    def listeners(self, channel: str) -> int:
        return len(self._listeners.get(channel, {}))
