"""Prepared transforms: filled in the background, used once, for exactly their keys,
dropped on removal and revocation, bounded; with a real worker process."""

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import EncryptedValue, decrypt, encrypt, generate_transform_key
from veil.crypto.signing import SigningKey
from veil.keyserver.precompute import PreparedPool
from veil.keyserver.transformer import Transformer

SIGNER = SigningKey.generate()
GROUP = PrivateKey.generate()


def _chain() -> tuple[PrivateKey, tuple[bytes, ...]]:
    user, device = PrivateKey.generate(), PrivateKey.generate()
    keys = (
        bytes(generate_transform_key(GROUP, user.public_key, SIGNER)),
        bytes(generate_transform_key(user, device.public_key, SIGNER)),
    )
    return device, keys


@pytest.fixture(scope="module")
def transformer() -> Iterator[Transformer]:
    pool = Transformer(secrets.token_bytes(32), workers=1)
    yield pool
    pool.close()


async def _filled(pool: PreparedPool, wanted: int) -> None:
    """Run the pool's filler until ``wanted`` transforms are held (or 30 s)."""
    filler = asyncio.create_task(pool.run())
    try:
        async with asyncio.timeout(30):
            while pool.stats().held < wanted:
                await asyncio.sleep(0.01)
    finally:
        filler.cancel()


def test_a_prepared_transform_finishes_one_value_for_its_device(transformer: Transformer) -> None:
    pool = PreparedPool(transformer, limit=10)
    device, keys = _chain()
    secret = Plaintext.generate()
    value = bytes(encrypt(secret, GROUP.public_key, SIGNER))

    async def scenario() -> bytes:
        pool.want(("d1", "g"), keys)
        await _filled(pool, 1)
        prepared = pool.take(("d1", "g"), keys)
        assert prepared is not None
        assert pool.take(("d1", "g"), keys) is None  # used once
        return await transformer.run_async(value, keys, prepared)

    answer = asyncio.run(scenario())
    assert decrypt(EncryptedValue.from_bytes(answer).verify(), device) == secret
    stats = pool.stats()
    assert (stats.held, stats.taken, stats.missed) == (0, 1, 1)


def test_a_prepared_transform_is_only_for_the_exact_keys(transformer: Transformer) -> None:
    pool = PreparedPool(transformer, limit=10)
    _, keys = _chain()
    _, rotated = _chain()

    async def scenario() -> None:
        pool.want(("d1", "g"), keys)
        await _filled(pool, 1)
        assert pool.take(("d1", "g"), rotated) is None
        assert pool.take(("d1", None), keys) is None  # same device, not through the group
        pool.want(("d1", "g"), rotated)  # the chain's keys changed: its old one goes
        assert pool.stats().held == 0

    asyncio.run(scenario())


def test_removal_revocation_and_deletion_drop_the_chains(transformer: Transformer) -> None:
    pool = PreparedPool(transformer, limit=10)
    chains = {("d1", "g"): _chain()[1], ("d1", "h"): _chain()[1], ("d2", "g"): _chain()[1]}
    chains[("d3", "h")] = _chain()[1]

    async def scenario() -> None:
        for chain_id, keys in chains.items():
            pool.want(chain_id, keys)
        await _filled(pool, 4)
        pool.forget_key(chains[("d1", "g")][0])  # its user removed from g
        assert pool.take(("d1", "g"), chains[("d1", "g")]) is None
        assert pool.stats().held == 3
        pool.forget_key(chains[("d2", "g")][1])  # revoked, or its keys rotated
        assert pool.stats().held == 2
        pool.forget_group("h")
        assert pool.stats().held == 0

    asyncio.run(scenario())


def test_a_chain_forgotten_while_its_transform_is_prepared_gets_none(
    transformer: Transformer,
) -> None:
    pool = PreparedPool(transformer, limit=10)
    _, keys = _chain()

    async def scenario() -> None:
        filler = asyncio.create_task(pool.run())
        pool.want(("d1", "g"), keys)
        await asyncio.sleep(0)  # the batch is with the worker now
        pool.forget_key(keys[1])
        await asyncio.sleep(0.5)  # well past the batch
        filler.cancel()
        assert pool.stats().held == 0
        assert pool.take(("d1", "g"), keys) is None

    asyncio.run(scenario())


def test_the_pool_holds_at_most_its_limit_least_recently_wanted_out_first(
    transformer: Transformer,
) -> None:
    pool = PreparedPool(transformer, limit=2)
    chains = [(f"d{i}", "g") for i in range(3)]
    keys = [_chain()[1] for _ in chains]

    async def scenario() -> None:
        for chain_id, chain_keys in zip(chains, keys, strict=True):
            pool.want(chain_id, chain_keys)
        await _filled(pool, 2)
        assert pool.take(chains[0], keys[0]) is None  # dropped for the newer two
        assert pool.take(chains[2], keys[2]) is not None

    asyncio.run(scenario())


def test_without_worker_processes_nothing_is_prepared() -> None:
    in_thread = Transformer(secrets.token_bytes(32), workers=0)
    pool = PreparedPool(in_thread, limit=10)
    assert not pool.enabled
    pool.want(("d1", "g"), _chain()[1])
    assert pool.take(("d1", "g"), _chain()[1]) is None
    assert pool.stats().wanted == 0
    assert not PreparedPool(in_thread, limit=0).enabled
