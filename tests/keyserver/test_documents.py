"""Documents (durable artifacts): grants to users and groups, fetched transformed for the
caller and decrypted with the real keys. Every test runs on SQLite and on PostgreSQL."""

from dataclasses import dataclass
from typing import Any

import pytest

from veil.crypto.aead import open_document, seal_document
from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import EncryptedValue, decrypt, encrypt
from veil.protocol import b64decode, b64encode, sign_request

DOC = "transcript-1"


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text
    assert "encrypted_key" not in response.json()


def grant(kind: str, grantee_id: str, dek: Plaintext, to: Any, signer_of: Any) -> dict[str, str]:
    return {
        "grantee_kind": kind,
        "grantee_id": grantee_id,
        "encrypted_key": b64encode(bytes(encrypt(dek, to, signer_of.signer))),
    }


@dataclass
class Scene:
    """Alice owns a transcript granted to herself, to Bob and to group g1 (Carol is a
    member); Dave has keys but no grant."""

    alice: Any
    bob: Any
    carol: Any
    dave: Any
    group_key: PrivateKey
    dek: Plaintext
    sealed: bytes


def scene(make_actor) -> Scene:  # type: ignore[no-untyped-def]
    alice, bob, carol, dave = (make_actor(n) for n in ("alice", "bob", "carol", "dave"))
    group_key = alice.create_group("g1")
    assert alice.add_member("g1", group_key, carol).status_code == 201
    dek = Plaintext.generate()
    sealed = seal_document(dek.derive_key("document"), DOC, b"minutes of the meeting")
    response = alice.signed(
        "POST",
        "/v1/documents",
        {
            "document_id": DOC,
            "kind": "transcript",
            "grants": [
                grant("user", "alice", dek, alice.master, alice),
                grant("user", "bob", dek, bob.master, alice),
                grant("group", "g1", dek, group_key.public_key, alice),
            ],
        },
    )
    assert response.status_code == 201 and response.json() == {"ok": True}, response.text
    return Scene(alice, bob, carol, dave, group_key, dek, sealed)


def fetch(actor: Any, document_id: str = DOC) -> Any:
    return actor.signed("GET", f"/v1/documents/{document_id}/key")


def opened(actor: Any, expected_via: str, sealed: bytes) -> bytes:
    """Fetch the document key as ``actor``, decrypt it on the device, open the document."""
    response = fetch(actor)
    assert response.status_code == 200, response.text
    assert response.json()["via"] == expected_via
    value = EncryptedValue.from_bytes(b64decode(response.json()["encrypted_key"])).verify()
    dek = decrypt(value, actor.device_key)
    return open_document(dek.derive_key("document"), DOC, sealed)


def test_owner_granted_user_and_group_member_each_decrypt_the_key(make_actor) -> None:  # type: ignore[no-untyped-def]
    s = scene(make_actor)
    for actor, via in ((s.alice, "user"), (s.bob, "user"), (s.carol, "group")):
        assert opened(actor, via, s.sealed) == b"minutes of the meeting"


def test_a_non_grantee_is_403_no_access(make_actor) -> None:  # type: ignore[no-untyped-def]
    s = scene(make_actor)
    assert_error(fetch(s.dave), 403, "no_access")
    # An admin of the granted group who is not a member is not reached either.
    assert s.alice.signed("DELETE", f"/v1/documents/{DOC}/grants/user/alice").status_code == 200
    assert_error(fetch(s.alice), 403, "no_access")


def test_revoking_the_group_grant_cuts_off_its_members(make_actor) -> None:  # type: ignore[no-untyped-def]
    s = scene(make_actor)
    response = s.alice.signed("DELETE", f"/v1/documents/{DOC}/grants/group/g1")
    assert response.status_code == 200 and response.json() == {"ok": True}, response.text
    assert_error(fetch(s.carol), 403, "no_access")
    assert opened(s.bob, "user", s.sealed) == b"minutes of the meeting"
    response = s.alice.signed("DELETE", f"/v1/documents/{DOC}/grants/group/g1")
    assert_error(response, 404, "not_found")


def test_revoking_a_user_grant_cuts_off_that_user(make_actor) -> None:  # type: ignore[no-untyped-def]
    s = scene(make_actor)
    assert s.alice.signed("DELETE", f"/v1/documents/{DOC}/grants/user/bob").status_code == 200
    assert_error(fetch(s.bob), 403, "no_access")
    assert opened(s.carol, "group", s.sealed) == b"minutes of the meeting"


def test_removing_a_member_from_a_granted_group_cuts_off_access(make_actor) -> None:  # type: ignore[no-untyped-def]
    s = scene(make_actor)
    assert s.alice.remove_member("g1", s.group_key, "carol").status_code == 200
    assert_error(fetch(s.carol), 403, "no_access")


