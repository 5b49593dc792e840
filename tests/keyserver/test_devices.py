"""Devices: add (with the user's proof), list, revoke, rotate. Every test runs on SQLite
and on PostgreSQL; results are decrypted with the real device keys."""

import dataclasses
from typing import Any

import pytest

from veil.crypto import schnorr
from veil.crypto.errors import DecryptionError
from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import EncryptedValue, decrypt, encrypt
from veil.crypto.signing import SigningKey
from veil.protocol import (
    b64decode,
    b64encode,
    device_certificate_message,
    device_id_for,
    sign_request,
)


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text


def add_device(actor: Any, body: dict[str, Any], token: str) -> Any:
    return actor.client.post("/v1/devices", headers={"Authorization": f"Bearer {token}"}, json=body)


def transformed(actor: Any, plaintext_to_master: bytes) -> EncryptedValue:
    response = actor.transform(plaintext_to_master)
    assert response.status_code == 200, response.text
    return EncryptedValue.from_bytes(b64decode(response.json()["encrypted_key"])).verify()


def devices_of(actor: Any) -> list[dict[str, Any]]:
    response = actor.signed("GET", "/v1/devices")
    assert response.status_code == 200, response.text
    devices: list[dict[str, Any]] = response.json()["devices"]
    return devices


def test_a_second_device_for_the_same_user_decrypts_transforms(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    laptop = alice.another_device()
    assert laptop.add_device() != alice.device_id
    session_key = Plaintext.generate()
    encrypted = bytes(encrypt(session_key, alice.master, alice.signer))
    for device in (alice, laptop):
        assert decrypt(transformed(device, encrypted), device.device_key) == session_key
    # Each result is for the device that asked, and no other.
    with pytest.raises(DecryptionError):
        decrypt(transformed(laptop, encrypted), alice.device_key)


def test_a_proof_made_with_another_users_key_is_403_invalid_proof(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, mallory = make_actor("alice"), make_actor("mallory")
    # Mallory knows Alice's master public key and holds a fresh JWT for Alice, but signs
    # the proof (and makes the transform key) with her own user key.
    imposter = dataclasses.replace(
        alice.another_device(), user_key=mallory.user_key, master=alice.master
    )
    token = alice.token()
    response = add_device(
        alice, imposter.device_body(imposter.device_key, imposter.signer, token), token
    )
    assert_error(response, 403, "invalid_proof")
    assert [d["device_id"] for d in devices_of(alice)] == [alice.device_id]


def test_a_proof_bound_to_another_token_is_403_invalid_proof(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    laptop = alice.another_device()
    body = alice.device_body(laptop.device_key, laptop.signer, alice.token(jti="first"))
    response = add_device(alice, body, alice.token(jti="second"))
    assert_error(response, 403, "invalid_proof")


def test_a_transform_key_for_another_device_key_is_422_transform_key_mismatch(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    laptop = alice.another_device()
    token = alice.token()
    body = alice.device_body(PrivateKey.generate(), laptop.signer, token)
    body["public_key"] = b64encode(bytes(laptop.device_key.public_key))
    assert_error(add_device(alice, body, token), 422, "transform_key_mismatch")


@pytest.mark.parametrize("offset", [-200, 200], ids=["old", "future"])
def test_a_proof_timestamp_200_s_off_is_400_stale_proof(make_actor, clock, offset) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    laptop = alice.another_device()
    token = alice.token()  # fresh: only the proof's own timestamp is off
    clock.now += offset
    body = alice.device_body(laptop.device_key, laptop.signer, token)
    clock.now -= offset
    assert_error(add_device(alice, body, token), 400, "stale_proof")


def test_adding_a_device_needs_a_fresh_token_and_a_registered_user(make_actor, clock) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    laptop = alice.another_device()
    token = alice.token()
    clock.now += 200
    body = alice.device_body(laptop.device_key, laptop.signer, token)
    assert_error(add_device(alice, body, token), 401, "token_stale")

    stranger = dataclasses.replace(alice, name="nobody")
    token = stranger.token()
    body = stranger.device_body(laptop.device_key, laptop.signer, token)
    assert_error(add_device(stranger, body, token), 404, "not_found")


def test_a_malformed_signing_key_is_422_invalid_encoding(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    laptop = alice.another_device()
    token = alice.token()
    body = alice.device_body(laptop.device_key, laptop.signer, token)
    body["signing_key"] = b64encode(bytes(laptop.signer.verifying_key)[:31])
    assert_error(add_device(alice, body, token), 422, "invalid_encoding")


def test_list_devices_shows_the_callers_devices_only(make_actor, clock) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    clock.now += 5
    laptop = alice.another_device()
    laptop.add_device()
    listed = devices_of(laptop)
    assert [d["device_id"] for d in listed] == [alice.device_id, laptop.device_id]
    for entry, device in zip(listed, (alice, laptop), strict=True):
        assert b64decode(entry["public_key"]) == bytes(device.device_key.public_key)
        assert b64decode(entry["signing_key"]) == bytes(device.signer.verifying_key)
        assert entry["status"] == "active"
        assert entry["revoked_at"] is None
    assert listed[1]["created_at"] == int(clock.now)
    assert [d["device_id"] for d in devices_of(bob)] == [bob.device_id]


def test_a_revoked_device_is_403_device_revoked_and_the_other_device_still_works(
    make_actor, clock
) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    laptop = alice.another_device()
    laptop.add_device()
    session_key = Plaintext.generate()
    encrypted = bytes(encrypt(session_key, alice.master, alice.signer))
    assert decrypt(transformed(laptop, encrypted), laptop.device_key) == session_key

    response = alice.signed("DELETE", f"/v1/devices/{laptop.device_id}")
    assert response.status_code == 200 and response.json() == {"ok": True}, response.text

    assert_error(laptop.transform(encrypted), 403, "device_revoked")
    assert_error(laptop.signed("GET", "/v1/devices"), 403, "device_revoked")
    assert decrypt(transformed(alice, encrypted), alice.device_key) == session_key
    status = {d["device_id"]: (d["status"], d["revoked_at"]) for d in devices_of(alice)}
    assert status == {
        alice.device_id: ("active", None),
        laptop.device_id: ("revoked", int(clock.now)),
    }


def test_revoking_another_users_device_is_404(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    assert_error(bob.signed("DELETE", f"/v1/devices/{alice.device_id}"), 404, "not_found")
    assert_error(bob.signed("DELETE", "/v1/devices/no-such-device"), 404, "not_found")
    assert [d["status"] for d in devices_of(alice)] == ["active"]


def test_rotation_replaces_the_keys_of_the_calling_device(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    before = dataclasses.replace(alice)
    new_key, new_signer = PrivateKey.generate(), SigningKey.generate()
    response = alice.rotate(new_key, new_signer)  # signed with the old key
    assert response.status_code == 200 and response.json() == {"ok": True}, response.text

    # The old signing key no longer speaks for the device.
    assert_error(before.signed("GET", "/v1/devices"), 401, "bad_signature")
    alice.device_key, alice.signer = new_key, new_signer
    (entry,) = devices_of(alice)
    assert entry["device_id"] == alice.device_id
    assert b64decode(entry["public_key"]) == bytes(new_key.public_key)
    assert b64decode(entry["signing_key"]) == bytes(new_signer.verifying_key)

    # New transforms are for the new device key; the old one cannot open them.
    session_key = Plaintext.generate()
    value = transformed(alice, bytes(encrypt(session_key, alice.master, alice.signer)))
    assert decrypt(value, new_key) == session_key
    with pytest.raises(DecryptionError):
        decrypt(value, before.device_key)


def test_rotating_another_device_is_403(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    laptop = alice.another_device()
    laptop.add_device()
    new_key, new_signer = PrivateKey.generate(), SigningKey.generate()
    assert_error(alice.rotate(new_key, new_signer, device_id=laptop.device_id), 403, "forbidden")
    assert_error(bob.rotate(new_key, new_signer, device_id=alice.device_id), 403, "forbidden")
    # A JWT for another user does not let a device rotate itself either.
    response = alice.rotate(new_key, new_signer, token=bob.token())
    assert_error(response, 403, "forbidden")
    assert b64decode(devices_of(alice)[0]["public_key"]) == bytes(alice.device_key.public_key)


def test_rotation_needs_a_fresh_token_and_a_valid_proof(make_actor, clock) -> None:  # type: ignore[no-untyped-def]
    alice, mallory = make_actor("alice"), make_actor("mallory")
    new_key, new_signer = PrivateKey.generate(), SigningKey.generate()
    token = alice.token()
    clock.now += 200
    body = alice.device_body(new_key, new_signer, token, alice.device_id)
    response = alice.signed(
        "PUT",
        f"/v1/devices/{alice.device_id}/keys",
        body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_error(response, 401, "token_stale")

    imposter = dataclasses.replace(alice, user_key=mallory.user_key)
    token = alice.token()
    response = alice.signed(
        "PUT",
        f"/v1/devices/{alice.device_id}/keys",
        imposter.device_body(new_key, new_signer, token, alice.device_id),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_error(response, 403, "invalid_proof")
    # Still the old keys.
    session_key = Plaintext.generate()
    value = transformed(alice, bytes(encrypt(session_key, alice.master, alice.signer)))
    assert decrypt(value, alice.device_key) == session_key


def test_a_device_id_with_a_nul_byte_is_422_not_500(make_actor, request, database_url) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    path = "/v1/devices/ab\x00cd"  # sent as %00; the service checks the decoded path
    headers = sign_request(
        alice.signer, alice.device_id, "DELETE", path, "", b"", int(alice.clock())
    )
    try:
        response = alice.client.request("DELETE", "/v1/devices/ab%00cd", headers=headers)
    except Exception as error:  # raise_server_exceptions: a 500 surfaces as the exception
        pytest.fail(f"500: {error!r}"[:300])
    assert_error(response, 422, "validation_error")


def test_device_ids_digest_the_signing_key_and_reregistering_is_409(
    make_actor,
) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    assert alice.device_id == device_id_for(bytes(alice.signer.verifying_key))
    token = alice.token()
    again = add_device(alice, alice.device_body(PrivateKey.generate(), alice.signer, token), token)
    assert_error(again, 409, "device_exists")


def test_the_public_device_record_names_the_user_and_follows_revocation(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    laptop = alice.another_device()
    laptop.add_device()
    record = alice.client.get(f"/v1/devices/{laptop.device_id}")
    assert record.status_code == 200, record.text
    published = record.json()
    certificate = schnorr.SchnorrSignature.from_bytes(b64decode(published.pop("certificate")))
    assert published == {
        "device_id": laptop.device_id,
        "user_id": "alice",
        "public_key": b64encode(bytes(laptop.device_key.public_key)),
        "signing_key": b64encode(bytes(laptop.signer.verifying_key)),
        "status": "active",
    }
    # Anyone can check the record against alice's identity key (her client public key).
    certified = device_certificate_message(
        "alice", laptop.device_id, bytes(laptop.device_key.public_key),
        bytes(laptop.signer.verifying_key),
    )  # fmt: skip
    schnorr.verify(certificate, certified, alice.user_key.public_key)
    assert alice.signed("DELETE", f"/v1/devices/{laptop.device_id}").status_code == 200
    assert alice.client.get(f"/v1/devices/{laptop.device_id}").json()["status"] == "revoked"
    assert_error(alice.client.get("/v1/devices/00ff"), 404, "not_found")


def test_a_device_needs_its_users_certificate_of_its_keys(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, mallory = make_actor("alice"), make_actor("mallory")
    laptop = alice.another_device()
    token = alice.token()
    body = alice.device_body(laptop.device_key, laptop.signer, token)

    missing = {k: v for k, v in body.items() if k != "certificate"}
    assert_error(add_device(alice, missing, token), 422, "validation_error")
    # Made with another user's key; made for other keys; made for another device id.
    forged = dataclasses.replace(alice, user_key=mallory.user_key)
    by_mallory = forged.device_body(laptop.device_key, laptop.signer, token)["certificate"]
    other_keys = alice.device_body(PrivateKey.generate(), laptop.signer, token)["certificate"]
    other_id = alice.device_body(laptop.device_key, laptop.signer, token, "00ff")["certificate"]
    for certificate in (by_mallory, other_keys, other_id):
        response = add_device(alice, {**body, "certificate": certificate}, token)
        assert_error(response, 403, "invalid_certificate")
    assert_error(add_device(alice, {**body, "certificate": "AAAA"}, token), 422, "invalid_encoding")
    assert len(devices_of(alice)) == 1  # nothing was added

    assert add_device(alice, body, token).status_code == 201

    # Clients pin both of a user's keys: the master key and the identity key.
    response = mallory.signed("POST", "/v1/public-keys", {"user_ids": ["alice", "nobody"]})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "public_keys": {"alice": b64encode(bytes(alice.master))},
        "identity_keys": {"alice": b64encode(bytes(alice.user_key.public_key))},
    }
