"""Recently authorized transform chains: what lets a transform start before its
request's authorization has been confirmed.

A transform request is authorized in a database transaction (device active, signature,
nonce, membership, audit entry) that takes about as long as a fifth of the transform
itself. When the same device asked for the same group's chain before, the transform
starts at once with the keys that request was given, while the transaction runs; the
answer is released only if the transaction commits and read exactly those keys. So the
database still decides every request (a revoked device or a removed member gets its
403 at once), and nothing is transformed for a request whose signature does not verify
against the key that last authenticated its device.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass

from veil.crypto.errors import InvalidSignature
from veil.crypto.signing import VerifyingKey

_SIZE = 4096

ChainId = tuple[str, str | None]
"""(device id, group id or None for the device's own user)."""


@dataclass(frozen=True, slots=True)
class Chain:
    """The transform keys a request was authorized for, and the key that signed it."""

    signing_key: VerifyingKey
    keys: tuple[bytes, ...]


class RecentChains:
    """A bounded, least-recently-used map of chains last authorized, per process."""

    def __init__(self, size: int = _SIZE) -> None:
        self._size = size
        self._chains: OrderedDict[ChainId, Chain] = OrderedDict()
        self._lock = threading.Lock()  # requests may arrive on more than one event loop

    def guess(self, chain_id: ChainId, signature: bytes, message: bytes) -> Chain | None:
        """The chain last authorized for ``chain_id``, if this request's signature
        verifies against the key that signed that one."""
        with self._lock:
            chain = self._chains.get(chain_id)
        if chain is None:
            return None
        try:
            chain.signing_key.verify(signature, message)
        except InvalidSignature:
            return None
        return chain

    def remember(self, chain_id: ChainId, chain: Chain) -> None:
        with self._lock:
            self._chains[chain_id] = chain
            self._chains.move_to_end(chain_id)
            if len(self._chains) > self._size:
                self._chains.popitem(last=False)

    def forget(self, chain_id: ChainId) -> None:
        """After a refusal: a replayed or unauthorized request starts nothing again
        until its device is authorized once more."""
        with self._lock:
            self._chains.pop(chain_id, None)

    def __len__(self) -> int:
        return len(self._chains)
