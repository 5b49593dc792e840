"""Groups: create, read, list, delete; members and admins; the group key for admins.
Every test runs on SQLite and on PostgreSQL."""

from typing import Any

import pytest

from veil.crypto import schnorr
from veil.crypto.aead import open_document, seal_document
from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import EncryptedValue, decrypt, encrypt, generate_transform_key
from veil.protocol import b64decode, b64encode, group_proof_message, sign_request
from veil.protocol.board import member_digest


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text


def key_for(admin: Any, group_id: str, group_key: PrivateKey, to: Any) -> dict[str, str]:
    """The group key encrypted to ``to``'s master key, as the admin's client makes it."""
    plaintext = Plaintext.generate()
    return {
        "encrypted_key": b64encode(bytes(encrypt(plaintext, to, admin.signer))),
        "key_envelope": b64encode(
            seal_document(plaintext.derive_key("group key"), group_id, group_key.to_secret_bytes())
        ),
    }


def create_group(
    actor: Any,
    group_id: str,
    *,
    group_key: PrivateKey | None = None,
    proof_key: PrivateKey | None = None,
) -> Any:
    group_key = group_key or PrivateKey.generate()
    now = int(actor.clock())
    message = group_proof_message("create", group_id, actor.name, now, bytes(group_key.public_key))
    proof = schnorr.sign(message, proof_key or group_key, public_key=group_key.public_key)
    return actor.signed(
        "POST",
        "/v1/groups",
        {
            "group_id": group_id,
            "public_key": b64encode(bytes(group_key.public_key)),
            **key_for(actor, group_id, group_key, actor.master),
            "timestamp": now,
            "proof": b64encode(bytes(proof)),
        },
    )


def add_member(
    admin: Any,
    group_id: str,
    group_key: PrivateKey,
    user_id: str,
    to: Any,
    *,
    proof_key: PrivateKey | None = None,
) -> Any:
    tk = generate_transform_key(group_key, to, admin.signer)
    now = int(admin.clock())
    message = group_proof_message("add-member", group_id, user_id, now, bytes(tk))
    proof = schnorr.sign(message, proof_key or group_key, public_key=group_key.public_key)
    return admin.signed(
        "POST",
        f"/v1/groups/{group_id}/members",
        {
            "user_id": user_id,
            "transform_key": b64encode(bytes(tk)),
            "timestamp": now,
            "proof": b64encode(bytes(proof)),
        },
    )


def remove_member(
    admin: Any, group_id: str, signing_key: PrivateKey, user_id: str, *, age: int = 0
) -> Any:
    when = int(admin.clock()) - age
    proof = schnorr.sign(group_proof_message("remove-member", group_id, user_id, when), signing_key)
    return admin.signed(
        "DELETE",
        f"/v1/groups/{group_id}/members/{user_id}",
        query=f"timestamp={when}&proof={b64encode(bytes(proof))}",
    )


def read(actor: Any, group_id: str) -> Any:
    return actor.signed("GET", f"/v1/groups/{group_id}")


def groups_of(actor: Any) -> list[str]:
    response = actor.signed("GET", "/v1/groups")
    assert response.status_code == 200, response.text
    groups: list[str] = response.json()["groups"]
    return groups


def group_key_of(actor: Any, group_id: str) -> bytes:
    """Fetch the group key as an admin and open it with the calling device's key."""
    response = actor.signed("GET", f"/v1/groups/{group_id}/private-key")
    assert response.status_code == 200, response.text
    value = EncryptedValue.from_bytes(b64decode(response.json()["encrypted_key"])).verify()
    plaintext = decrypt(value, actor.device_key)
    envelope = b64decode(response.json()["key_envelope"])
    return open_document(plaintext.derive_key("group key"), group_id, envelope)


def test_create_read_list_delete(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g1")
    alice.create_group("g0")
    assert alice.add_member("g1", group_key, bob).status_code == 201

    response = read(alice, "g1")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "group_id": "g1",
        "public_key": b64encode(bytes(group_key.public_key)),
        "admins": ["alice"],
        "members": ["bob"],
    }
    assert read(bob, "g1").json() == response.json()
    assert groups_of(alice) == ["g0", "g1"]
    assert groups_of(bob) == ["g1"]

    response = alice.signed("DELETE", "/v1/groups/g1")
    assert response.status_code == 200 and response.json() == {"ok": True}, response.text
    assert_error(read(alice, "g1"), 404, "not_found")
    assert groups_of(alice) == ["g0"]
    assert groups_of(bob) == []
    # The id is free again.
    assert create_group(bob, "g1").status_code == 201


