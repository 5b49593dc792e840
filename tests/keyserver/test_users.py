"""Users: registration, escrowed keys, the split-trust share and public-key lookup.

Every test runs on SQLite and on PostgreSQL (the ``database_url`` fixture). PBKDF2
runs at its real 600,000 iterations in exactly one test here.
"""

import contextlib
import secrets
import threading
from typing import Any

import pytest

from veil.crypto import escrow
from veil.crypto.errors import DecryptionError
from veil.crypto.keys import Plaintext, PrivateKey, PublicKey
from veil.crypto.pre import EncryptedValue, decrypt, encrypt
from veil.protocol import b64decode, b64encode


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text


def escrow_blob() -> bytes:
    """Well-formed escrow bytes (header, iterations, salt, nonce, body) without PBKDF2."""
    return b"\x01\x20" + (600_000).to_bytes(4, "big") + secrets.token_bytes(16 + 12 + 48)


def create_user(client: Any, token: str, public_key: bytes, escrow: bytes) -> Any:
    return client.post(
        "/v1/users",
        headers={"Authorization": f"Bearer {token}"},
        json={"public_key": b64encode(public_key), "escrow": b64encode(escrow)},
    )


def test_create_returns_an_augmented_master_key_whose_ciphertexts_reach_the_device(
    client, idp, make_actor
) -> None:  # type: ignore[no-untyped-def]
    user_key = PrivateKey.generate()
    response = create_user(client, idp.issue("carol"), bytes(user_key.public_key), escrow_blob())
    assert response.status_code == 201, response.text
    assert response.json()["user_id"] == "carol"
    master = PublicKey.from_bytes(b64decode(response.json()["master_public_key"]))
    assert master != user_key.public_key

    alice = make_actor("alice")
    assert alice.master != alice.user_key.public_key
    session_key = Plaintext.generate()
    encrypted = encrypt(session_key, alice.master, alice.signer)
    # The client's half alone cannot open what is encrypted to the master key ...
    with pytest.raises(DecryptionError):
        decrypt(encrypted, alice.user_key)
    # ... but the service's augmented user -> device key brings it to the device.
    response = alice.transform(bytes(encrypted))
    assert response.status_code == 200, response.text
    value = EncryptedValue.from_bytes(b64decode(response.json()["encrypted_key"])).verify()
    assert decrypt(value, alice.device_key) == session_key


def test_creating_a_user_twice_is_409_user_exists(client, idp) -> None:  # type: ignore[no-untyped-def]
    key = bytes(PrivateKey.generate().public_key)
    assert create_user(client, idp.issue("carol"), key, escrow_blob()).status_code == 201
    response = create_user(client, idp.issue("carol"), key, escrow_blob())
    assert_error(response, 409, "user_exists")


def test_creation_needs_a_token_issued_in_the_last_120_s(client, idp, clock) -> None:  # type: ignore[no-untyped-def]
    key = bytes(PrivateKey.generate().public_key)
    stale = idp.issue("carol")
    clock.now += 200
    assert_error(create_user(client, stale, key, escrow_blob()), 401, "token_stale")
    # Nothing was stored: the same user registers with a fresh token, and 100 s is fine.
    recent = idp.issue("carol")
    clock.now += 100
    assert create_user(client, recent, key, escrow_blob()).status_code == 201


