"""Transform: user -> device and group -> user -> device, only for active devices of
current members. Every test runs on SQLite and on PostgreSQL."""

import asyncio
import json
import secrets
from typing import Any

import pytest

from veil.crypto.errors import DecryptionError
from veil.crypto.keys import Plaintext
from veil.crypto.pre import EncryptedValue, decrypt, encrypt
from veil.protocol import b64decode, b64encode, sign_request


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text
    assert "encrypted_key" not in response.json()


def result(response: Any) -> EncryptedValue:
    assert response.status_code == 200, response.text
    return EncryptedValue.from_bytes(b64decode(response.json()["encrypted_key"])).verify()


def test_a_user_level_ciphertext_decrypts_on_the_device(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    session_key = Plaintext.generate()
    value = result(alice.transform(bytes(encrypt(session_key, alice.master, alice.signer))))
    assert value.level == 1
    assert decrypt(value, alice.device_key) == session_key


def test_a_group_level_ciphertext_decrypts_on_a_members_device(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g1")
    assert alice.add_member("g1", group_key, bob).status_code == 201
    session_key = Plaintext.generate()
    encrypted = bytes(encrypt(session_key, group_key.public_key, alice.signer))
    value = result(bob.transform(encrypted, "g1"))
    assert value.level == 2
    assert decrypt(value, bob.device_key) == session_key
    # The same group ciphertext sent without the group id is not for Bob's user key.
    with pytest.raises(DecryptionError):
        decrypt(result(bob.transform(encrypted)), bob.device_key)


def test_a_ciphertext_for_another_user_does_not_decrypt_for_the_caller(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    encrypted = bytes(encrypt(Plaintext.generate(), bob.master, bob.signer))
    with pytest.raises(DecryptionError):
        decrypt(result(alice.transform(encrypted)), alice.device_key)


def test_a_removed_member_gets_403_not_member_never_a_ciphertext(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = make_actor("alice"), make_actor("bob"), make_actor("carol")
    group_key = alice.create_group("g1")
    for member in (bob, carol):
        assert alice.add_member("g1", group_key, member).status_code == 201
    encrypted = bytes(encrypt(Plaintext.generate(), group_key.public_key, alice.signer))
    result(bob.transform(encrypted, "g1"))
    assert alice.remove_member("g1", group_key, "bob").status_code == 200
    assert_error(bob.transform(encrypted, "g1"), 403, "not_member")
    # A ciphertext made after the removal is no different.
    later = bytes(encrypt(Plaintext.generate(), group_key.public_key, alice.signer))
    assert_error(bob.transform(later, "g1"), 403, "not_member")
    result(carol.transform(later, "g1"))


def test_a_member_of_another_group_gets_403(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = make_actor("alice"), make_actor("bob"), make_actor("carol")
    key1, key2 = alice.create_group("g1"), alice.create_group("g2")
    assert alice.add_member("g1", key1, bob).status_code == 201
    assert alice.add_member("g2", key2, carol).status_code == 201
    encrypted = bytes(encrypt(Plaintext.generate(), key1.public_key, alice.signer))
    assert_error(carol.transform(encrypted, "g1"), 403, "not_member")
    # Naming her own group for another group's ciphertext gets her nothing she can open.
    with pytest.raises(DecryptionError):
        decrypt(result(carol.transform(encrypted, "g2")), carol.device_key)


def test_an_unknown_group_is_404(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    encrypted = bytes(encrypt(Plaintext.generate(), alice.master, alice.signer))
    assert_error(alice.transform(encrypted, "no-such-group"), 404, "not_found")


def test_a_ciphertext_with_one_signature_bit_flipped_is_400_bad_signature(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    encrypted = bytearray(bytes(encrypt(Plaintext.generate(), alice.master, alice.signer)))
    encrypted[-64] ^= 0x01  # the first byte of the Ed25519 signature
    assert_error(alice.transform(bytes(encrypted)), 400, "bad_signature")


def test_a_ciphertext_with_a_flipped_auth_hash_bit_is_400_bad_signature(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    encrypted = bytearray(bytes(encrypt(Plaintext.generate(), alice.master, alice.signer)))
    encrypted[3 + 48 + 288] ^= 0x80  # the first byte of the auth hash, covered by the signature
    assert_error(alice.transform(bytes(encrypted)), 400, "bad_signature")


def test_garbage_is_422(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    good = bytes(encrypt(Plaintext.generate(), alice.master, alice.signer))
    for garbage in (
        secrets.token_bytes(len(good)),
        b"\x01\x02" + secrets.token_bytes(40),  # a ciphertext header, far too short
        good + b"\x00",  # one trailing byte
        good[:2] + b"\x09" + good[3:],  # a level beyond the maximum
        bytes(alice.master),  # a public key, not a ciphertext
        b"",
    ):
        assert_error(alice.transform(garbage), 422, "invalid_encoding")
    response = alice.signed("POST", "/v1/transform", {"encrypted_key": "not base64!"})
    assert_error(response, 422, "validation_error")
    response = alice.signed("POST", "/v1/transform", {"encrypted_key": 7})
    assert_error(response, 422, "validation_error")


def test_a_body_that_is_not_a_valid_json_transform_request_is_422(make_actor) -> None:  # type: ignore[no-untyped-def]
    """The route reads its own body (it skips FastAPI's body parameter): it must refuse
    what FastAPI would, naming the field, before anything is transformed."""
    alice = make_actor("alice")
    good = json.dumps({"encrypted_key": b64encode(b"\x01")}).encode()
    for raw, content_type, field in (
        (good, "text/plain", ""),
        (good, None, ""),
        (b'{"encrypted_key": ', "application/json", ""),
        (b"[]", "application/json", ""),
        (b'{"group_id": "g"}', "application/json", "encrypted_key"),
        (b'{"encrypted_key": "AQ", "group_id": "bad id"}', "application/json", "group_id"),
        (b'{"encrypted_key": "AQ", "extra": 1}', "application/json", "extra"),
    ):
        headers = sign_request(
            alice.signer, alice.device_id, "POST", "/v1/transform", "", raw, int(alice.clock())
        )
        if content_type is not None:
            headers["content-type"] = content_type
        response = alice.client.post("/v1/transform", content=raw, headers=headers)
        assert_error(response, 422, "validation_error")
        assert response.json()["error"]["message"].startswith(field), response.text


def test_a_json_media_type_with_parameters_or_a_suffix_is_accepted(make_actor) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    raw = json.dumps(
        {
            "encrypted_key": b64encode(
                bytes(encrypt(Plaintext.generate(), alice.master, alice.signer))
            )
        }
    ).encode()
    for content_type in ("application/json; charset=utf-8", "application/veil+json"):
        headers = sign_request(
            alice.signer, alice.device_id, "POST", "/v1/transform", "", raw, int(alice.clock())
        )
        headers["content-type"] = content_type
        result(alice.client.post("/v1/transform", content=raw, headers=headers))


def test_a_client_gone_before_its_body_arrived_is_400_not_500(client) -> None:  # type: ignore[no-untyped-def]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/transform", "raw_path": b"/v1/transform",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80), "state": {},
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
    }  # fmt: skip
    messages = [{"type": "http.request", "body": b'{"encr', "more_body": True}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(client.app(scope, receive, send))
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["error"]["code"] == "http_error"


def test_the_openapi_schema_documents_the_transform_body(client) -> None:  # type: ignore[no-untyped-def]
    operation = client.get("/openapi.json").json()["paths"]["/v1/transform"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["encrypted_key"]
    assert set(schema["properties"]) == {"encrypted_key", "group_id"}
    assert schema["additionalProperties"] is False
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/Transformed"}


def test_an_unsigned_transform_is_401(make_actor, client) -> None:  # type: ignore[no-untyped-def]
    alice = make_actor("alice")
    encrypted = bytes(encrypt(Plaintext.generate(), alice.master, alice.signer))
    response = client.post("/v1/transform", json={"encrypted_key": b64encode(encrypted)})
    assert_error(response, 401, "unsigned_request")
