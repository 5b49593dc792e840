"""Signed requests (issue 16, §1): the signature covers the device id (``veil-request-v2``),
and a refused request's nonce is spent all the same, so it cannot be replayed later.

Every test runs on SQLite and on PostgreSQL (the ``database_url`` fixture)."""

import json
from typing import Any

import pytest
from sqlalchemy import update

from veil.client.keyserver import create_group_body
from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import encrypt
from veil.keyserver.models import Device
from veil.keyserver.settings import KeyServerSettings
from veil.protocol import DEVICE_HEADER, b64encode, request_message, sign_request
from veil.web.database import create_db_engine


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text


def signed_headers(actor: Any, method: str, path: str, raw: bytes = b"") -> dict[str, str]:
    headers = sign_request(actor.signer, actor.device_id, method, path, "", raw, int(actor.clock()))
    return {**headers, "content-type": "application/json"}


# --- the device id is signed --------------------------------------------------------------


def test_the_signed_string_is_v2_and_names_the_device() -> None:
    args = ("GET", "/v1/devices", "", b"", 1_700_000_000, "bm9uY2Vub25jZW5vbmNlAA")
    message = request_message(*args, device_id="d1")
    assert message.split(b"\n")[:3] == [b"veil-request-v2", b"d1", b"GET"]
    assert message != request_message(*args, device_id="d2")
    with pytest.raises(ValueError, match="a device id has no line break"):
        request_message(*args, device_id="d1\nGET")


def test_a_signature_presented_under_another_device_id_is_401_bad_signature(
    make_actor: Any, settings: KeyServerSettings
) -> None:
    """A database from before migration 0003 may hold two devices with one signing key
    (registration refuses that now: ``signing_key_taken``). Under ``veil-request-v1``
    either could replay the other's requests under its own id; the signed id stops it."""
    alice = make_actor("alice")
    laptop = alice.another_device()
    laptop.add_device()
    engine = create_db_engine(settings.database_url)
    try:
        with engine.begin() as db:
            db.execute(
                update(Device)
                .where(Device.id == laptop.device_id)
                .values(signing_key=bytes(alice.signer.verifying_key))
            )
    finally:
        engine.dispose()
    headers = signed_headers(alice, "GET", "/v1/devices")
    moved = {**headers, DEVICE_HEADER: laptop.device_id}
    assert_error(alice.client.get("/v1/devices", headers=moved), 401, "bad_signature")
    # The same request under the id it was signed for is accepted (its nonce unspent).
    assert alice.client.get("/v1/devices", headers=headers).status_code == 200


def test_changing_the_device_header_breaks_the_signature(make_actor: Any) -> None:
    alice, bob = make_actor("alice"), make_actor("bob")
    headers = signed_headers(alice, "GET", "/v1/devices")
    for device_id in (bob.device_id, alice.device_id.upper(), alice.device_id + "0"):
        moved = {**headers, DEVICE_HEADER: device_id}
        response = alice.client.get("/v1/devices", headers=moved)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] in ("bad_signature", "unknown_device")
    assert alice.client.get("/v1/devices", headers=headers).status_code == 200


# --- a refused request's nonce is spent -----------------------------------------------------


def test_a_request_refused_for_a_business_reason_cannot_be_replayed_once_it_would_pass(
    make_actor: Any,
) -> None:
    """bob asks for his membership before he is a member (403 not_member); an observer
    who kept the request replays it, within the clock-skew window, after alice adds him.
    The refusal's transaction rolled back, but the nonce stays spent."""
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g")
    path = "/v1/groups/g/membership"
    headers = signed_headers(bob, "GET", path)
    assert_error(bob.client.get(path, headers=headers), 403, "not_member")
    assert alice.add_member("g", group_key, bob).status_code == 201
    assert_error(bob.client.get(path, headers=headers), 401, "replayed_request")
    assert bob.signed("GET", path).status_code == 200  # a fresh request passes


def test_a_refused_transform_cannot_be_replayed_once_the_device_is_a_member(
    make_actor: Any,
) -> None:
    """The same through the transform route (its own request handling and early path)."""
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g")
    value = encrypt(Plaintext.generate(), group_key.public_key, alice.signer)
    raw = json.dumps({"encrypted_key": b64encode(bytes(value)), "group_id": "g"}).encode()
    headers = signed_headers(bob, "POST", "/v1/transform", raw)
    assert_error(bob.client.post("/v1/transform", content=raw, headers=headers), 403, "not_member")
    assert alice.add_member("g", group_key, bob).status_code == 201
    again = bob.client.post("/v1/transform", content=raw, headers=headers)
    assert_error(again, 401, "replayed_request")


def test_a_request_refused_on_conflict_is_spent_too(make_actor: Any) -> None:
    """409 answers come from the database's constraints (the transaction fails at
    commit): the nonce is spent again afterwards."""
    alice = make_actor("alice")
    alice.create_group("taken")
    raw = _create_group_body(alice, "taken")
    headers = signed_headers(alice, "POST", "/v1/groups", raw)
    assert_error(alice.client.post("/v1/groups", content=raw, headers=headers), 409, "group_exists")
    assert alice.signed("DELETE", "/v1/groups/taken").status_code == 200
    again = alice.client.post("/v1/groups", content=raw, headers=headers)
    assert_error(again, 401, "replayed_request")


def test_a_bad_signature_does_not_spend_the_nonce(make_actor: Any) -> None:
    """Only a request whose signature verified spends its nonce: a forger cannot burn
    the nonce of a request it saw before the device sends it."""
    alice = make_actor("alice")
    headers = signed_headers(alice, "GET", "/v1/devices")
    forged = {**headers, "veil-signature": b64encode(bytes(64))}
    assert_error(alice.client.get("/v1/devices", headers=forged), 401, "bad_signature")
    assert alice.client.get("/v1/devices", headers=headers).status_code == 200
    assert_error(alice.client.get("/v1/devices", headers=headers), 401, "replayed_request")


def _create_group_body(actor: Any, group_id: str) -> bytes:
    body = create_group_body(
        group_id,
        PrivateKey.generate(),
        user_id=actor.name,
        master=actor.master,
        signer=actor.signer,
        now=int(actor.clock()),
    )
    return json.dumps(body).encode()
