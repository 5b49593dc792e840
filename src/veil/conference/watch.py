"""Open connections' devices, looked up again together: a revoked device's board and
media connections are closed within ``device_recheck_seconds``.

Every ``interval`` seconds, the devices of all open connections of this process are
looked up with one request per ``MAX_LOOKUP_DEVICES`` (``DeviceDirectory.refresh``),
where each connection used to ask for its own device: at 10,000 devices that was
hundreds of requests a second over one HTTP client, and the service stalled. A
device the key service no longer knows, or knows as revoked, has each of its
connections told; while the key service does not answer, connections stay up (each
proved an active device when it opened).
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from veil.conference.directory import DeviceDirectory, DeviceLookupError
from veil.protocol import MAX_LOOKUP_DEVICES


class DeviceWatch:
    def __init__(self, directory: DeviceDirectory, interval: float) -> None:
        self._directory = directory
        self._interval = interval
        self._revoked: dict[str, set[asyncio.Event]] = {}  # device id -> its connections'
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def watching(self, device_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set once ``device_id`` is found revoked, while the block runs."""
        revoked = asyncio.Event()
        self._revoked.setdefault(device_id, set()).add(revoked)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        try:
            yield revoked
        finally:
            events = self._revoked.get(device_id, set())
            events.discard(revoked)
            if not events:
                self._revoked.pop(device_id, None)
            if not self._revoked and self._task is not None:
                self._task.cancel()  # nothing to watch: no task left behind
                self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check()

    async def check(self) -> None:
        """Look every watched device up once; tell the connections of revoked ones."""
        device_ids = list(self._revoked)
        for start in range(0, len(device_ids), MAX_LOOKUP_DEVICES):
            try:
                found = await self._directory.refresh(
                    device_ids[start : start + MAX_LOOKUP_DEVICES]
                )
            except DeviceLookupError:
                continue
            for device_id, record in found.items():
                if record is None or not record.active:
                    for event in self._revoked.get(device_id, ()):
                        event.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
