"""Open connections' devices are looked up again together (``veil.conference.watch``):
one request per 500 devices each round, not one per connection; a revoked or
unknown device's connections are told, the others not; a key service that does not
answer leaves them up; an older key service is asked one device at a time."""

import asyncio
import contextlib
import json
from collections import Counter

import httpx

from veil.conference.directory import DeviceDirectory
from veil.conference.watch import DeviceWatch
from veil.crypto.signing import SigningKey
from veil.protocol import MAX_LOOKUP_DEVICES, b64encode

KEY = b64encode(bytes(SigningKey.generate().verifying_key))


class KeyService:
    """Answers batch lookups (or, as an older service, only single ones)."""

    def __init__(self, *, batches: bool = True) -> None:
        self.batches = batches
        self.requests: Counter[str] = Counter()
        self.revoked: set[str] = set()
        self.unknown: set[str] = set()
        self.failing = False

    def _record(self, device_id: str) -> dict[str, str]:
        status = "revoked" if device_id in self.revoked else "active"
        return {"device_id": device_id, "user_id": "u", "signing_key": KEY, "status": status}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests[request.method] += 1
        if self.failing:
            return httpx.Response(503)
        if request.method == "POST":
            if not self.batches:
                return httpx.Response(405)
            ids = json.loads(request.content)["device_ids"]
            assert len(ids) <= MAX_LOOKUP_DEVICES
            known = [self._record(i) for i in ids if i not in self.unknown]
            return httpx.Response(200, json={"devices": known})
        device_id = request.url.path.rsplit("/", 1)[1]
        if device_id in self.unknown:
            return httpx.Response(404)
        return httpx.Response(200, json=self._record(device_id))


async def _watching(
    watch: DeviceWatch, stack: contextlib.AsyncExitStack, device_ids: list[str]
) -> dict[str, asyncio.Event]:
    return {d: await stack.enter_async_context(watch.watching(d)) for d in device_ids}


def _run(keys: KeyService, scenario) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        transport = httpx.MockTransport(keys)
        async with httpx.AsyncClient(base_url="http://keys.invalid", transport=transport) as http:
            watch = DeviceWatch(DeviceDirectory(http, ttl=5), interval=3600)
            try:
                await scenario(watch)
            finally:
                await watch.close()

    asyncio.run(main())


def test_thousands_of_connections_cost_a_request_per_500_devices() -> None:
    keys = KeyService()
    keys.revoked, keys.unknown = {"d-0042", "d-2400"}, {"d-1999"}

    async def scenario(watch: DeviceWatch) -> None:
        async with contextlib.AsyncExitStack() as stack:
            ids = [f"d-{i:04d}" for i in range(2500)]
            events = await _watching(watch, stack, ids)
            media = await stack.enter_async_context(watch.watching("d-0042"))  # 2nd connection
            await watch.check()
            assert keys.requests == {"POST": 5}
            told = {d for d, e in events.items() if e.is_set()}
            assert told == {"d-0042", "d-2400", "d-1999"} and media.is_set()

    _run(keys, scenario)


def test_a_key_service_that_does_not_answer_leaves_connections_up() -> None:
    keys = KeyService()
    keys.failing, keys.revoked = True, {"d-1"}

    async def scenario(watch: DeviceWatch) -> None:
        async with watch.watching("d-1") as revoked:
            await watch.check()
            assert not revoked.is_set()
            keys.failing = False
            await watch.check()
            assert revoked.is_set()

    _run(keys, scenario)


def test_an_older_key_service_is_asked_one_device_at_a_time() -> None:
    keys = KeyService(batches=False)
    keys.revoked = {"d-2"}

    async def scenario(watch: DeviceWatch) -> None:
        async with contextlib.AsyncExitStack() as stack:
            events = await _watching(watch, stack, ["d-1", "d-2"])
            await watch.check()
            assert keys.requests == {"POST": 1, "GET": 2}
            assert {d for d, e in events.items() if e.is_set()} == {"d-2"}

    _run(keys, scenario)


def test_closed_connections_are_not_looked_up_and_leave_no_task() -> None:
    keys = KeyService()

    async def scenario(watch: DeviceWatch) -> None:
        async with watch.watching("d-1"), watch.watching("d-2"):
            pass
        async with watch.watching("d-3"):
            await watch.check()
        assert watch._task is None
        await watch.check()  # nothing watched: nothing asked
        assert keys.requests == {"POST": 1}

    _run(keys, scenario)


def test_the_watch_runs_every_interval() -> None:
    keys = KeyService()
    keys.revoked = {"d-1"}

    async def main() -> None:
        transport = httpx.MockTransport(keys)
        async with httpx.AsyncClient(base_url="http://keys.invalid", transport=transport) as http:
            watch = DeviceWatch(DeviceDirectory(http, ttl=5), interval=0.05)
            async with watch.watching("d-1") as revoked:
                await asyncio.wait_for(revoked.wait(), 5)
            await watch.close()

    asyncio.run(main())