def test_a_user_added_to_a_granted_group_gains_access(make_actor) -> None:  # type: ignore[no-untyped-def]
    s = scene(make_actor)
    assert s.alice.add_member("g1", s.group_key, s.dave).status_code == 201
    assert opened(s.dave, "group", s.sealed) == b"minutes of the meeting"


def test_the_owner_grants_a_user_later(make_actor) -> None:  # type: ignore[no-untyped-def]
    s = scene(make_actor)
    response = s.alice.signed(
        "POST", f"/v1/documents/{DOC}/grants", grant("user", "dave", s.dek, s.dave.master, s.alice)
    )
    assert response.status_code == 201 and response.json() == {"ok": True}, response.text
    assert opened(s.dave, "user", s.sealed) == b"minutes of the meeting"


def test_a_non_owner_changing_grants_is_403_not_owner(make_actor) -> None:  # type: ignore[no-untyped-def]
    s = scene(make_actor)
    body = grant("user", "dave", s.dek, s.dave.master, s.bob)
    assert_error(s.bob.signed("POST", f"/v1/documents/{DOC}/grants", body), 403, "not_owner")
    response = s.bob.signed("DELETE", f"/v1/documents/{DOC}/grants/group/g1")
    assert_error(response, 403, "not_owner")
    assert_error(fetch(s.dave), 403, "no_access")
    assert fetch(s.carol).status_code == 200


