"""What the transform worker pool reports for ``/metrics`` and ``/readyz``: its workers,
the requests waiting for one, and each transform chain's outcome."""

import asyncio
import secrets
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from veil.crypto.errors import DecodeError
from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import encrypt, generate_transform_key
from veil.crypto.signing import SigningKey
from veil.keyserver.metrics import TransformerCollector
from veil.keyserver.precompute import PreparedPool
from veil.keyserver.transformer import Transformer, TransformerUnavailable

SIGNER = SigningKey.generate()
GROUP, DEVICE = PrivateKey.generate(), PrivateKey.generate()
KEYS = [bytes(generate_transform_key(GROUP, DEVICE.public_key, SIGNER))]


@pytest.fixture
def pool() -> Iterator[Transformer]:
    transformer = Transformer(secrets.token_bytes(32), workers=1)
    yield transformer
    transformer.close()


def _value() -> bytes:
    return bytes(encrypt(Plaintext.generate(), GROUP.public_key, SIGNER))


def test_the_pool_reports_its_workers_queue_and_outcomes(pool: Transformer) -> None:
    stats = pool.stats()
    assert (stats.pooled, stats.workers, stats.alive, stats.busy, stats.waiting) == (
        True,
        1,
        1,
        0,
        0,
    )

    async def run() -> tuple[int, int]:
        held = await pool._acquire()  # the only worker, taken: requests now wait
        waiting = [asyncio.create_task(pool.run_async(_value(), KEYS)) for _ in range(2)]
        await asyncio.sleep(0.05)
        during = pool.stats()
        pool._release(held)
        await asyncio.gather(*waiting)
        with pytest.raises(DecodeError):
            await pool.run_async(b"\x01\x02" + bytes(100), KEYS)
        cancelled = asyncio.create_task(pool.run_async(_value(), KEYS))
        await asyncio.sleep(0)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        return during.busy, during.waiting

    assert asyncio.run(run()) == (1, 2)
    stats = pool.stats()
    assert (stats.busy, stats.waiting) == (0, 0)
    assert stats.outcomes == {"ok": 2, "failed": 1, "cancelled": 1}

    registry = CollectorRegistry()
    registry.register(TransformerCollector(pool, PreparedPool(pool, limit=10)))
    text = generate_latest(registry).decode()
    for line in (
        'veil_transforms_total{outcome="ok"} 2.0',
        'veil_transforms_total{outcome="failed"} 1.0',
        'veil_transforms_total{outcome="unavailable"} 0.0',
        'veil_transforms_total{outcome="cancelled"} 1.0',
        "veil_transform_workers 1.0",
        "veil_transform_workers_alive 1.0",
        "veil_transform_workers_busy 0.0",
        "veil_transform_queue_depth 0.0",
        "veil_prepared_transforms 0.0",
        "veil_prepared_transforms_wanted 0.0",
        'veil_prepared_transform_lookups_total{result="hit"} 0.0',
        'veil_prepared_transform_lookups_total{result="miss"} 0.0',
    ):
        assert line in text


def test_a_closed_pool_says_so_and_counts_what_it_refused(pool: Transformer) -> None:
    pool.close()
    with pytest.raises(TransformerUnavailable):
        asyncio.run(pool.run_async(_value(), KEYS))
    stats = pool.stats()
    assert (stats.closed, stats.workers, stats.outcomes) == (True, 0, {"unavailable": 1})


def test_transforms_in_a_thread_count_too() -> None:
    transformer = Transformer(secrets.token_bytes(32), workers=0)
    asyncio.run(transformer.run_async(_value(), KEYS))
    stats = transformer.stats()
    assert (stats.pooled, stats.workers, stats.outcomes) == (False, 0, {"ok": 1})
