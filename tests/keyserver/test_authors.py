"""Who signed a stored ciphertext: every certified signing key a device has had stays on
record, and the group-key and document-key answers name the device that signed their
level-0 ciphertext (``author``) with that ciphertext (``origin``), so that clients check
it against a certificate instead of against the key the ciphertext carries. Every test
runs on SQLite and on PostgreSQL."""

from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from veil.crypto.aead import seal_document
from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import EncryptedValue, decrypt, encrypt
from veil.crypto.signing import SigningKey
from veil.keyserver.service import MIGRATIONS
from veil.protocol import b64decode, b64encode
from veil.web.database import create_db_engine, migrate


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text


def author_of(actor: Any) -> dict[str, Any]:
    """``actor``'s device as an ``author`` names it, with the keys it has now."""
    record = actor.client.get(f"/v1/devices/{actor.device_id}").json()
    keys = ("public_key", "signing_key", "certificate", "status")
    return {"device_id": actor.device_id, "user_id": actor.name, **{k: record[k] for k in keys}}


def private_key(actor: Any, group_id: str) -> dict[str, Any]:
    response = actor.signed("GET", f"/v1/groups/{group_id}/private-key")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def add_admin(admin: Any, group_id: str, group_key: PrivateKey, new: Any) -> None:
    plaintext = Plaintext.generate()
    body = {
        "user_id": new.name,
        "encrypted_key": b64encode(bytes(encrypt(plaintext, new.master, admin.signer))),
        "key_envelope": b64encode(
            seal_document(plaintext.derive_key("group key"), group_id, group_key.to_secret_bytes())
        ),
    }
    response = admin.signed("POST", f"/v1/groups/{group_id}/admins", body)
    assert response.status_code == 201, response.text


def test_the_group_key_names_the_admin_device_that_encrypted_it(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g1")
    add_admin(alice, "g1", group_key, bob)
    for reader in (alice, bob):  # alice encrypted both: her own at creation, bob's later
        data = private_key(reader, "g1")
        assert data["author"] == author_of(alice)
        origin = EncryptedValue.from_bytes(b64decode(data["origin"])).verify()
        assert origin.level == 0 and origin.signer == alice.signer.verifying_key
        transformed = EncryptedValue.from_bytes(b64decode(data["encrypted_key"])).verify()
        decrypt(transformed, reader.device_key, origin=origin)  # it descends from origin


def test_the_author_keeps_the_keys_it_signed_with_after_rotating_and_revocation(
    make_actor,  # type: ignore[no-untyped-def]
) -> None:
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g1")
    add_admin(alice, "g1", group_key, bob)
    before = author_of(alice)
    new_key, new_signer = PrivateKey.generate(), SigningKey.generate()
    assert alice.rotate(new_key, new_signer).status_code == 200
    alice.device_key, alice.signer = new_key, new_signer
    assert author_of(alice)["signing_key"] != before["signing_key"]
    assert private_key(bob, "g1")["author"] == before
    assert alice.signed("DELETE", f"/v1/devices/{alice.device_id}").status_code == 200
    assert private_key(bob, "g1")["author"] == {**before, "status": "revoked"}


def test_a_group_key_signed_by_no_key_on_record_names_no_author(make_actor, client) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    alice.create_group("g1")
    engine = client.app.state.service.engine
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM device_signing_keys"))
    data = private_key(alice, "g1")
    assert data["author"] is None
    assert EncryptedValue.from_bytes(b64decode(data["origin"])).level == 0


def test_a_signing_key_another_device_has_or_had_is_409_signing_key_taken(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    # Bob's current key, claimed by alice's device in a rotation:
    response = alice.rotate(PrivateKey.generate(), bob.signer)
    assert_error(response, 409, "signing_key_taken")
    # ... and keys bob's device had before it rotated, for a rotation or a new device
    # (whose id would digest the key: bob's first key is his device's id, so 409
    # device_exists; a later key is not).
    first, second = bob.signer, SigningKey.generate()
    for signer in (second, SigningKey.generate()):
        assert bob.rotate(PrivateKey.generate(), signer).status_code == 200
        bob.signer = signer
    for old in (first, second):
        assert_error(alice.rotate(PrivateKey.generate(), old), 409, "signing_key_taken")
    for old, code in ((first, "device_exists"), (second, "signing_key_taken")):
        token = alice.token()
        response = alice.client.post(
            "/v1/devices",
            headers={"Authorization": f"Bearer {token}"},
            json=alice.device_body(PrivateKey.generate(), old, token),
        )
        assert_error(response, 409, code)
    # A device keeps its own key through a rotation of its PRE key alone.
    assert alice.rotate(PrivateKey.generate(), alice.signer).status_code == 200


def test_migration_0003_records_the_keys_devices_hold(database_url: str) -> None:
    engine = create_db_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["version_table"] = "keyserver_alembic_version"
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        connection.commit()
    key = b"\x07" * 32
    devices = [  # (id, signing key, certificate)
        ("certified", b"\x01" * 32, b"certificate"),
        ("uncertified", b"\x02" * 32, None),
        ("twin-1", key, b"certificate"),  # two devices with one key: neither is its author
        ("twin-2", key, b"certificate"),
    ]
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, client_public_key, master_public_key,"
                " sealed_augmentation, escrow, created_at) VALUES ('u', '', '', '', '', 0)"
            )
        )
        for device_id, signing_key, certificate in devices:
            connection.execute(
                text(
                    "INSERT INTO devices (id, user_id, public_key, signing_key, certificate,"
                    " status, created_at) VALUES (:id, 'u', :pk, :sk, :cert, 'active', 5)"
                ),
                {"id": device_id, "pk": b"pk-" + device_id.encode(), "sk": signing_key,
                 "cert": certificate},
            )  # fmt: skip
    migrate(engine, MIGRATIONS, version_table="keyserver_alembic_version")
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT signing_key, device_id, public_key, certificate, created_at"
                " FROM device_signing_keys"
            )
        ).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [
        (b"\x01" * 32, "certified", b"pk-certified", b"certificate", 5)
    ]
