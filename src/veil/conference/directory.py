"""Device records from the key service, cached briefly.

The conference service trusts the key service for one thing: which user a device
belongs to, its signing key, and whether it is still active. A record is cached for
``ttl`` seconds, so a revocation reaches the board within that time; a signature that
fails against a cached key is retried once against a fresh record (key rotation).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http, self._ttl, self._clock = http, ttl, clock
        self._cache: dict[str, tuple[float, DeviceRecord | None]] = {}

    async def get(self, device_id: str, *, fresh: bool = False) -> DeviceRecord | None:
        """The device's record, or ``None`` if the key service does not know it."""
        cached = self._cache.get(device_id)
        if cached is not None and not fresh and self._clock() - cached[0] < self._ttl:
            return cached[1]
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
            data = response.json()
            record = DeviceRecord(
                device_id=data["device_id"],
                user_id=data["user_id"],
                signing_key=VerifyingKey(b64decode(data["signing_key"])),
                active=data["status"] == "active",
            )
        else:
            raise DeviceLookupError(f"the key service answered {response.status_code}")
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[device_id] = (self._clock(), record)
        return record
