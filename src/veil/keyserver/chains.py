"""Recently authorized transform chains: what lets a transform start before its
request's authorization has been confirmed.

A transform request is authorized in a database transaction (device active, signature,
nonce, membership, audit entry) that takes about a fifth as long as the transform.
When the same device asked for the same chain before, the transform starts at once
with the keys that request was given, while the transaction runs; the answer is
released only if the transaction commits and read exactly those keys. So the
database still decides every request (a revoked device or a removed member gets its
403 at once). Early work is bounded: it needs a signature that verifies against the
device key most recently remembered for the chain, a chain has at most one early
transform in flight per process, and a refusal forgets the chain until its device is
authorized again.
"""

import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass

from veil.crypto.errors import InvalidSignature
from veil.crypto.signing import VerifyingKey

_SIZE = 16_384
"""Chains remembered: every device of a 10,000-member meeting."""

ChainId = tuple[str, str | None]
"""(device id, group id or None for the device's own user)."""


@dataclass(frozen=True, slots=True)
class Chain:
    """The transform keys a request was authorized for, and the key that signed it."""

    signing_key: VerifyingKey
    keys: tuple[bytes, ...]


class RecentChains:
    """A bounded, least-recently-used map of the chains last authorized, per process.

    Requests take a ticket as they arrive; what a request learns is kept only if no
    later request has already said something about the same chain, so a slow request
    cannot bring back a key that a rotation or a refusal replaced."""

    def __init__(self, size: int = _SIZE) -> None:
        self._size = size
        # chain id -> (ticket of the request that said it, the chain or None if refused)
        self._chains: OrderedDict[ChainId, tuple[int, Chain | None]] = OrderedDict()
        self._in_flight: set[ChainId] = set()
        self._tickets = itertools.count()
        self._lock = threading.Lock()  # requests may arrive on more than one event loop

    def ticket(self) -> int:
        with self._lock:
            return next(self._tickets)

    def guess(self, chain_id: ChainId, signature: bytes, message: bytes) -> Chain | None:
        """The chain last authorized for ``chain_id``, if this request's signature
        verifies against the key that signed that one and no other request holds the
        chain's early transform. A request given a chain must ``settle`` it."""
        with self._lock:
            _, chain = self._chains.get(chain_id, (0, None))
            if chain is None or chain_id in self._in_flight:
                return None
            self._in_flight.add(chain_id)
        try:
            chain.signing_key.verify(signature, message)
        except InvalidSignature:
            self.settle(chain_id)
            return None
        return chain

    def settle(self, chain_id: ChainId) -> None:
        """The early transform ``guess`` allowed is over."""
        with self._lock:
            self._in_flight.discard(chain_id)

    def remember(self, chain_id: ChainId, chain: Chain, ticket: int) -> None:
        self._keep(chain_id, ticket, chain)

    def forget(self, chain_id: ChainId, ticket: int) -> None:
        """After a refusal: nothing starts early for this chain again until a request
        that arrived later is authorized."""
        self._keep(chain_id, ticket, None)

    def _keep(self, chain_id: ChainId, ticket: int, chain: Chain | None) -> None:
        with self._lock:
            said = self._chains.get(chain_id)
            if said is not None and said[0] > ticket:
                return
            self._chains[chain_id] = (ticket, chain)
            self._chains.move_to_end(chain_id)
            if len(self._chains) > self._size:
                self._chains.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._chains)
