"""Transforms off the event loop, across cores.

pymcl holds the GIL, so threads cannot run transforms in parallel and a transform
on the event loop's thread would stall every other request. With
``transform_workers > 0`` each transform chain runs in a process pool; with 0 it
runs in the request's worker thread (fine for one-process embedded use).
Each process keeps its decoded, verified transform keys in a small cache: stored
keys never change (rotation and revocation write new rows or delete them), so a key
is identified by its bytes.
"""

import asyncio
import functools
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from veil.crypto.errors import DecodeError
from veil.crypto.pre import MAX_LEVEL, EncryptedValue, TransformKey, VerifiedTransformKey, transform
from veil.crypto.signing import SigningKey

_signer: SigningKey | None = None


def _init_worker(signer_seed: bytes) -> None:
    global _signer
    _signer = SigningKey.from_secret_bytes(signer_seed)


@functools.lru_cache(maxsize=4096)
def _verified_key(raw: bytes) -> VerifiedTransformKey:
    return TransformKey.from_bytes(raw).verify()


def transform_chain(value: bytes, keys: Sequence[bytes]) -> bytes:
    """Decode strictly, verify, and move ``value`` along each key in turn."""
    assert _signer is not None, "worker not initialised"
    current = EncryptedValue.from_bytes(value).verify()
    if current.level + len(keys) > MAX_LEVEL:
        raise DecodeError(f"ciphertext: level {current.level} leaves no room for this transform")
    for raw in keys:
        current = transform(current, _verified_key(raw), _signer)
    return bytes(current)


class Transformer:
    def __init__(self, signer_seed: bytes, workers: int) -> None:
        self._pool = (
            ProcessPoolExecutor(
                workers,
                # spawn, not fork: the server process has threads by the time it needs one
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(signer_seed,),
            )
            if workers
            else None
        )
        if self._pool is None:
            _init_worker(signer_seed)

    def run(self, value: bytes, keys: Sequence[bytes]) -> bytes:
        """Blocking: call from a worker thread, never from the event loop."""
        if self._pool is None:
            return transform_chain(value, keys)
        return self._pool.submit(transform_chain, value, tuple(keys)).result()

    async def run_async(self, value: bytes, keys: Sequence[bytes]) -> bytes:
        """From the event loop: a process of the pool, or a worker thread without one
        (handing the pool the work directly saves a thread that would wait for it)."""
        if self._pool is None:
            return await asyncio.to_thread(transform_chain, value, keys)
        return await asyncio.wrap_future(self._pool.submit(transform_chain, value, tuple(keys)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
