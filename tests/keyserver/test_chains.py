"""Transforms that start before their request is authorized, and are released only
after. Route tests run on SQLite and on PostgreSQL."""

import dataclasses
import json
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient

from veil.crypto.errors import DecryptionError
from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import EncryptedValue, decrypt, encrypt
from veil.crypto.signing import SigningKey
from veil.keyserver import create_app
from veil.keyserver.chains import Chain, RecentChains
from veil.keyserver.routes import transforms
from veil.protocol import b64decode, b64encode, sign_request

# --- RecentChains ----------------------------------------------------------------------


def _chain(signer: SigningKey, *keys: bytes) -> Chain:
    return Chain(signer.verifying_key, keys)


def test_a_guess_needs_a_signature_by_the_key_that_was_authorized() -> None:
    chains, signer = RecentChains(), SigningKey.generate()
    chains.remember(("d1", "g1"), _chain(signer, b"k1", b"k2"), chains.ticket())
    message = b"a signed request"
    guess = chains.guess(("d1", "g1"), signer.sign(message), message)
    assert guess is not None and guess.keys == (b"k1", b"k2")
    assert chains.guess(("d1", "g1"), SigningKey.generate().sign(message), message) is None
    assert chains.guess(("d1", "g1"), signer.sign(message), b"another request") is None
    assert chains.guess(("d1", None), signer.sign(message), message) is None  # another chain
    chains.settle(("d1", "g1"))
    chains.forget(("d1", "g1"), chains.ticket())
    assert chains.guess(("d1", "g1"), signer.sign(message), message) is None


def test_a_chain_has_one_early_transform_in_flight_at_a_time() -> None:
    chains, signer = RecentChains(), SigningKey.generate()
    chains.remember(("d1", "g1"), _chain(signer, b"k"), chains.ticket())
    message = b"m"
    assert chains.guess(("d1", "g1"), signer.sign(message), message) is not None
    assert chains.guess(("d1", "g1"), signer.sign(message), message) is None
    chains.settle(("d1", "g1"))
    assert chains.guess(("d1", "g1"), signer.sign(message), message) is not None
    chains.settle(("d1", "g1"))
    # A signature that does not verify holds nothing in flight.
    assert chains.guess(("d1", "g1"), SigningKey.generate().sign(message), message) is None
    assert chains.guess(("d1", "g1"), signer.sign(message), message) is not None


def test_what_a_slow_request_learned_does_not_replace_what_a_later_one_said() -> None:
    chains, old, new = RecentChains(), SigningKey.generate(), SigningKey.generate()
    message = b"m"
    slow, later = chains.ticket(), chains.ticket()
    chains.remember(("d1", None), _chain(new, b"new"), later)  # e.g. after a rotation
    chains.remember(("d1", None), _chain(old, b"old"), slow)
    guess = chains.guess(("d1", None), new.sign(message), message)
    assert guess is not None and guess.keys == (b"new",)
    chains.settle(("d1", None))
    # Nor does it bring back a chain that a later refusal forgot.
    refused, late_success = chains.ticket(), chains.ticket() - 5
    chains.forget(("d1", None), refused)
    chains.remember(("d1", None), _chain(new, b"new"), late_success)
    assert chains.guess(("d1", None), new.sign(message), message) is None
    chains.remember(("d1", None), _chain(new, b"new"), chains.ticket())
    assert chains.guess(("d1", None), new.sign(message), message) is not None


def test_the_least_recently_used_chain_goes_first() -> None:
    chains, signer = RecentChains(size=2), SigningKey.generate()
    message = b"m"
    signature = signer.sign(message)
    chains.remember(("a", None), _chain(signer, b"a"), chains.ticket())
    chains.remember(("b", None), _chain(signer, b"b"), chains.ticket())
    chains.remember(("a", None), _chain(signer, b"a"), chains.ticket())  # a is now the most recent
    chains.remember(("c", None), _chain(signer, b"c"), chains.ticket())
    assert len(chains) == 2
    assert chains.guess(("b", None), signature, message) is None
    assert chains.guess(("a", None), signature, message) is not None
    assert chains.guess(("c", None), signature, message) is not None


# --- the route -------------------------------------------------------------------------


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    """Transforms in a worker process: only those start early."""
    return dataclasses.replace(settings, transform_workers=1)


