"""Prepared transforms: filled in the background, used once, for exactly their keys,
dropped on removal and revocation, bounded; with a real worker process."""

import asyncio
import secrets
from collections.abc import Iterator
from typing import cast

import pytest

from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import EncryptedValue, decrypt, encrypt, generate_transform_key
from veil.crypto.signing import SigningKey
from veil.keyserver import precompute
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
        pool.want(("d1", "g"), keys, pool.ticket())
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
        pool.want(("d1", "g"), keys, pool.ticket())
        await _filled(pool, 1)
        assert pool.take(("d1", "g"), rotated) is None
        assert pool.take(("d1", None), keys) is None  # same device, not through the group
        pool.want(("d1", "g"), rotated, pool.ticket())  # the chain's keys changed: its old one goes
        assert pool.stats().held == 0

    asyncio.run(scenario())


def test_removal_revocation_and_deletion_drop_the_chains(transformer: Transformer) -> None:
    pool = PreparedPool(transformer, limit=10)
    chains = {("d1", "g"): _chain()[1], ("d1", "h"): _chain()[1], ("d2", "g"): _chain()[1]}
    chains[("d3", "h")] = _chain()[1]

    async def scenario() -> None:
        for chain_id, keys in chains.items():
            pool.want(chain_id, keys, pool.ticket())
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
        pool.want(("d1", "g"), keys, pool.ticket())
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
            pool.want(chain_id, chain_keys, pool.ticket())
        await _filled(pool, 2)
        assert pool.take(chains[0], keys[0]) is None  # dropped for the newer two
        assert pool.take(chains[2], keys[2]) is not None

    asyncio.run(scenario())


def test_without_worker_processes_nothing_is_prepared() -> None:
    in_thread = Transformer(secrets.token_bytes(32), workers=0)
    pool = PreparedPool(in_thread, limit=10)
    assert not pool.enabled
    pool.want(("d1", "g"), _chain()[1], pool.ticket())
    assert pool.take(("d1", "g"), _chain()[1]) is None
    assert pool.stats().wanted == 0
    assert not PreparedPool(in_thread, limit=0).enabled


def test_a_want_from_a_request_older_than_a_forget_is_ignored(transformer: Transformer) -> None:
    """A transform in flight while its member is removed (or its device revoked, or the
    group deleted) asks for its chain's next transform after the forget: refused."""
    pool = PreparedPool(transformer, limit=10)
    _, keys = _chain()

    async def scenario() -> None:
        for forget in (lambda: pool.forget_key(keys[0]), lambda: pool.forget_group("g")):
            before = pool.ticket()  # the request arrives, is authorized, transforms...
            forget()  # ...while the removal commits
            pool.want(("d1", "g"), keys, before)
            assert pool.stats().wanted == 0
            await asyncio.sleep(0.5)
            assert pool.stats().held == 0
        pool.want(("d1", "h"), keys[1:], before)  # a chain the forgets did not touch
        assert pool.stats().wanted == 1
        # A request that arrived after the forget was authorized after the removal
        # (the key is back: the user was added again, with the same key).
        pool.want(("d1", "g"), keys, pool.ticket())
        await _filled(pool, 2)

    asyncio.run(scenario())


def test_a_want_older_than_every_forget_remembered_is_ignored(
    transformer: Transformer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(precompute, "FORGOTTEN", 2)
    pool = PreparedPool(transformer, limit=10)
    _, keys = _chain()
    before = pool.ticket()
    pool.forget_key(keys[0])
    for other in range(2):  # the forget of keys[0] is no longer remembered
        pool.forget_group(f"other{other}")
    pool.want(("d1", "g"), keys, before)
    assert pool.stats().wanted == 0
    pool.want(("d1", "g"), keys, pool.ticket())
    assert pool.stats().wanted == 1


class _FakeTransformer:
    """Prepares instantly or when released; counts its jobs (no worker process)."""

    pooled = True

    def __init__(self) -> None:
        self.jobs = 0
        self.release = asyncio.Event()
        self.release.set()

    async def prepare_async(self, chains: list[tuple[bytes, ...]]) -> list[bytes]:
        self.jobs += 1
        await self.release.wait()
        return [b"prepared"] * len(chains)


def _fake_pool(limit: int) -> tuple[PreparedPool, _FakeTransformer]:
    fake = _FakeTransformer()
    return PreparedPool(cast(Transformer, fake), limit=limit), fake


def test_a_chain_taken_and_wanted_while_being_prepared_holds_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The limit bounds prepared transforms, not chains: a chain whose transform is
    taken and wanted again while its next is being prepared does not get two."""
    monkeypatch.setattr(precompute, "QUIET", 0.01)
    pool, fake = _fake_pool(limit=1)
    keys = (b"k1", b"k2")

    async def scenario() -> None:
        fake.release.clear()
        filler = asyncio.create_task(pool.run())
        pool.want(("d1", "g"), keys, pool.ticket())
        while fake.jobs == 0:
            await asyncio.sleep(0.01)
        assert pool.take(("d1", "g"), keys) is None  # a rekey, before it is ready
        pool.want(("d1", "g"), keys, pool.ticket())
        assert pool.stats().wanted == 0  # its next is already being prepared
        fake.release.set()
        await asyncio.sleep(0.3)
        filler.cancel()
        assert (pool.stats().held, fake.jobs) == (1, 1)

    asyncio.run(scenario())


def test_steady_transform_traffic_does_not_starve_preparation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Transforms that never pause for QUIET seconds still let a batch through every
    PATIENCE seconds."""
    monkeypatch.setattr(precompute, "PATIENCE", 0.3)
    pool, fake = _fake_pool(limit=10)

    async def scenario() -> None:
        filler = asyncio.create_task(pool.run())
        pool.want(("d1", "g"), (b"k1", b"k2"), pool.ticket())
        deadline = asyncio.get_running_loop().time() + 1.5
        while asyncio.get_running_loop().time() < deadline:  # a transform every 50 ms
            pool.take(("d2", "g"), (b"k3", b"k4"))
            await asyncio.sleep(0.05)
        held = pool.stats().held  # before the traffic stops
        filler.cancel()
        assert (held, fake.jobs) == (1, 1)

    asyncio.run(scenario())
