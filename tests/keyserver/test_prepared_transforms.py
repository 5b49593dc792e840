"""Prepared transforms through the service: a rekey's transform uses the one prepared
for its chain; a member removed or a device revoked while its prepared transform
waits never receives it, and the pool drops it. With a real worker process, on
SQLite and PostgreSQL."""

import asyncio
import dataclasses
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import EncryptedValue, decrypt, encrypt
from veil.crypto.signing import SigningKey
from veil.keyserver.app import create_app
from veil.keyserver.precompute import PoolStats
from veil.keyserver.settings import KeyServerSettings
from veil.protocol import b64decode


@pytest.fixture
def prepared_limit() -> int:
    return 100


@pytest.fixture
def client(settings: KeyServerSettings, prepared_limit: int) -> Iterator[TestClient]:
    """The key service with one transform worker process (``make_actor`` uses it)."""
    limited = dataclasses.replace(settings, transform_workers=1, prepared_transforms=prepared_limit)
    app = create_app(limited)
    with TestClient(app, raise_server_exceptions=True) as test_client:
        yield test_client


def _stats(client: TestClient) -> PoolStats:
    stats: PoolStats = client.app.state.service.prepared.stats()  # type: ignore[attr-defined]
    return stats


def _prepared(client: TestClient, held: int) -> None:
    deadline = time.monotonic() + 30
    while (_stats(client).held, _stats(client).wanted) != (held, 0):
        assert time.monotonic() < deadline, _stats(client)
        time.sleep(0.02)


def _answer(response: Any, device: PrivateKey, origin: EncryptedValue) -> Plaintext:
    assert response.status_code == 200, response.text
    value = EncryptedValue.from_bytes(b64decode(response.json()["encrypted_key"])).verify()
    return decrypt(value, device, origin=origin)


def _meeting(make_actor: Any) -> tuple[Any, ...]:
    """Alice's group g1 with Bob and Carol in it, and its key."""
    alice, bob, carol = (make_actor(name) for name in ("alice", "bob", "carol"))
    group_key = alice.create_group("g1")
    for member in (bob, carol):
        assert alice.add_member("g1", group_key, member).status_code == 201
    return alice, bob, carol, group_key


def _rekey(alice: Any, group_key: PrivateKey) -> tuple[Plaintext, bytes, EncryptedValue]:
    key = Plaintext.generate()
    encrypted = encrypt(key, group_key.public_key, alice.signer)
    return key, bytes(encrypted), encrypted.verify()


def test_the_next_rekey_uses_the_prepared_transform(client: TestClient, make_actor: Any) -> None:
    alice, bob, carol, group_key = _meeting(make_actor)
    for _ in range(3):
        key, raw, origin = _rekey(alice, group_key)
        for member in (bob, carol):
            assert _answer(member.transform(raw, "g1"), member.device_key, origin) == key
        _prepared(client, held=2)  # one for each chain, for the next rekey
    stats = _stats(client)
    assert (stats.taken, stats.missed) == (4, 2)  # only the first rekey found none
    metrics = client.get("/metrics").text
    assert 'veil_prepared_transform_lookups_total{result="hit"} 4.0' in metrics
    assert "veil_prepared_transforms 2.0" in metrics


def test_a_member_removed_while_its_prepared_transform_waits_never_receives_it(
    client: TestClient, make_actor: Any
) -> None:
    alice, bob, carol, group_key = _meeting(make_actor)
    _, raw, _ = _rekey(alice, group_key)
    for member in (bob, carol):
        assert member.transform(raw, "g1").status_code == 200
    _prepared(client, held=2)
    assert alice.remove_member("g1", group_key, "bob").status_code == 200
    assert _stats(client).held == 1  # Bob's chain dropped at once
    _, later, _ = _rekey(alice, group_key)
    response = bob.transform(later, "g1")
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "not_member"
    assert "encrypted_key" not in response.text
    # Carol's device is revoked (by her other device): hers goes the same way.
    other = carol.another_device()
    other.add_device()
    assert other.signed("DELETE", f"/v1/devices/{carol.device_id}").status_code == 200
    assert _stats(client).held == 0
    refused = carol.transform(later, "g1")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "device_revoked"
    assert "encrypted_key" not in refused.text


def test_rotated_keys_start_their_chain_over(client: TestClient, make_actor: Any) -> None:
    alice, bob, _, group_key = _meeting(make_actor)
    key, raw, origin = _rekey(alice, group_key)
    assert _answer(bob.transform(raw, "g1"), bob.device_key, origin) == key
    _prepared(client, held=1)
    rotated = dataclasses.replace(
        bob, device_key=PrivateKey.generate(), signer=SigningKey.generate()
    )
    response = bob.rotate(rotated.device_key, rotated.signer)
    assert response.status_code == 200, response.text
    assert _stats(client).held == 0  # Bob's prepared transform went with his old key
    key, raw, origin = _rekey(alice, group_key)
    assert _answer(rotated.transform(raw, "g1"), rotated.device_key, origin) == key


@pytest.mark.parametrize("prepared_limit", [0])
def test_without_a_pool_transforms_work_as_before(client: TestClient, make_actor: Any) -> None:
    alice, bob, _, group_key = _meeting(make_actor)
    for _ in range(2):
        key, raw, origin = _rekey(alice, group_key)
        assert _answer(bob.transform(raw, "g1"), bob.device_key, origin) == key
    assert _stats(client) == PoolStats(held=0, wanted=0, taken=0, missed=0)


@pytest.mark.parametrize("prepared_limit", [1])
def test_a_meeting_beyond_the_pools_ceiling_is_served_on_demand(
    client: TestClient, make_actor: Any
) -> None:
    alice, bob, carol, group_key = _meeting(make_actor)
    for _ in range(3):
        key, raw, origin = _rekey(alice, group_key)
        for member in (bob, carol):
            assert _answer(member.transform(raw, "g1"), member.device_key, origin) == key
        _prepared(client, held=1)  # the ceiling: one chain prepared, the other not
    stats = _stats(client)
    assert stats.held <= 1 and stats.taken + stats.missed == 6
    assert stats.missed >= 4  # most transforms ran on demand, and every one answered


def test_a_transform_in_flight_while_its_member_is_removed_wants_nothing(
    client: TestClient, make_actor: Any
) -> None:
    """Bob's transform was authorized before his removal committed, and finishes after
    it: its request for his chain's next prepared transform comes after the forget, and
    is refused (else the pool would prepare for a removed member's key)."""
    alice, bob, _, group_key = _meeting(make_actor)
    service = client.app.state.service  # type: ignore[attr-defined]
    run_async, removed = service.transformer.run_async, threading.Event()

    async def held_until_removed(*args: Any) -> bytes:
        while not removed.is_set():
            await asyncio.sleep(0.01)
        return await run_async(*args)  # type: ignore[no-any-return]

    service.transformer.run_async = held_until_removed
    key, raw, origin = _rekey(alice, group_key)
    with ThreadPoolExecutor(1) as executor:
        in_flight = executor.submit(bob.transform, raw, "g1")
        time.sleep(0.3)  # authorized; its transform waits
        assert alice.remove_member("g1", group_key, "bob").status_code == 200
        removed.set()
        # Released: its transaction committed before the removal did (the conference
        # learns of the removal and rekeys).
        assert _answer(in_flight.result(timeout=30), bob.device_key, origin) == key
    time.sleep(0.6)  # past QUIET: a wanted chain would have been prepared by now
    assert _stats(client).held == _stats(client).wanted == 0