def test_creation_without_a_token_is_401_missing_token(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post(
        "/v1/users",
        json={
            "public_key": b64encode(bytes(PrivateKey.generate().public_key)),
            "escrow": b64encode(escrow_blob()),
        },
    )
    assert_error(response, 401, "missing_token")


@pytest.mark.parametrize(
    "escrow",
    [
        b"",
        escrow_blob()[:49],  # one byte short of header + iterations + salt + nonce + tag
        b"\x01\x10" + escrow_blob()[2:],  # a document envelope's header
        b"\x02\x20" + escrow_blob()[2:],  # an unknown format version
    ],
    ids=["empty", "short", "wrong-kind", "wrong-version"],
)
def test_a_malformed_escrow_is_422_invalid_escrow(client, idp, escrow) -> None:  # type: ignore[no-untyped-def]
    key = bytes(PrivateKey.generate().public_key)
    assert_error(create_user(client, idp.issue("carol"), key, escrow), 422, "invalid_escrow")
    assert create_user(client, idp.issue("carol"), key, escrow_blob()).status_code == 201


def test_an_escrow_outside_the_iteration_policy_is_422_invalid_escrow(client, idp) -> None:  # type: ignore[no-untyped-def]
    key = bytes(PrivateKey.generate().public_key)
    for iterations in (1, escrow.MIN_ITERATIONS - 1, escrow.MAX_ITERATIONS + 1):
        blob = b"\x01\x20" + iterations.to_bytes(4, "big") + escrow_blob()[6:]
        assert_error(create_user(client, idp.issue("carol"), key, blob), 422, "invalid_escrow")


def test_a_malformed_public_key_is_422_invalid_encoding(client, idp) -> None:  # type: ignore[no-untyped-def]
    good = bytes(PrivateKey.generate().public_key)
    for bad in (good[:-1], good + b"\x00", b"\x01\x02" + good[2:], b"\x01\x01" + bytes(48)):
        response = create_user(client, idp.issue("carol"), bad, escrow_blob())
        assert_error(response, 422, "invalid_encoding")
    response = client.post(
        "/v1/users",
        headers={"Authorization": f"Bearer {idp.issue('carol')}"},
        json={"public_key": "not base64!", "escrow": b64encode(escrow_blob())},
    )
    assert_error(response, 422, "validation_error")
    assert create_user(client, idp.issue("carol"), good, escrow_blob()).status_code == 201


def test_get_escrow_returns_exactly_what_was_stored(client, idp, clock) -> None:  # type: ignore[no-untyped-def]
    blob = escrow_blob() + secrets.token_bytes(37)
    key = bytes(PrivateKey.generate().public_key)
    assert create_user(client, idp.issue("carol"), key, blob).status_code == 201
    clock.now += 200  # reading the escrow does not need a fresh token
    response = client.get(
        "/v1/users/me/escrow", headers={"Authorization": f"Bearer {idp.issue('carol')}"}
    )
    assert response.status_code == 200, response.text
    assert b64decode(response.json()["escrow"]) == blob
    assert response.json()["user_id"] == "carol"
    master = PublicKey.from_bytes(b64decode(response.json()["master_public_key"]))
    assert master != PublicKey.from_bytes(key)  # augmented by the service's secret


def test_get_escrow_of_an_unregistered_user_is_404_and_needs_a_token(client, idp) -> None:  # type: ignore[no-untyped-def]
    response = client.get(
        "/v1/users/me/escrow", headers={"Authorization": f"Bearer {idp.issue('nobody')}"}
    )
    assert_error(response, 404, "not_found")
    assert_error(client.get("/v1/users/me/escrow"), 401, "missing_token")


def test_split_trust_escrow_round_trip(client, idp) -> None:  # type: ignore[no-untyped-def]
    """The real escrow: the key service's share (stable across calls) plus the platform's
    share make the password; PBKDF2 at 600,000 iterations seals and opens the user key."""
    bearer = {"Authorization": f"Bearer {idp.issue('carol')}"}
    first = client.post("/v1/users/me/share", headers=bearer)
    second = client.post("/v1/users/me/share", headers=bearer)
    assert first.status_code == second.status_code == 200, first.text
    ks_share = b64decode(first.json()["share"])
    assert len(ks_share) == escrow.SHARE_SIZE == 16
    assert b64decode(second.json()["share"]) == ks_share

    user_key = PrivateKey.generate()
    platform_share = escrow.new_share()
    password = escrow.split_trust_password(ks_share, platform_share)
    blob = escrow.seal_escrow(user_key.to_secret_bytes(), password, context=b"carol")
    response = create_user(client, idp.issue("carol"), bytes(user_key.public_key), blob)
    assert response.status_code == 201, response.text

    # Later, on a new device: both shares again, the escrow, and the key comes back.
    bearer = {"Authorization": f"Bearer {idp.issue('carol')}"}
    ks_share_again = b64decode(client.post("/v1/users/me/share", headers=bearer).json()["share"])
    stored = b64decode(client.get("/v1/users/me/escrow", headers=bearer).json()["escrow"])
    assert stored == blob
    password_again = escrow.split_trust_password(ks_share_again, platform_share)
    recovered = PrivateKey.from_secret_bytes(
        escrow.open_escrow(stored, password_again, context=b"carol")
    )
    assert recovered == user_key


def test_shares_differ_per_user_and_need_a_token(client, idp) -> None:  # type: ignore[no-untyped-def]
    shares = {}
    for name in ("alice", "bob", "carol"):
        bearer = {"Authorization": f"Bearer {idp.issue(name)}"}
        response = client.post("/v1/users/me/share", headers=bearer)
        assert response.status_code == 200, response.text
        shares[name] = b64decode(response.json()["share"])
    assert len(set(shares.values())) == 3
    assert all(len(share) == 16 for share in shares.values())
    assert_error(client.post("/v1/users/me/share"), 401, "missing_token")
    forged = {"Authorization": f"Bearer {idp.issue('alice', aud='someone-else')}"}
    assert_error(client.post("/v1/users/me/share", headers=forged), 401, "wrong_audience")


def test_concurrent_first_share_requests_agree_on_one_share(
    client, idp, monkeypatch, request, database_url
) -> None:  # type: ignore[no-untyped-def]
    # Hold both requests between 'no share yet' and the insert. SQLite serializes the
    # transactions (BEGIN IMMEDIATE), so there the second never arrives: short timeout.
    arrived = threading.Barrier(2, timeout=5 if database_url.startswith("postgresql") else 0.2)
    real_new_share = escrow.new_share

    def new_share() -> bytes:
        with contextlib.suppress(threading.BrokenBarrierError):
            arrived.wait()
        return real_new_share()

    monkeypatch.setattr(escrow, "new_share", new_share)
    results: list[Any] = []

    def ask() -> None:
        try:
            response = client.post(
                "/v1/users/me/share", headers={"Authorization": f"Bearer {idp.issue('carol')}"}
            )
            results.append((response.status_code, response.json().get("share")))
        except Exception as error:  # a 500 surfaces here (raise_server_exceptions)
            results.append((500, repr(error)[:200]))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in results] == [200, 200], results
    assert results[0][1] == results[1][1]