@pytest.fixture
def events(client, monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    """What each transform request did, in order: "authorize" when its database check
    began (in the authorizations' thread), "transform" for each transform it started
    (when the route asked for it, before it handed the request to be authorized)."""
    log: list[str] = []
    transformer = client.app.state.service.transformer
    run_async = transformer.run_async

    def spy_transform(
        value: bytes, keys: Sequence[bytes], prepared: bytes | None = None
    ) -> Coroutine[Any, Any, bytes]:
        log.append("transform")
        return run_async(value, keys, prepared)

    def spy_verify(*args: Any) -> Any:
        log.append("authorize")
        return verify_all(*args)

    verify_all: Callable[..., Any] = transforms.verify_all
    monkeypatch.setattr(transformer, "run_async", spy_transform)
    monkeypatch.setattr(transforms, "verify_all", spy_verify)
    return log


def _opened(response: Any, device_key: PrivateKey) -> Plaintext:
    assert response.status_code == 200, response.text
    value = EncryptedValue.from_bytes(b64decode(response.json()["encrypted_key"])).verify()
    return decrypt(value, device_key)


def _error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert "encrypted_key" not in response.text


def _group_of_two(make_actor) -> tuple[Any, Any, PrivateKey]:  # type: ignore[no-untyped-def]
    """Alice's group g1, with Bob a member."""
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g1")
    assert alice.add_member("g1", group_key, bob).status_code == 201
    return alice, bob, group_key


def _second_device(actor: Any) -> Any:
    """The same user on another device, added."""
    device = actor.another_device()
    device.add_device()
    return device


def _rotate(actor: Any, device_key: PrivateKey, signer: SigningKey) -> None:
    rotated = actor.rotate(device_key, signer)
    assert rotated.status_code == 200, rotated.text


def test_a_repeat_request_starts_its_transform_before_the_database_has_authorized_it(
    make_actor, events
) -> None:  # type: ignore[no-untyped-def]
    alice, bob, group_key = _group_of_two(make_actor)
    session_key = Plaintext.generate()
    encrypted = bytes(encrypt(session_key, group_key.public_key, alice.signer))

    assert _opened(bob.transform(encrypted, "g1"), bob.device_key) == session_key
    assert events == ["authorize", "transform"]  # nothing known about Bob's device yet
    events.clear()
    assert _opened(bob.transform(encrypted, "g1"), bob.device_key) == session_key
    assert events == ["transform", "authorize"]
    events.clear()
    # His user-level chain is another chain: not guessed from the group's.
    user_key = bytes(encrypt(session_key, bob.master, bob.signer))
    assert _opened(bob.transform(user_key), bob.device_key) == session_key
    assert events == ["authorize", "transform"]


def test_a_removed_members_early_transform_is_never_released(make_actor, events) -> None:  # type: ignore[no-untyped-def]
    alice, bob, group_key = _group_of_two(make_actor)
    encrypted = bytes(encrypt(Plaintext.generate(), group_key.public_key, alice.signer))
    assert bob.transform(encrypted, "g1").status_code == 200
    assert alice.remove_member("g1", group_key, "bob").status_code == 200
    events.clear()

    _error(bob.transform(encrypted, "g1"), 403, "not_member")
    assert events == ["transform", "authorize"]  # started early, refused, not released
    events.clear()
    _error(bob.transform(encrypted, "g1"), 403, "not_member")
    assert events == ["authorize"]  # a refusal forgets the chain: nothing starts early


def test_a_revoked_devices_early_transform_is_never_released(make_actor, events) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    laptop = _second_device(alice)
    encrypted = bytes(encrypt(Plaintext.generate(), alice.master, alice.signer))
    assert laptop.transform(encrypted).status_code == 200
    assert alice.signed("DELETE", f"/v1/devices/{laptop.device_id}").status_code == 200
    events.clear()

    _error(laptop.transform(encrypted), 403, "device_revoked")
    assert events == ["transform", "authorize"]


def test_a_chain_whose_keys_changed_is_transformed_again_with_the_database_keys(
    make_actor, events
) -> None:  # type: ignore[no-untyped-def]
    alice, bob, group_key = _group_of_two(make_actor)
    session_key = Plaintext.generate()
    encrypted = bytes(encrypt(session_key, group_key.public_key, alice.signer))
    assert bob.transform(encrypted, "g1").status_code == 200
    # Removed and added again: a new group -> Bob transform key.
    assert alice.remove_member("g1", group_key, "bob").status_code == 200
    assert alice.add_member("g1", group_key, bob).status_code == 201
    events.clear()

    assert _opened(bob.transform(encrypted, "g1"), bob.device_key) == session_key
    assert events == ["transform", "authorize", "transform"]  # the guess was not used
    events.clear()
    assert _opened(bob.transform(encrypted, "g1"), bob.device_key) == session_key
    assert events == ["transform", "authorize"]  # the new keys are the ones remembered


def test_a_rotated_device_is_not_guessed_and_gets_its_new_keys(make_actor, events) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    session_key = Plaintext.generate()
    encrypted = bytes(encrypt(session_key, alice.master, alice.signer))
    assert alice.transform(encrypted).status_code == 200
    old_key, new_key, new_signer = alice.device_key, PrivateKey.generate(), SigningKey.generate()
    _rotate(alice, new_key, new_signer)
    alice.device_key, alice.signer = new_key, new_signer
    events.clear()

    response = alice.transform(encrypted)
    assert events == ["authorize", "transform"]  # signed by a key the guess does not know
    assert _opened(response, new_key) == session_key
    value = EncryptedValue.from_bytes(b64decode(response.json()["encrypted_key"])).verify()
    with pytest.raises(DecryptionError):
        decrypt(value, old_key)


def test_a_replay_starts_at_most_one_early_transform(make_actor, events, clock) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    encrypted = bytes(encrypt(Plaintext.generate(), alice.master, alice.signer))
    raw = json.dumps({"encrypted_key": b64encode(encrypted)}).encode()
    headers = sign_request(
        alice.signer, alice.device_id, "POST", "/v1/transform", "", raw, int(clock())
    )
    headers["content-type"] = "application/json"
    assert alice.client.post("/v1/transform", content=raw, headers=headers).status_code == 200
    events.clear()

    for _ in range(3):
        replayed = alice.client.post("/v1/transform", content=raw, headers=headers)
        _error(replayed, 401, "replayed_request")
    # The first replay verified against the remembered key, so it started early and was
    # refused; the refusal forgot the chain, so the others started nothing.
    assert events == ["transform", "authorize", "authorize", "authorize"]


def test_a_device_key_rotated_under_the_same_signing_key_gets_the_database_keys(
    make_actor, events
) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    session_key = Plaintext.generate()
    encrypted = bytes(encrypt(session_key, alice.master, alice.signer))
    assert alice.transform(encrypted).status_code == 200
    old_key, new_key = alice.device_key, PrivateKey.generate()
    _rotate(alice, new_key, alice.signer)
    events.clear()

    response = alice.transform(encrypted)  # guessed (same signer), but the keys differ
    assert events == ["transform", "authorize", "transform"]
    assert _opened(response, new_key) == session_key
    value = EncryptedValue.from_bytes(b64decode(response.json()["encrypted_key"])).verify()
    with pytest.raises(DecryptionError):
        decrypt(value, old_key)


def test_a_malformed_ciphertext_is_422_from_an_authorized_device_and_403_from_a_revoked_one(
    make_actor, events
) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    laptop = _second_device(alice)
    encrypted = bytes(encrypt(Plaintext.generate(), alice.master, alice.signer))
    assert laptop.transform(encrypted).status_code == 200
    garbage = bytes([encrypted[0]]) + bytes(len(encrypted) - 1)
    response = laptop.transform(garbage)
    assert response.status_code == 422, response.text
    assert alice.signed("DELETE", f"/v1/devices/{laptop.device_id}").status_code == 200
    assert laptop.transform(encrypted).status_code == 403
    assert laptop.transform(garbage).status_code == 403


def test_transforms_in_a_thread_never_start_early(make_actor, client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    service = client.app.state.service
    assert service.transformer.pooled
    alice = make_actor("alice")
    encrypted = bytes(encrypt(Plaintext.generate(), alice.master, alice.signer))
    assert alice.transform(encrypted).status_code == 200
    monkeypatch.setattr(type(service.transformer), "pooled", property(lambda _: False))
    log: list[str] = []
    monkeypatch.setattr(
        service.recent_chains,
        "guess",
        lambda *args: log.append("guess"),  # type: ignore[func-returns-value]
    )
    assert alice.transform(encrypted).status_code == 200
    assert log == []


def test_a_signing_key_rotated_away_on_another_replica_is_refused_here_though_guessed(
    make_actor, events, settings
) -> None:  # type: ignore[no-untyped-def]
    """This replica still remembers the chain with the old signing key (the rotation
    was another replica's): the guess accepts a thief's signature by that key and
    starts early, but the database's key decides, and it is verified again."""
    alice = make_actor("alice")
    encrypted = bytes(encrypt(Plaintext.generate(), alice.master, alice.signer))
    assert alice.transform(encrypted).status_code == 200
    thief = dataclasses.replace(alice)  # holds the old signing key
    with TestClient(create_app(settings)) as other:
        alice.client = other
        _rotate(alice, PrivateKey.generate(), SigningKey.generate())
    events.clear()

    _error(thief.transform(encrypted), 401, "bad_signature")
    assert events == ["transform", "authorize"]  # the guess knew the old key