def test_an_unknown_grantee_is_422_unknown_grantee(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    dek = Plaintext.generate()
    for kind, grantee in (("user", "nobody"), ("group", "no-such-group")):
        body = {
            "document_id": "d1",
            "kind": "file",
            "grants": [
                grant("user", "alice", dek, alice.master, alice),
                grant(kind, grantee, dek, alice.master, alice),
            ],
        }
        assert_error(alice.signed("POST", "/v1/documents", body), 422, "unknown_grantee")
        # Nothing half-written: the document does not exist ...
        assert_error(fetch(alice, "d1"), 404, "not_found")
    # ... and its id is still free.
    body = {
        "document_id": "d1",
        "kind": "file",
        "grants": [grant("user", "alice", dek, alice.master, alice)],
    }
    assert alice.signed("POST", "/v1/documents", body).status_code == 201
    response = alice.signed(
        "POST", "/v1/documents/d1/grants", grant("user", "nobody", dek, alice.master, alice)
    )
    assert_error(response, 422, "unknown_grantee")


def test_a_duplicate_document_id_is_409_document_exists(make_actor) -> None:  # type: ignore[no-untyped-def]
    s = scene(make_actor)
    body = {
        "document_id": DOC,
        "kind": "file",
        "grants": [grant("user", "dave", Plaintext.generate(), s.dave.master, s.dave)],
    }
    assert_error(s.dave.signed("POST", "/v1/documents", body), 409, "document_exists")
    assert_error(fetch(s.dave), 403, "no_access")
    assert opened(s.bob, "user", s.sealed) == b"minutes of the meeting"


def test_an_unknown_document_is_404(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    dek = Plaintext.generate()
    assert_error(fetch(alice, "nope"), 404, "not_found")
    response = alice.signed(
        "POST", "/v1/documents/nope/grants", grant("user", "alice", dek, alice.master, alice)
    )
    assert_error(response, 404, "not_found")
    assert_error(alice.signed("DELETE", "/v1/documents/nope/grants/user/alice"), 404, "not_found")


def test_malformed_grants_are_422(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    good = grant("user", "alice", Plaintext.generate(), alice.master, alice)
    cases = [
        ({**good, "encrypted_key": b64encode(b"\x01\x02garbage")}, "invalid_encoding"),
        ({**good, "grantee_kind": "device"}, "validation_error"),
    ]
    for bad, code in cases:
        body = {"document_id": "d1", "kind": "file", "grants": [bad]}
        assert_error(alice.signed("POST", "/v1/documents", body), 422, code)
    body = {"document_id": "d1", "kind": "file", "grants": []}
    assert_error(alice.signed("POST", "/v1/documents", body), 422, "validation_error")
    body = {"document_id": "d1", "kind": "diary", "grants": [good]}
    assert_error(alice.signed("POST", "/v1/documents", body), 422, "validation_error")


def test_a_document_id_with_a_nul_byte_is_422_not_500(make_actor, request, database_url) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    path = "/v1/documents/ab\x00cd/key"  # sent as %00; the service checks the decoded path
    headers = sign_request(alice.signer, alice.device_id, "GET", path, "", b"", int(alice.clock()))
    try:
        response = alice.client.request("GET", "/v1/documents/ab%00cd/key", headers=headers)
    except Exception as error:  # raise_server_exceptions: a 500 surfaces as the exception
        pytest.fail(f"500: {error!r}"[:300])
    assert_error(response, 422, "validation_error")


def test_a_deleted_groups_grants_go_with_it(make_actor) -> None:  # type: ignore[no-untyped-def]
    s = scene(make_actor)
    assert s.alice.signed("DELETE", "/v1/groups/g1").status_code == 200
    assert_error(fetch(s.carol), 403, "no_access")
    # Dave makes a group of the same id and joins it: the old grant does not reach him.
    dave_key = s.dave.create_group("g1")
    assert s.dave.add_member("g1", dave_key, s.dave).status_code == 201
    assert_error(fetch(s.dave), 403, "no_access")
    assert opened(s.bob, "user", s.sealed) == b"minutes of the meeting"


def author_of(actor: Any, signing_key: bytes | None = None) -> dict[str, Any]:
    """The ``author`` a document-key answer should carry for ``actor``'s device (with
    the signing key and PRE key it had when it signed, ``actor``'s by default)."""
    record = actor.client.get(f"/v1/devices/{actor.device_id}").json()
    return {
        "device_id": actor.device_id,
        "user_id": actor.name,
        "public_key": record["public_key"],
        "signing_key": record["signing_key"] if signing_key is None else b64encode(signing_key),
        "certificate": record["certificate"],
        "status": record["status"],
    }


def test_the_key_comes_with_its_origin_author_and_owner(make_actor) -> None:  # type: ignore[no-untyped-def]
    s = scene(make_actor)
    author = author_of(s.alice)
    for actor in (s.bob, s.carol):
        data = fetch(actor).json()
        assert data["owner"] == "alice"
        assert data["author"] == author
        origin = EncryptedValue.from_bytes(b64decode(data["origin"]))
        assert origin.level == 0
        assert bytes(origin.signer) == bytes(s.alice.signer.verifying_key)
        transformed = EncryptedValue.from_bytes(b64decode(data["encrypted_key"])).verify()
        dek = decrypt(transformed, actor.device_key, origin=origin.verify())
        assert open_document(dek.derive_key("document"), DOC, s.sealed) == b"minutes of the meeting"


def test_the_author_is_named_with_the_keys_it_signed_with_after_it_rotates(make_actor) -> None:  # type: ignore[no-untyped-def]
    s = scene(make_actor)
    before = author_of(s.alice)
    rotated = s.alice.another_device()
    assert s.alice.rotate(rotated.device_key, rotated.signer).status_code == 200
    s.alice.device_key, s.alice.signer = rotated.device_key, rotated.signer
    assert author_of(s.alice) != before  # the device's record moved on ...
    assert fetch(s.bob).json()["author"] == before  # ... the grant's author did not
    # Revoked, the device is still named, as revoked: what it signed stays checkable.
    assert s.alice.signed("DELETE", f"/v1/devices/{s.alice.device_id}").status_code == 200
    assert fetch(s.bob).json()["author"] == {**before, "status": "revoked"}


def test_a_grant_signed_by_another_device_is_422_foreign_ciphertext(make_actor) -> None:  # type: ignore[no-untyped-def]
    s = scene(make_actor)
    foreign = grant("user", "dave", s.dek, s.dave.master, s.bob)  # bob's key, alice calls
    response = s.alice.signed("POST", f"/v1/documents/{DOC}/grants", foreign)
    assert_error(response, 422, "foreign_ciphertext")
    body = {"document_id": "d2", "kind": "file", "grants": [foreign]}
    assert_error(s.alice.signed("POST", "/v1/documents", body), 422, "foreign_ciphertext")
    assert_error(fetch(s.dave), 403, "no_access")
    assert_error(fetch(s.dave, "d2"), 404, "not_found")


def _escrow_body(actor: Any, document_id: str) -> dict[str, Any]:
    """What approval mode stores: the escrow password's plaintext granted to the user."""
    grant_ = grant("user", actor.name, Plaintext.generate(), actor.master, actor)
    return {"document_id": document_id, "kind": "other", "grants": [grant_]}


def test_a_users_escrow_document_id_is_reserved_for_that_user(make_actor) -> None:  # type: ignore[no-untyped-def]
    """Created by someone else first, ``veil-escrow.<user>`` would lock that user out of
    device-approval mode for good: only a device of ``<user>`` may create it."""
    mallory = make_actor("mallory")
    for document_id in ("veil-escrow.bob", "veil-escrow.", "veil-escrow.mallory2"):
        response = mallory.signed("POST", "/v1/documents", _escrow_body(mallory, document_id))
        assert_error(response, 403, "reserved_document_id")
    bob = make_actor("bob")  # registers after the attempt, and is not locked out
    assert_error(fetch(bob, "veil-escrow.bob"), 404, "not_found")
    response = bob.signed("POST", "/v1/documents", _escrow_body(bob, "veil-escrow.bob"))
    assert response.status_code == 201, response.text
    assert fetch(bob, "veil-escrow.bob").status_code == 200
    # Ids that merely look alike are anyone's.
    body = _escrow_body(mallory, "veil-escrowbob")
    assert mallory.signed("POST", "/v1/documents", body).status_code == 201