def test_concurrent_duplicate_registrations_give_201_and_409_user_exists(
    client, idp, monkeypatch, request, database_url
) -> None:  # type: ignore[no-untyped-def]
    service = client.app.state.service
    arrived = threading.Barrier(2, timeout=5 if database_url.startswith("postgresql") else 0.2)
    real_seal = service.seal_augmentation

    def seal(user_id: str, secret: Any) -> bytes:  # runs after the existence check
        with contextlib.suppress(threading.BrokenBarrierError):
            arrived.wait()
        return real_seal(user_id, secret)

    monkeypatch.setattr(service, "seal_augmentation", seal)
    key = bytes(PrivateKey.generate().public_key)
    results: list[Any] = []

    def register() -> None:
        try:
            response = create_user(client, idp.issue("carol"), key, escrow_blob())
            code = response.json().get("error", {}).get("code")
            results.append((response.status_code, code))
        except Exception as error:
            results.append((500, repr(error)[:200]))

    threads = [threading.Thread(target=register) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [(201, None), (409, "user_exists")], results


def test_public_keys_returns_master_and_identity_keys_and_omits_unknown_ids(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    response = alice.signed(
        "POST", "/v1/public-keys", {"user_ids": ["alice", "bob", "nobody", "bob"]}
    )
    assert response.status_code == 200, response.text
    keys = response.json()["public_keys"]
    assert set(keys) == {"alice", "bob"}
    assert PublicKey.from_bytes(b64decode(keys["alice"])) == alice.master
    assert PublicKey.from_bytes(b64decode(keys["bob"])) == bob.master
    assert keys["bob"] != b64encode(
        bytes(bob.user_key.public_key)
    )  # the master, not the client key
    identities = response.json()["identity_keys"]
    assert identities == {
        "alice": b64encode(bytes(alice.user_key.public_key)),
        "bob": b64encode(bytes(bob.user_key.public_key)),
    }  # the client key: it certifies the user's devices

    response = alice.signed("POST", "/v1/public-keys", {"user_ids": ["nobody"]})
    assert response.status_code == 200
    assert response.json() == {"public_keys": {}, "identity_keys": {}}


def test_public_keys_rejects_an_empty_list_and_unsigned_calls(make_actor, client) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    assert_error(alice.signed("POST", "/v1/public-keys", {"user_ids": []}), 422, "validation_error")
    response = client.post("/v1/public-keys", json={"user_ids": ["alice"]})
    assert_error(response, 401, "unsigned_request")
