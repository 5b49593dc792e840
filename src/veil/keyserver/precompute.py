"""Transforms prepared before the ciphertext arrives (``veil.crypto.pre.PreparedTransform``).

Most of a group -> user -> device transform is fresh randomness and the keys: it can
be done before the next rekey, leaving one pairing and a signature for when the key
post comes (about 0.8 ms instead of 5 ms here). After each transform of a level-0
value, the chain it used is marked as wanted, and the worker processes prepare one
transform for it whenever no request is waiting for them; the next level-0 value
for the same device through the same group takes it.

Each prepared transform is used once (``take`` removes it), only for the exact keys
it was made with (a rotated or re-approved key has other bytes, so its chain
starts over), and only after the request that takes it has been authorized like
any other (``routes/transforms.py``). It is kept in this process's memory, nowhere
else: a replica has its own. Removing a member, revoking a device or rotating its keys
drops its chains here (``forget_key``, ``forget_group``); on another replica they are
never authorized again, and age out. The pool holds at most ``limit`` of them, least
recently wanted dropped first: a meeting larger than that costs what it cost without
a pool, for the devices beyond it.
"""

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from veil.keyserver.chains import ChainId
from veil.keyserver.transformer import Transformer, TransformerUnavailable

BATCH = 4
"""Chains one background job prepares: about 15 ms of a worker's time, the longest a
transform arriving meanwhile waits for that worker."""

QUIET = 0.25
"""Seconds without a transform before preparing starts: a rekey's burst of transforms
comes in waves (board fan-out, devices' requests) with short gaps between them, which
preparation jobs would fill and then hold the workers the next wave needs."""


@dataclass
class _Entry:
    keys: tuple[bytes, ...]  # exactly those it was prepared for
    prepared: list[bytes] = field(default_factory=list)


@dataclass(frozen=True)
class PoolStats:
    held: int
    """Prepared transforms in the pool."""
    wanted: int
    """Chains waiting for one."""
    taken: int
    """Transforms that used a prepared one, since the start."""
    missed: int
    """Transforms of a level-0 value that found none."""


class PreparedPool:
    """Prepared transforms by chain, at most ``limit``; ``run`` fills it."""

    def __init__(self, transformer: Transformer, limit: int) -> None:
        self._transformer = transformer
        self._limit = limit
        self._chains: OrderedDict[ChainId, _Entry] = OrderedDict()
        self._wanted: OrderedDict[ChainId, None] = OrderedDict()
        self._held = self._taken = self._missed = 0
        self._lock = threading.Lock()  # taken on request paths, filled by run()
        self._wake = asyncio.Event()
        self._last_transform = 0.0

    @property
    def enabled(self) -> bool:
        """Only worker processes prepare: in a thread, the work would hold the GIL."""
        return self._limit > 0 and self._transformer.pooled

    def take(self, chain_id: ChainId, keys: Sequence[bytes]) -> bytes | None:
        """A prepared transform for exactly ``keys``, removed from the pool, or None."""
        if not self.enabled:
            return None
        self._last_transform = time.monotonic()
        with self._lock:
            entry = self._chains.get(chain_id)
            if entry is None or not entry.prepared or entry.keys != tuple(keys):
                self._missed += 1
                return None
            self._held -= 1
            self._taken += 1
            return entry.prepared.pop()

    def want(self, chain_id: ChainId, keys: Sequence[bytes]) -> None:
        """Prepare a transform for ``keys`` (replacing any made for other keys)."""
        if not self.enabled:
            return
        keys = tuple(keys)
        with self._lock:
            entry = self._chains.get(chain_id)
            if entry is None or entry.keys != keys:
                self._drop(chain_id)
                entry = self._chains[chain_id] = _Entry(keys)
            self._chains.move_to_end(chain_id)
            if not entry.prepared:
                self._wanted[chain_id] = None
            while len(self._chains) > self._limit:
                self._drop(next(iter(self._chains)))
        self._wake.set()

    def forget_key(self, transform_key: bytes) -> None:
        """Drop every chain through ``transform_key``: its member was removed, its device
        revoked, or its key rotated."""
        with self._lock:
            for chain_id in [c for c, e in self._chains.items() if transform_key in e.keys]:
                self._drop(chain_id)

    def forget_group(self, group_id: str) -> None:
        with self._lock:
            for chain_id in [c for c in self._chains if c[1] == group_id]:
                self._drop(chain_id)

    def _drop(self, chain_id: ChainId) -> None:
        entry = self._chains.pop(chain_id, None)
        self._wanted.pop(chain_id, None)
        if entry is not None:
            self._held -= len(entry.prepared)

    def stats(self) -> PoolStats:
        with self._lock:
            return PoolStats(self._held, len(self._wanted), self._taken, self._missed)

    async def run(self) -> None:
        """Fill the pool, in the background, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while await self._quiet() and (batch := self._next_batch()):
                try:
                    made = await self._transformer.prepare_async([e.keys for _, e in batch])
                except TransformerUnavailable:
                    if self._transformer.stats().closed:
                        return  # the service is shutting down
                    self._again(batch)  # a worker died: it is replaced, try later
                    await asyncio.sleep(QUIET)
                    continue
                except Exception:  # noqa: S112 - a stored key that does not decode:
                    continue  # these chains get none until wanted again
                self._keep(batch, made)

    async def _quiet(self) -> bool:
        """Wait until no transform has started for ``QUIET`` seconds."""
        while (wait := self._last_transform + QUIET - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        return True

    def _next_batch(self) -> list[tuple[ChainId, _Entry]]:
        with self._lock:
            batch: list[tuple[ChainId, _Entry]] = []
            while self._wanted and len(batch) < BATCH:
                chain_id, _ = self._wanted.popitem(last=False)
                batch.append((chain_id, self._chains[chain_id]))
            return batch

    def _again(self, batch: list[tuple[ChainId, _Entry]]) -> None:
        with self._lock:
            for chain_id, entry in batch:
                if self._chains.get(chain_id) is entry and not entry.prepared:
                    self._wanted[chain_id] = None

    def _keep(self, batch: list[tuple[ChainId, _Entry]], made: list[bytes]) -> None:
        with self._lock:
            for (chain_id, entry), prepared in zip(batch, made, strict=True):
                if self._chains.get(chain_id) is entry:  # not forgotten or replaced meanwhile
                    entry.prepared.append(prepared)
                    self._held += 1
