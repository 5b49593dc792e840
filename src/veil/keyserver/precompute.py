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
never authorized again, and age out. A forget also wins over a ``want`` from a request
that arrived before it (its transform was in flight while the member was removed):
requests and forgets take tickets from one counter, as ``RecentChains`` does, and a
want whose ticket is older than a forget of one of its keys is ignored.

The pool holds at most ``limit`` prepared transforms: one per chain, for at most
``limit`` chains, least recently wanted dropped first. A meeting larger than that
costs what it cost without a pool, for the devices beyond it.
"""

import asyncio
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
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

PATIENCE = 2.0
"""Seconds of continuous transform traffic after which one batch is prepared anyway:
a service whose transforms never pause for ``QUIET`` seconds (many meetings, each
rekeying in turn) would otherwise never prepare. One batch every ``PATIENCE``
seconds holds a worker for under 1% of the time."""

FORGOTTEN = 16_384
"""Forgets remembered (keys and groups, with their tickets) to refuse the late wants of
requests that arrived before them. A want older than the oldest forget remembered is
refused whatever its keys: it may have been meant for one no longer remembered."""


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
    """Prepared transforms by chain, at most ``limit``; ``run`` fills it.

    ``tickets`` orders requests against forgets (``RecentChains.ticket`` in the
    service, so one counter orders both); by default the pool has its own."""

    def __init__(
        self, transformer: Transformer, limit: int, tickets: Callable[[], int] | None = None
    ) -> None:
        self._transformer = transformer
        self._limit = limit
        self._tickets = tickets or itertools.count(1).__next__
        self._chains: OrderedDict[ChainId, _Entry] = OrderedDict()
        self._wanted: OrderedDict[ChainId, None] = OrderedDict()
        # chain -> the entry a job is preparing for: not wanted again meanwhile, or a
        # take and a want during the job would leave the chain with two
        self._preparing: dict[ChainId, _Entry] = {}
        # key bytes or group id -> ticket of its latest forget; older ones dropped
        self._forgotten: OrderedDict[bytes | str, int] = OrderedDict()
        self._horizon = 0  # the newest ticket of a forget no longer remembered
        self._held = self._taken = self._missed = 0
        self._lock = threading.Lock()  # taken on request paths, filled by run()
        self._wake = asyncio.Event()
        self._last_transform = 0.0

    @property
    def enabled(self) -> bool:
        """Only worker processes prepare: in a thread, the work would hold the GIL."""
        return self._limit > 0 and self._transformer.pooled

    def ticket(self) -> int:
        """Taken by a request as it arrives, before it is authorized; given to ``want``."""
        return self._tickets()

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

    def want(self, chain_id: ChainId, keys: Sequence[bytes], ticket: int) -> None:
        """Prepare a transform for ``keys`` (replacing any made for other keys), for a
        request that took ``ticket`` as it arrived, unless a forget of one of these keys
        or of the chain's group came after it."""
        if not self.enabled:
            return
        keys = tuple(keys)
        with self._lock:
            if self._forgotten_since(ticket, chain_id, keys):
                return
            entry = self._chains.get(chain_id)
            if entry is None or entry.keys != keys:
                self._drop(chain_id)
                entry = self._chains[chain_id] = _Entry(keys)
            self._chains.move_to_end(chain_id)
            if not entry.prepared and self._preparing.get(chain_id) is not entry:
                self._wanted[chain_id] = None
            while len(self._chains) > self._limit:
                self._drop(next(iter(self._chains)))
        self._wake.set()

    def forget_key(self, transform_key: bytes) -> None:
        """Drop every chain through ``transform_key``: its member was removed, its device
        revoked, or its key rotated. Called once that change has committed."""
        with self._lock:
            self._remember_forget(transform_key)
            for chain_id in [c for c, e in self._chains.items() if transform_key in e.keys]:
                self._drop(chain_id)

    def forget_group(self, group_id: str) -> None:
        with self._lock:
            self._remember_forget(group_id)
            for chain_id in [c for c in self._chains if c[1] == group_id]:
                self._drop(chain_id)

    def _remember_forget(self, what: bytes | str) -> None:
        self._forgotten[what] = self._tickets()
        self._forgotten.move_to_end(what)
        while len(self._forgotten) > FORGOTTEN:
            _, ticket = self._forgotten.popitem(last=False)
            self._horizon = max(self._horizon, ticket)

    def _forgotten_since(self, ticket: int, chain_id: ChainId, keys: tuple[bytes, ...]) -> bool:
        if ticket < self._horizon:
            return True
        group = chain_id[1]
        said = [self._forgotten.get(key, 0) for key in keys]
        if group is not None:
            said.append(self._forgotten.get(group, 0))
        return max(said) > ticket

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
                made: list[bytes] | None = None
                unavailable = False
                try:
                    made = await self._transformer.prepare_async([e.keys for _, e in batch])
                except TransformerUnavailable:
                    unavailable = True
                except Exception:  # noqa: S110 - a stored key that does not decode:
                    pass  # these chains get none until wanted again
                finally:
                    self._finish(batch, made, again=unavailable)
                if unavailable:
                    if self._transformer.stats().closed:
                        return  # the service is shutting down
                    await asyncio.sleep(QUIET)  # a worker died: it is replaced, try later

    async def _quiet(self) -> bool:
        """Wait until no transform has started for ``QUIET`` seconds, or for
        ``PATIENCE`` seconds at most."""
        give_up = time.monotonic() + PATIENCE
        while (wait := self._last_transform + QUIET - time.monotonic()) > 0:
            if (left := give_up - time.monotonic()) <= 0:
                break
            await asyncio.sleep(min(wait, left))
        return True

    def _next_batch(self) -> list[tuple[ChainId, _Entry]]:
        with self._lock:
            batch: list[tuple[ChainId, _Entry]] = []
            while self._wanted and len(batch) < BATCH:
                chain_id, _ = self._wanted.popitem(last=False)
                entry = self._preparing[chain_id] = self._chains[chain_id]
                batch.append((chain_id, entry))
            return batch

    def _finish(
        self, batch: list[tuple[ChainId, _Entry]], made: list[bytes] | None, *, again: bool
    ) -> None:
        """Keep what a job made (or want its chains ``again``), for the chains not
        forgotten or replaced meanwhile, one per chain."""
        with self._lock:
            for index, (chain_id, entry) in enumerate(batch):
                if self._preparing.get(chain_id) is entry:
                    del self._preparing[chain_id]
                if self._chains.get(chain_id) is not entry or entry.prepared:
                    continue
                if made is not None:
                    entry.prepared.append(made[index])
                    self._held += 1
                elif again:
                    self._wanted[chain_id] = None