def test_a_non_member_reading_a_group_is_403_not_member(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, eve = make_actor("alice"), make_actor("eve")
    alice.create_group("g1")
    assert_error(read(eve, "g1"), 403, "not_member")
    assert_error(read(eve, "no-such-group"), 404, "not_found")


def test_the_digest_names_the_member_list_without_it(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol, eve = (make_actor(n) for n in ("alice", "bob", "carol", "eve"))
    group_key = alice.create_group("g1")
    for member in (carol, bob):
        assert alice.add_member("g1", group_key, member).status_code == 201
    members = read(bob, "g1").json()["members"]
    for reader in (alice, bob):
        response = reader.signed("GET", "/v1/groups/g1/digest")
        assert response.status_code == 200, response.text
        assert response.json() == {
            "group_id": "g1",
            "members_digest": b64encode(member_digest(members)),
            "member_count": len(members),
            "admins": ["alice"],
        }
    assert alice.remove_member("g1", group_key, "carol").status_code == 200
    after = alice.signed("GET", "/v1/groups/g1/digest").json()["members_digest"]
    assert b64decode(after) == member_digest([m for m in members if m != "carol"])
    assert_error(eve.signed("GET", "/v1/groups/g1/digest"), 403, "not_member")
    assert_error(carol.signed("GET", "/v1/groups/g1/digest"), 403, "not_member")
    assert_error(alice.signed("GET", "/v1/groups/nope/digest"), 404, "not_found")


def test_creating_an_existing_group_is_409_group_exists(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g1")
    assert_error(create_group(bob, "g1"), 409, "group_exists")
    assert_error(create_group(alice, "g1"), 409, "group_exists")
    assert read(alice, "g1").json()["public_key"] == b64encode(bytes(group_key.public_key))
    assert read(alice, "g1").json()["admins"] == ["alice"]


def test_a_create_proof_made_with_another_key_is_403_invalid_proof(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    response = create_group(alice, "g1", proof_key=PrivateKey.generate())
    assert_error(response, 403, "invalid_proof")
    assert_error(read(alice, "g1"), 404, "not_found")
    assert groups_of(alice) == []


def test_a_create_proof_for_another_group_id_is_403_invalid_proof(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    group_key = PrivateKey.generate()
    now = int(alice.clock())
    proof = schnorr.sign(
        group_proof_message("create", "other", "alice", now, bytes(group_key.public_key)),
        group_key,
    )
    response = alice.signed(
        "POST",
        "/v1/groups",
        {
            "group_id": "g1",
            "public_key": b64encode(bytes(group_key.public_key)),
            **key_for(alice, "g1", group_key, alice.master),
            "timestamp": now,
            "proof": b64encode(bytes(proof)),
        },
    )
    assert_error(response, 403, "invalid_proof")


def test_add_member_lets_the_member_read_and_transform(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g1")
    response = add_member(alice, "g1", group_key, "bob", bob.master)
    assert response.status_code == 201 and response.json() == {"ok": True}, response.text
    assert read(bob, "g1").json()["members"] == ["bob"]
    session_key = Plaintext.generate()
    response = bob.transform(bytes(encrypt(session_key, group_key.public_key, alice.signer)), "g1")
    assert response.status_code == 200, response.text
    value = EncryptedValue.from_bytes(b64decode(response.json()["encrypted_key"])).verify()
    assert decrypt(value, bob.device_key) == session_key


def test_adding_a_member_twice_is_409_already_member(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g1")
    assert alice.add_member("g1", group_key, bob).status_code == 201
    assert_error(alice.add_member("g1", group_key, bob), 409, "already_member")
    assert read(alice, "g1").json()["members"] == ["bob"]


def test_a_non_admin_adding_a_member_is_403_not_admin(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = make_actor("alice"), make_actor("bob"), make_actor("carol")
    group_key = alice.create_group("g1")
    assert alice.add_member("g1", group_key, bob).status_code == 201
    # Even holding the group key, a plain member is not an admin.
    assert_error(bob.add_member("g1", group_key, carol), 403, "not_admin")
    assert_error(carol.add_member("g1", group_key, carol), 403, "not_admin")
    assert read(alice, "g1").json()["members"] == ["bob"]


def test_a_transform_key_for_the_wrong_user_is_422_transform_key_mismatch(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = make_actor("alice"), make_actor("bob"), make_actor("carol")
    group_key = alice.create_group("g1")
    response = add_member(alice, "g1", group_key, "bob", carol.master)
    assert_error(response, 422, "transform_key_mismatch")
    # Nor the user's client key instead of the master key.
    response = add_member(alice, "g1", group_key, "bob", bob.user_key.public_key)
    assert_error(response, 422, "transform_key_mismatch")
    assert read(alice, "g1").json()["members"] == []


def test_add_member_with_a_bad_proof_or_unknown_user_is_rejected(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g1")
    response = add_member(
        alice, "g1", group_key, "bob", bob.master, proof_key=PrivateKey.generate()
    )
    assert_error(response, 403, "invalid_proof")
    assert_error(add_member(alice, "g1", group_key, "nobody", bob.master), 404, "not_found")
    assert_error(add_member(alice, "nope", group_key, "bob", bob.master), 404, "not_found")
    assert read(alice, "g1").json()["members"] == []


def test_remove_member_with_a_valid_proof(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g1")
    assert alice.add_member("g1", group_key, bob).status_code == 201
    response = remove_member(alice, "g1", group_key, "bob")
    assert response.status_code == 200 and response.json() == {"ok": True}, response.text
    assert read(alice, "g1").json()["members"] == []
    assert_error(read(bob, "g1"), 403, "not_member")
    assert groups_of(bob) == []
    assert_error(remove_member(alice, "g1", group_key, "bob"), 422, "not_member")


def test_remove_member_without_a_valid_proof_is_rejected(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g1")
    assert alice.add_member("g1", group_key, bob).status_code == 201
    assert_error(remove_member(alice, "g1", PrivateKey.generate(), "bob"), 403, "invalid_proof")
    assert_error(remove_member(alice, "g1", group_key, "bob", age=200), 400, "stale_proof")
    assert_error(remove_member(bob, "g1", group_key, "bob"), 403, "not_admin")
    response = alice.signed("DELETE", "/v1/groups/g1/members/bob", query="timestamp=1")
    assert_error(response, 422, "validation_error")
    assert read(alice, "g1").json()["members"] == ["bob"]


def test_add_admin_gives_the_new_admin_the_group_key(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g1")
    response = alice.signed(
        "POST",
        "/v1/groups/g1/admins",
        {"user_id": "bob", **key_for(alice, "g1", group_key, bob.master)},
    )
    assert response.status_code == 201 and response.json() == {"ok": True}, response.text
    assert read(bob, "g1").json()["admins"] == ["alice", "bob"]
    assert group_key_of(bob, "g1") == group_key.to_secret_bytes()
    assert groups_of(bob) == ["g1"]
    # Bob may now add members.
    carol = make_actor("carol")
    assert bob.add_member("g1", group_key, carol).status_code == 201


def test_add_admin_twice_or_by_a_non_admin_is_rejected(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = make_actor("alice"), make_actor("bob"), make_actor("carol")
    group_key = alice.create_group("g1")
    body = {"user_id": "bob", **key_for(alice, "g1", group_key, bob.master)}
    assert alice.signed("POST", "/v1/groups/g1/admins", body).status_code == 201
    assert_error(alice.signed("POST", "/v1/groups/g1/admins", body), 409, "already_admin")
    body = {"user_id": "carol", **key_for(carol, "g1", group_key, carol.master)}
    assert_error(carol.signed("POST", "/v1/groups/g1/admins", body), 403, "not_admin")
    body = {"user_id": "nobody", **key_for(alice, "g1", group_key, carol.master)}
    assert_error(alice.signed("POST", "/v1/groups/g1/admins", body), 404, "not_found")
    assert read(alice, "g1").json()["admins"] == ["alice", "bob"]


def test_remove_admin_and_the_last_admin_stays(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g1")
    body = {"user_id": "bob", **key_for(alice, "g1", group_key, bob.master)}
    assert alice.signed("POST", "/v1/groups/g1/admins", body).status_code == 201

    response = bob.signed("DELETE", "/v1/groups/g1/admins/alice")
    assert response.status_code == 200 and response.json() == {"ok": True}, response.text
    assert read(bob, "g1").json()["admins"] == ["bob"]
    assert_error(alice.signed("GET", "/v1/groups/g1/private-key"), 403, "not_admin")
    assert_error(alice.signed("DELETE", "/v1/groups/g1/admins/bob"), 403, "not_admin")

    assert_error(bob.signed("DELETE", "/v1/groups/g1/admins/bob"), 409, "last_admin")
    assert_error(bob.signed("DELETE", "/v1/groups/g1/admins/alice"), 422, "not_admin")
    assert read(bob, "g1").json()["admins"] == ["bob"]
    assert group_key_of(bob, "g1") == group_key.to_secret_bytes()


def test_the_private_key_opens_for_an_admin_only(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g1")
    assert alice.add_member("g1", group_key, bob).status_code == 201
    raw = group_key_of(alice, "g1")
    assert raw == group_key.to_secret_bytes()
    assert PrivateKey.from_secret_bytes(raw).public_key == group_key.public_key
    assert_error(bob.signed("GET", "/v1/groups/g1/private-key"), 403, "not_admin")
    assert_error(alice.signed("GET", "/v1/groups/nope/private-key"), 404, "not_found")


def test_deleting_a_group_makes_its_transforms_404(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g1")
    assert alice.add_member("g1", group_key, bob).status_code == 201
    encrypted = bytes(encrypt(Plaintext.generate(), group_key.public_key, alice.signer))
    assert bob.transform(encrypted, "g1").status_code == 200

    assert_error(bob.signed("DELETE", "/v1/groups/g1"), 403, "not_admin")
    assert bob.transform(encrypted, "g1").status_code == 200
    assert alice.signed("DELETE", "/v1/groups/g1").status_code == 200
    response = bob.transform(encrypted, "g1")
    assert_error(response, 404, "not_found")
    assert "encrypted_key" not in response.json()
    assert_error(alice.signed("DELETE", "/v1/groups/g1"), 404, "not_found")


def test_a_group_id_with_a_nul_byte_is_422_not_500(make_actor, request, database_url) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    path = "/v1/groups/ab\x00cd"  # sent as %00; the service checks the decoded path
    headers = sign_request(alice.signer, alice.device_id, "GET", path, "", b"", int(alice.clock()))
    try:
        response = alice.client.request("GET", "/v1/groups/ab%00cd", headers=headers)
    except Exception as error:  # raise_server_exceptions: a 500 surfaces as the exception
        pytest.fail(f"500: {error!r}"[:300])
    assert_error(response, 422, "validation_error")


def test_a_groups_public_key_is_public(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    group_key = alice.create_group("safety-team")
    response = alice.client.get("/v1/groups/safety-team/public-key")
    assert response.status_code == 200, response.text
    assert b64decode(response.json()["public_key"]) == bytes(group_key.public_key)
    assert_error(alice.client.get("/v1/groups/nope/public-key"), 404, "not_found")


# --- membership: the capability a device hands the conference service -----------------------


def membership(actor: Any, group_id: str) -> Any:
    return actor.signed("GET", f"/v1/groups/{group_id}/membership")


def test_membership_is_answered_for_members_and_admins_only(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob, eve = make_actor("alice"), make_actor("bob"), make_actor("eve")
    group_key = alice.create_group("g1")
    assert alice.add_member("g1", group_key, bob).status_code == 201
    for who in (alice, bob):  # alice is the admin, bob a member
        response = membership(who, "g1")
        assert response.status_code == 200, response.text
        assert response.json() == {
            "group_id": "g1",
            "user_id": who.name,
            "device_id": who.device_id,
        }
    assert_error(membership(eve, "g1"), 403, "not_member")
    assert_error(membership(eve, "no-such-group"), 404, "not_found")
    assert_error(membership(alice, "no-such-group"), 404, "not_found")
    # A removed member is no longer in it.
    assert remove_member(alice, "g1", group_key, "bob").status_code == 200
    assert_error(membership(bob, "g1"), 403, "not_member")
    # Another device of a member is answered for that device.
    phone = bob.another_device()
    phone.add_device()
    assert alice.add_member("g1", group_key, bob).status_code == 201
    assert membership(phone, "g1").json()["device_id"] == phone.device_id != bob.device_id


def test_membership_is_a_signed_single_use_request_for_its_group(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    alice.create_group("g1")
    alice.create_group("g2")
    path = "/v1/groups/g1/membership"
    assert_error(alice.client.get(path), 401, "unsigned_request")

    headers = sign_request(alice.signer, alice.device_id, "GET", path, "", b"", int(alice.clock()))
    assert alice.client.get(path, headers=headers).status_code == 200
    # Forwarded twice (a conference service replaying it): the nonce is spent.
    assert_error(alice.client.get(path, headers=headers), 401, "replayed_request")
    # Signed for one group, presented for another; or signed by another device.
    for_g1 = sign_request(alice.signer, alice.device_id, "GET", path, "", b"", int(alice.clock()))
    assert_error(alice.client.get("/v1/groups/g2/membership", headers=for_g1), 401, "bad_signature")
    forged = sign_request(bob.signer, alice.device_id, "GET", path, "", b"", int(alice.clock()))
    assert_error(alice.client.get(path, headers=forged), 401, "bad_signature")
    # Too old to be a fresh capability.
    stale = sign_request(
        alice.signer, alice.device_id, "GET", path, "", b"", int(alice.clock()) - 3600
    )
    assert_error(alice.client.get(path, headers=stale), 401, "stale_request")
