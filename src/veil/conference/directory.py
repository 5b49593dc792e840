"""Device records from the key service, cached briefly.

The conference service trusts the key service for one thing: which user a device
belongs to, its signing key, and whether it is still active. A record is cached for
``ttl`` seconds, so a revocation reaches the board within that time; a signature that
fails against a cached key is retried once against a fresh record (key rotation). At
most ``maxsize`` records are kept, the least recently used going first.
"""

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
from cachetools import TTLCache

from veil.crypto.signing import VerifyingKey
from veil.protocol import b64decode, path_segment


class DeviceLookupError(Exception):
    """The key service could not be asked (not: the device does not exist)."""


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    user_id: str
    signing_key: VerifyingKey
    active: bool


class DeviceDirectory:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        ttl: float,
        maxsize: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._cache: TTLCache[str, DeviceRecord | None] = TTLCache(maxsize, ttl, timer=clock)

    async def get(self, device_id: str, *, fresh: bool = False) -> DeviceRecord | None:
        """The device's record, or ``None`` if the key service does not know it."""
        if not fresh:
            with contextlib.suppress(KeyError):  # not cached, or expired
                return self._cache[device_id]
        try:
            response = await self._http.get(f"/v1/devices/{path_segment(device_id)}")
        except httpx.HTTPError as exc:
            raise DeviceLookupError(
                f"the key service did not answer: {type(exc).__name__}"
            ) from None
        record: DeviceRecord | None
        if response.status_code in (404, 422):  # 422: not even an id
            record = None
        elif response.is_success:
            record = _record(response.json())
        else:
            raise DeviceLookupError(f"the key service answered {response.status_code}")
        self._cache[device_id] = record
        return record

    async def refresh(self, device_ids: Sequence[str]) -> dict[str, DeviceRecord | None]:
        """Fresh records of up to ``MAX_LOOKUP_DEVICES`` devices in one request
        (``POST /v1/devices/lookup``), kept as ``get`` keeps them; ``None`` for those the
        key service does not know. A key service without that route (an older one) is
        asked one device at a time."""
        try:
            response = await self._http.post(
                "/v1/devices/lookup", json={"device_ids": list(device_ids)}
            )
        except httpx.HTTPError as exc:
            raise DeviceLookupError(
                f"the key service did not answer: {type(exc).__name__}"
            ) from None
        if response.status_code in (404, 405):
            return {device_id: await self.get(device_id, fresh=True) for device_id in device_ids}
        if not response.is_success:
            raise DeviceLookupError(f"the key service answered {response.status_code}")
        known = {r.device_id: r for r in map(_record, response.json()["devices"])}
        found = {device_id: known.get(device_id) for device_id in device_ids}
        for device_id, record in found.items():
            self._cache[device_id] = record
        return found


def _record(data: dict[str, str]) -> DeviceRecord:
    return DeviceRecord(
        device_id=data["device_id"],
        user_id=data["user_id"],
        signing_key=VerifyingKey(b64decode(data["signing_key"])),
        active=data["status"] == "active",
    )
