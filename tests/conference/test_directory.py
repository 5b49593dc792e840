"""The conference service's cache of device records (``veil.conference.directory``):
records are kept for ``ttl`` seconds of the injected clock, ``fresh`` asks again,
unknown devices are cached too, failures are not, and a full cache drops the least
recently used record (not all of them)."""

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import pytest

from veil.conference.directory import DeviceDirectory, DeviceLookupError
from veil.crypto.signing import SigningKey
from veil.protocol import b64encode

T = TypeVar("T")
KEY = b64encode(bytes(SigningKey.generate().verifying_key))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class KeyService:
    """Answers device lookups, counting them; ``status`` and ``known`` change answers."""

    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()
        self.status = "active"
        self.known = {"alice-phone", "alice-laptop", "bob-phone"}
        self.failing = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        device_id = request.url.path.rsplit("/", 1)[1]
        self.asked[device_id] += 1
        if self.failing:
            return httpx.Response(500)
        if device_id not in self.known:
            return httpx.Response(404, json={"error": {"code": "not_found", "message": ""}})
        body = {
            "device_id": device_id,
            "user_id": device_id.split("-")[0],
            "signing_key": KEY,
            "status": self.status,
        }
        return httpx.Response(200, json=body)


def run(
    keys: KeyService, clock: Clock, body: Callable[[DeviceDirectory], Awaitable[T]], **options: int
) -> T:
    async def main() -> T:
        transport = httpx.MockTransport(keys)
        async with httpx.AsyncClient(base_url="http://keys.invalid", transport=transport) as http:
            return await body(DeviceDirectory(http, ttl=5, clock=clock, **options))

    return asyncio.run(main())


def test_a_record_is_kept_for_the_ttl_then_asked_for_again() -> None:
    keys, clock = KeyService(), Clock()

    async def body(directory: DeviceDirectory) -> None:
        record = await directory.get("alice-phone")
        assert record is not None and (record.user_id, record.active) == ("alice", True)
        keys.status = "revoked"
        clock.now += 4.999
        assert await directory.get("alice-phone") == record  # cached: not asked
        assert keys.asked["alice-phone"] == 1
        clock.now += 0.001  # the ttl has passed: the revocation is seen
        again = await directory.get("alice-phone")
        assert again is not None and not again.active
        assert keys.asked["alice-phone"] == 2

    run(keys, clock, body)


def test_fresh_asks_again_and_refreshes_the_cache() -> None:
    keys, clock = KeyService(), Clock()

    async def body(directory: DeviceDirectory) -> None:
        await directory.get("bob-phone")
        keys.status = "revoked"
        fresh = await directory.get("bob-phone", fresh=True)
        assert fresh is not None and not fresh.active
        cached = await directory.get("bob-phone")  # the fresh record, kept
        assert cached is not None and not cached.active
        assert keys.asked["bob-phone"] == 2

    run(keys, clock, body)


def test_an_unknown_device_is_cached_as_unknown_until_the_ttl_passes() -> None:
    keys, clock = KeyService(), Clock()

    async def body(directory: DeviceDirectory) -> None:
        assert await directory.get("carol-phone") is None
        keys.known.add("carol-phone")
        assert await directory.get("carol-phone") is None
        assert keys.asked["carol-phone"] == 1
        clock.now += 5
        assert await directory.get("carol-phone") is not None

    run(keys, clock, body)


def test_a_failed_lookup_is_not_cached() -> None:
    keys, clock = KeyService(), Clock()
    keys.failing = True

    async def body(directory: DeviceDirectory) -> None:
        with pytest.raises(DeviceLookupError, match="the key service answered 500"):
            await directory.get("alice-phone")
        keys.failing = False
        assert await directory.get("alice-phone") is not None
        assert keys.asked["alice-phone"] == 2

    run(keys, clock, body)


def test_a_full_cache_drops_the_least_recently_used_record_only() -> None:
    keys, clock = KeyService(), Clock()

    async def body(directory: DeviceDirectory) -> None:
        await directory.get("alice-phone")
        await directory.get("alice-laptop")
        await directory.get("alice-phone")  # used again: the laptop is the oldest now
        await directory.get("bob-phone")  # a third record in a cache of two
        await directory.get("alice-phone")
        await directory.get("bob-phone")
        assert keys.asked == {"alice-phone": 1, "alice-laptop": 1, "bob-phone": 1}
        await directory.get("alice-laptop")  # dropped: asked again
        assert keys.asked["alice-laptop"] == 2

    run(keys, clock, body, maxsize=2)
