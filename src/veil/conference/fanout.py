"""Fan-out backends: how a message published on one replica reaches every replica.

``MemoryFanout`` serves one process. ``RedisFanout`` (Redis pub/sub) and
``NatsFanout`` (NATS core subjects) let several conference-service replicas serve one
room: each replica subscribes to a room's channels while it has local participants.
Delivery callbacks run on the event loop and must not block (they only enqueue).
"""

import asyncio
import contextlib
import contextvars
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

Deliver = Callable[[bytes], None]
logger = logging.getLogger(__name__)


class Fanout(ABC):
    """Publish bytes on a channel; every subscriber of the channel, on any replica,
    gets them (at most once; ordering is not promised across publishers)."""

    @abstractmethod
    async def publish(self, channel: str, message: bytes) -> None: ...

    @abstractmethod
    async def subscribe(self, channel: str, deliver: Deliver) -> None: ...

    @abstractmethod
    async def unsubscribe(self, channel: str) -> None: ...

    async def close(self) -> None:
        return None

    async def ping(self) -> str:
        """Raise unless the backend answers (for readiness); return its name."""
        return "memory"


class MemoryFanout(Fanout):
    def __init__(self) -> None:
        self._subscribers: dict[str, Deliver] = {}

    async def publish(self, channel: str, message: bytes) -> None:
        deliver = self._subscribers.get(channel)
        if deliver is not None:
            deliver(message)

    async def subscribe(self, channel: str, deliver: Deliver) -> None:
        self._subscribers[channel] = deliver

    async def unsubscribe(self, channel: str) -> None:
        self._subscribers.pop(channel, None)


class RedisFanout(Fanout):
    """Redis pub/sub: one connection publishes, one listens for all of this replica's
    channels. A fixed keep-alive channel stays subscribed so the listener never idles
    on an empty subscription set."""

    _KEEPALIVE = "veil.fanout.keepalive"

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._client = redis.Redis.from_url(url)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._subscribers: dict[str, Deliver] = {}
        self._listener: asyncio.Task[None] | None = None

    async def _ensure_listener(self) -> None:
        if self._listener is None:
            await self._pubsub.subscribe(self._KEEPALIVE)
            # A context of its own: not the request id of the connection that started it.
            self._listener = asyncio.create_task(self._listen(), context=contextvars.Context())

    async def _listen(self) -> None:
        import redis.exceptions

        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                # redis-py reconnects and subscribes again on the next call; messages
                # published meanwhile are lost (pub/sub is at-most-once), and boards
                # fill such gaps from the database.
                logger.warning("fan-out: lost the Redis connection; reconnecting")
                await asyncio.sleep(1.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"].decode()
            deliver = self._subscribers.get(channel)
            if deliver is not None:
                deliver(message["data"])

    async def publish(self, channel: str, message: bytes) -> None:
        await self._client.publish(channel, message)

    async def ping(self) -> str:
        await self._client.ping()  # type: ignore[misc]  # (typed for both clients)
        return "redis"

    async def subscribe(self, channel: str, deliver: Deliver) -> None:
        await self._ensure_listener()
        self._subscribers[channel] = deliver
        await self._pubsub.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._subscribers.pop(channel, None)
        await self._pubsub.unsubscribe(channel)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._client.aclose()


class NatsFanout(Fanout):
    """NATS core subjects (at-most-once, like Redis pub/sub)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._client: Any = None
        self._subscriptions: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    async def _connected(self) -> Any:
        async with self._lock:
            if self._client is None:
                import nats

                # In a context of its own: its tasks outlive the request that connects.
                connecting = nats.connect(self._url, connect_timeout=5)
                self._client = await asyncio.create_task(connecting, context=contextvars.Context())
            return self._client

    async def ping(self) -> str:
        client = await self._connected()
        if not client.is_connected:
            raise ConnectionError("not connected to NATS")
        await client.flush(timeout=2)  # a round trip to the server
        return "nats"

    async def publish(self, channel: str, message: bytes) -> None:
        await (await self._connected()).publish(channel, message)

    async def subscribe(self, channel: str, deliver: Deliver) -> None:
        async def handler(message: Any) -> None:
            deliver(message.data)

        client = await self._connected()
        self._subscriptions[channel] = await client.subscribe(channel, cb=handler)
        await client.flush()  # the subscription is live on the server when this returns

    async def unsubscribe(self, channel: str) -> None:
        subscription = self._subscriptions.pop(channel, None)
        if subscription is not None:
            await subscription.unsubscribe()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.drain()


def create_fanout(url: str | None) -> Fanout:
    if url is None:
        return MemoryFanout()
    scheme = urlsplit(url).scheme
    if scheme in ("redis", "rediss"):
        return RedisFanout(url)
    if scheme == "nats":
        return NatsFanout(url)
    raise ValueError(f"unsupported fan-out URL scheme {scheme!r}")


def channel(kind: str, room_id: str) -> str:
    """A channel name safe for Redis and NATS (room ids may hold dots, which NATS
    reads as subject separators)."""
    return f"veil.{kind}.{room_id.encode().hex()}"
