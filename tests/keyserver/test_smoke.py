import dataclasses

from fastapi.testclient import TestClient

from veil.crypto.keys import Plaintext
from veil.crypto.pre import EncryptedValue, decrypt, encrypt
from veil.crypto.signing import VerifyingKey
from veil.keyserver import create_app
from veil.protocol import b64decode


def test_group_transform_flow(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("meeting-1")
    assert alice.add_member("meeting-1", group_key, bob).status_code == 201
    session_key = Plaintext.generate()
    encrypted = encrypt(session_key, group_key.public_key, alice.signer)
    response = bob.transform(bytes(encrypted), "meeting-1")
    assert response.status_code == 200, response.text
    value = EncryptedValue.from_bytes(b64decode(response.json()["encrypted_key"])).verify()
    assert decrypt(value, bob.device_key) == session_key
    # alice is admin but not a member
    assert alice.transform(bytes(encrypted), "meeting-1").json()["error"]["code"] == "not_member"
    assert alice.remove_member("meeting-1", group_key, "bob").status_code == 200
    response = bob.transform(bytes(encrypted), "meeting-1")
    assert response.status_code == 403 and response.json()["error"]["code"] == "not_member"


def test_transforms_in_a_process_pool(settings, make_actor) -> None:  # type: ignore[no-untyped-def]
    """The server's default: transforms run in worker processes, off the event loop."""
    alice = make_actor("alice")
    pooled = dataclasses.replace(settings, transform_workers=1)
    with TestClient(create_app(pooled)) as client:  # a second replica, pooled
        alice.client = client
        session_key = Plaintext.generate()
        response = alice.transform(bytes(encrypt(session_key, alice.master, alice.signer)))
        assert response.status_code == 200, response.text
        value = EncryptedValue.from_bytes(b64decode(response.json()["encrypted_key"])).verify()
        assert decrypt(value, alice.device_key) == session_key
        garbage = alice.transform(b"\x01\x02" + bytes(100))
        assert garbage.status_code == 422  # errors cross the process boundary intact


def test_transformed_values_are_signed_by_the_published_service_key(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    published = alice.client.get("/v1/service")
    assert published.status_code == 200
    signer = VerifyingKey(b64decode(published.json()["transform_signer"]))
    response = alice.transform(bytes(encrypt(Plaintext.generate(), alice.master, alice.signer)))
    EncryptedValue.from_bytes(b64decode(response.json()["encrypted_key"])).verify(signer=signer)
