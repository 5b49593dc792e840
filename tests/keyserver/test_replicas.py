"""Two key service instances (replicas) on one PostgreSQL database."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from veil.crypto.keys import Plaintext
from veil.crypto.pre import EncryptedValue, decrypt, encrypt
from veil.keyserver import create_app
from veil.keyserver.maintenance import verify_audit
from veil.protocol import b64decode, b64encode, sign_request


@pytest.fixture
def replicas(settings):  # type: ignore[no-untyped-def]
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database; SQLite is the one-process default")
    with (
        TestClient(create_app(settings), raise_server_exceptions=False) as first,
        TestClient(create_app(settings), raise_server_exceptions=False) as second,
    ):
        yield first, second


def test_replicas_serve_the_same_users_and_groups(replicas, make_actor) -> None:  # type: ignore[no-untyped-def]
    first, second = replicas
    alice, bob = make_actor("alice"), make_actor("bob")
    alice.client, bob.client = first, second
    group_key = alice.create_group("shared")
    bob.client = first
    alice.client = second
    assert alice.add_member("shared", group_key, bob).status_code == 201
    session_key = Plaintext.generate()
    value = encrypt(session_key, group_key.public_key, alice.signer)
    for client in (first, second):
        bob.client = client
        response = bob.transform(bytes(value), "shared")
        assert response.status_code == 200, response.text
        moved = EncryptedValue.from_bytes(b64decode(response.json()["encrypted_key"])).verify()
        assert decrypt(moved, bob.device_key) == session_key
    alice.client = first
    assert alice.remove_member("shared", group_key, "bob").status_code == 200
    bob.client = second
    assert bob.transform(bytes(value), "shared").json()["error"]["code"] == "not_member"
    assert verify_audit(first.app.state.service.settings.database_url).ok


def test_a_request_replayed_on_another_replica_is_rejected(replicas, make_actor) -> None:  # type: ignore[no-untyped-def]
    first, second = replicas
    alice = make_actor("alice")
    body = json.dumps({"user_ids": ["alice"]}).encode()
    headers = sign_request(
        alice.signer, alice.device_id, "POST", "/v1/public-keys", "", body, int(alice.clock())
    )
    headers["content-type"] = "application/json"
    assert first.post("/v1/public-keys", content=body, headers=headers).status_code == 200
    replay = second.post("/v1/public-keys", content=body, headers=headers)
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "replayed_request"


def test_concurrent_audit_appends_from_both_replicas_keep_one_chain(replicas, make_actor) -> None:  # type: ignore[no-untyped-def]
    first, second = replicas
    alice = make_actor("alice")
    group_key = alice.create_group("busy")
    alice_member = alice.add_member("busy", group_key, alice)
    assert alice_member.status_code == 201
    value = bytes(encrypt(Plaintext.generate(), group_key.public_key, alice.signer))

    def one(i: int) -> int:
        # Each call signs its own request (fresh nonce) and picks a replica.
        request_body = json.dumps({"encrypted_key": b64encode(value), "group_id": "busy"}).encode()
        headers = sign_request(
            alice.signer,
            alice.device_id,
            "POST",
            "/v1/transform",
            "",
            request_body,
            int(alice.clock()),
        )
        headers["content-type"] = "application/json"
        client = first if i % 2 else second
        return client.post("/v1/transform", content=request_body, headers=headers).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one, range(24)))
    assert statuses == [200] * 24
    report = verify_audit(first.app.state.service.settings.database_url)
    assert report.ok and report.entries == 4 + 24
