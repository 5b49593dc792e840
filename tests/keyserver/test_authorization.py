"""The key service's authorization matrix (issue 4, "Tests that must exist").

Every row sends one request that must be refused and asserts the HTTP status *and* the
stable ``error.code``; every refusal is also checked for leaks (the bearer token, its
signature, and the key bytes in play never appear in an error body). Most rows also
send the nearest request that must be accepted, so a row cannot pass merely because
its request was broken in some other way.

Every test runs on SQLite and on PostgreSQL (the ``database_url`` fixture).
"""

import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from veil.crypto import schnorr
from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import encrypt, generate_transform_key
from veil.crypto.signing import SigningKey
from veil.idp import DevIdentityProvider
from veil.protocol import (
    DEVICE_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    b64decode,
    b64encode,
    device_proof_message,
    group_proof_message,
    request_message,
    sign_request,
)

SIGNED_HEADERS = (DEVICE_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)


# --- helpers ------------------------------------------------------------------------------


def _forms(value: str | bytes) -> list[str]:
    """The ways a secret could show up in a JSON body: as is, base64url, base64, hex."""
    if isinstance(value, str):
        parts = [value] + [p for p in value.split(".") if len(p) >= 16]  # JWT segments too
        return parts
    return [b64encode(value), base64.b64encode(value).decode().rstrip("="), value.hex()]


def expect_error(response: Any, status: int, code: str, *secret_values: str | bytes) -> None:
    """Status, stable code, a human message, and no secret in the body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    for value in secret_values:
        for form in _forms(value):
            assert form not in response.text, f"error body leaks {form[:12]}..."


def actor_secrets(actor: Any) -> list[bytes]:
    """Key bytes an error body must never echo (private keys and the device's keys)."""
    return [
        actor.user_key.to_secret_bytes(),
        actor.device_key.to_secret_bytes(),
        actor.signer.to_secret_bytes(),
        bytes(actor.device_key.public_key),
        bytes(actor.signer.verifying_key),
    ]


def send_signed(
    actor: Any,
    method: str,
    path: str,
    body: Any = None,
    *,
    query: str = "",
    timestamp: int | None = None,
    signer: SigningKey | None = None,
    device_id: str | None = None,
    sign_method: str | None = None,
    sign_path: str | None = None,
    sign_query: str | None = None,
    sign_body: Any = None,
    override: dict[str, str | None] | None = None,
) -> tuple[Any, dict[str, str], bytes]:
    """Sign a request as ``actor``'s device, optionally signing something other than
    what is sent (``sign_*``) or replacing headers (``override``; None drops one)."""
    raw = b"" if body is None else json.dumps(body).encode()
    signed_raw = raw if sign_body is None else json.dumps(sign_body).encode()
    headers = sign_request(
        signer or actor.signer,
        actor.device_id if device_id is None else device_id,
        method if sign_method is None else sign_method,
        path if sign_path is None else sign_path,
        query if sign_query is None else sign_query,
        signed_raw,
        int(actor.clock()) if timestamp is None else timestamp,
    )
    for name, value in (override or {}).items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    headers["content-type"] = "application/json"
    url = f"{path}?{query}" if query else path
    return send_raw(actor.client, method, url, raw, headers), headers, raw


def send_raw(client: TestClient, method: str, url: str, raw: bytes, headers: dict[str, str]) -> Any:
    return client.request(method, url, content=raw, headers=headers)


def lenient(client: TestClient) -> TestClient:
    """A second client on the same app that turns unhandled exceptions into 500s, so a
    src bug shows up as a status instead of an exception in the test."""
    return TestClient(client.app, raise_server_exceptions=False)


def share(client: TestClient, token: str) -> Any:
    """A JWT-only call: the key service's escrow-password share."""
    return client.post("/v1/users/me/share", headers={"Authorization": f"Bearer {token}"})


def forge_jwt(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    def part(obj: dict[str, Any]) -> str:
        return b64encode(json.dumps(obj, separators=(",", ":")).encode())

    return f"{part(header)}.{part(claims)}.{b64encode(signature)}"


def claims_for(idp: DevIdentityProvider, sub: str) -> dict[str, Any]:
    now = int(idp.clock())
    return {"iss": idp.issuer, "aud": idp.audience, "sub": sub, "iat": now, "exp": now + 300}


@pytest.fixture
def alice(make_actor: Any) -> Any:
    return make_actor("alice")


# --- signed requests -------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["all", *SIGNED_HEADERS])
def test_unsigned_request_is_401_unsigned_request(alice: Any, missing: str) -> None:
    drop: dict[str, str | None] = (
        dict.fromkeys(SIGNED_HEADERS, None) if missing == "all" else {missing: None}
    )
    response, _, _ = send_signed(alice, "GET", "/v1/devices", override=drop)
    expect_error(response, 401, "unsigned_request", *actor_secrets(alice))
    # the same request with every header is accepted
    assert send_signed(alice, "GET", "/v1/devices")[0].status_code == 200


def test_signature_by_another_key_is_401_bad_signature(alice: Any) -> None:
    response, _, _ = send_signed(alice, "GET", "/v1/devices", signer=SigningKey.generate())
    expect_error(response, 401, "bad_signature", *actor_secrets(alice))


def test_tampered_signature_is_401_bad_signature(alice: Any) -> None:
    headers = sign_request(
        alice.signer, alice.device_id, "GET", "/v1/devices", "", b"", int(alice.clock())
    )
    raw_sig = bytearray(base64.urlsafe_b64decode(headers[SIGNATURE_HEADER] + "=="))
    raw_sig[10] ^= 0x01
    headers[SIGNATURE_HEADER] = b64encode(bytes(raw_sig))
    response = alice.client.get("/v1/devices", headers=headers)
    expect_error(response, 401, "bad_signature", *actor_secrets(alice))


@pytest.mark.parametrize(
    ("what", "kwargs"),
    [
        ("body", {"sign_body": {"user_ids": ["mallory"]}}),
        ("path", {"sign_path": "/v1/groups"}),
        ("method", {"sign_method": "DELETE"}),
        ("query", {"query": "a=1", "sign_query": "a=2"}),
        ("query added", {"query": "a=1", "sign_query": ""}),
    ],
)
def test_signature_over_a_different_request_is_401_bad_signature(
    alice: Any, what: str, kwargs: dict[str, Any]
) -> None:
    body = {"user_ids": ["alice"]}
    if what == "body":
        response, _, _ = send_signed(alice, "POST", "/v1/public-keys", body, **kwargs)
    else:
        response, _, _ = send_signed(alice, "GET", "/v1/devices", **kwargs)
    expect_error(response, 401, "bad_signature", *actor_secrets(alice))
    # the honest versions pass
    assert send_signed(alice, "POST", "/v1/public-keys", body)[0].status_code == 200
    assert send_signed(alice, "GET", "/v1/devices", query="a=1")[0].status_code == 200


def test_timestamp_header_other_than_the_signed_one_is_401_bad_signature(alice: Any) -> None:
    now = int(alice.clock())
    response, _, _ = send_signed(
        alice, "GET", "/v1/devices", timestamp=now - 5, override={TIMESTAMP_HEADER: str(now)}
    )
    expect_error(response, 401, "bad_signature")


@pytest.mark.parametrize("offset", [-61, 61, -3600, 3600, -(10**9), 10**12])
def test_stale_timestamp_is_401_stale_request(alice: Any, offset: int) -> None:
    response, _, _ = send_signed(alice, "GET", "/v1/devices", timestamp=int(alice.clock()) + offset)
    expect_error(response, 401, "stale_request", *actor_secrets(alice))


@pytest.mark.parametrize("offset", [-60, -59, 0, 59, 60])
def test_timestamp_within_60_s_is_accepted(alice: Any, offset: int) -> None:
    response, _, _ = send_signed(alice, "GET", "/v1/devices", timestamp=int(alice.clock()) + offset)
    assert response.status_code == 200, response.text


def test_stale_check_follows_the_service_clock(alice: Any, clock: Any) -> None:
    """A request signed now and delivered 61 s later is stale."""
    headers = sign_request(
        alice.signer, alice.device_id, "GET", "/v1/devices", "", b"", int(clock())
    )
    clock.now += 61
    expect_error(alice.client.get("/v1/devices", headers=headers), 401, "stale_request")


def test_replayed_request_is_401_replayed_request(alice: Any) -> None:
    body = {"user_ids": ["alice"]}
    first, headers, raw = send_signed(alice, "POST", "/v1/public-keys", body)
    assert first.status_code == 200, first.text
    again = send_raw(alice.client, "POST", "/v1/public-keys", raw, headers)
    expect_error(again, 401, "replayed_request", *actor_secrets(alice))


def test_replayed_transform_is_refused_and_not_transformed_twice(make_actor: Any) -> None:
    alice = make_actor("alice")
    value = encrypt(Plaintext.generate(), alice.master, alice.signer)
    body = {"encrypted_key": b64encode(bytes(value))}
    first, headers, raw = send_signed(alice, "POST", "/v1/transform", body)
    assert first.status_code == 200, first.text
    again = send_raw(alice.client, "POST", "/v1/transform", raw, headers)
    expect_error(again, 401, "replayed_request", *actor_secrets(alice))
    assert "encrypted_key" not in again.text


def test_reused_nonce_with_a_new_signature_is_401_replayed_request(alice: Any) -> None:
    first, headers, _ = send_signed(alice, "GET", "/v1/devices")
    assert first.status_code == 200
    # A fresh, valid signature over a later timestamp, but the same nonce.
    later = int(alice.clock()) + 1
    nonce = headers[NONCE_HEADER]
    device = alice.device_id
    message = request_message("GET", "/v1/devices", "", b"", later, nonce, device_id=device)
    signature = alice.signer.sign(message)
    response = alice.client.get(
        "/v1/devices",
        headers={
            DEVICE_HEADER: alice.device_id,
            TIMESTAMP_HEADER: str(later),
            NONCE_HEADER: nonce,
            SIGNATURE_HEADER: b64encode(signature),
        },
    )
    expect_error(response, 401, "replayed_request")


def test_unknown_device_is_401_unknown_device(alice: Any) -> None:
    response, _, _ = send_signed(
        alice, "GET", "/v1/devices", device_id=secrets.token_hex(16), signer=SigningKey.generate()
    )
    expect_error(response, 401, "unknown_device", *actor_secrets(alice))


def _add_second_device(actor: Any) -> tuple[str, PrivateKey, SigningKey]:
    device_key, signer = PrivateKey.generate(), SigningKey.generate()
    token = actor.token()
    response = actor.client.post(
        "/v1/devices",
        headers={"Authorization": f"Bearer {token}"},
        json=actor.device_body(device_key, signer, token),
    )
    assert response.status_code == 201, response.text
    return response.json()["device_id"], device_key, signer


def test_revoked_device_is_403_device_revoked(alice: Any) -> None:
    device_id, _, signer = _add_second_device(alice)
    value = encrypt(Plaintext.generate(), alice.master, alice.signer)
    body = {"encrypted_key": b64encode(bytes(value))}
    before, _, _ = send_signed(
        alice, "POST", "/v1/transform", body, device_id=device_id, signer=signer
    )
    assert before.status_code == 200, before.text
    revoked, _, _ = send_signed(alice, "DELETE", f"/v1/devices/{device_id}")
    assert revoked.status_code == 200, revoked.text
    for method, path, payload in [
        ("GET", "/v1/devices", None),
        ("POST", "/v1/transform", body),
        ("POST", "/v1/public-keys", {"user_ids": ["alice"]}),
    ]:
        response, _, _ = send_signed(
            alice, method, path, payload, device_id=device_id, signer=signer
        )
        expect_error(response, 403, "device_revoked", *actor_secrets(alice))
        assert "encrypted_key" not in response.text
    # the other device is unaffected
    assert send_signed(alice, "POST", "/v1/transform", body)[0].status_code == 200


def test_device_that_revoked_itself_is_403_device_revoked(alice: Any) -> None:
    response, _, _ = send_signed(alice, "DELETE", f"/v1/devices/{alice.device_id}")
    assert response.status_code == 200, response.text
    response, _, _ = send_signed(alice, "GET", "/v1/devices")
    expect_error(response, 403, "device_revoked")


MALFORMED: list[tuple[str, dict[str, str | None], str]] = [
    ("empty device", {DEVICE_HEADER: ""}, "unsigned_request"),
    ("empty signature", {SIGNATURE_HEADER: ""}, "unsigned_request"),
    ("timestamp not a number", {TIMESTAMP_HEADER: "yesterday"}, "bad_signature"),
    ("timestamp a float", {TIMESTAMP_HEADER: "1700000000.5"}, "bad_signature"),
    ("timestamp 5000 digits", {TIMESTAMP_HEADER: "9" * 5000}, "bad_signature"),
    ("signature not base64url", {SIGNATURE_HEADER: "not base64!"}, "bad_signature"),
    ("signature padded", {SIGNATURE_HEADER: b64encode(bytes(64)) + "=="}, "bad_signature"),
    ("signature too short", {SIGNATURE_HEADER: b64encode(bytes(10))}, "bad_signature"),
    ("signature too long", {SIGNATURE_HEADER: b64encode(bytes(65))}, "bad_signature"),
    ("nonce not base64url", {NONCE_HEADER: "*" * 22}, "bad_signature"),
    ("nonce too short", {NONCE_HEADER: b64encode(bytes(8))}, "bad_signature"),
    ("nonce too long", {NONCE_HEADER: b64encode(bytes(32))}, "bad_signature"),
    ("device id over 64 chars", {DEVICE_HEADER: "d" * 65}, "bad_signature"),
]


@pytest.mark.parametrize(
    ("override", "code"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_signature_headers_are_401(
    alice: Any, override: dict[str, str | None], code: str
) -> None:
    response, _, _ = send_signed(alice, "GET", "/v1/devices")
    assert response.status_code == 200
    response, _, _ = send_signed(alice, "GET", "/v1/devices", override=override)
    expect_error(response, 401, code, *actor_secrets(alice))


# --- JWT identity assertions -------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer   ", "Basic YWxpY2U6cHc="])
def test_missing_bearer_token_is_401_missing_token(client: TestClient, authorization: Any) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for response in (
        client.post("/v1/users/me/share", headers=headers),
        client.get("/v1/users/me/escrow", headers=headers),
        client.post("/v1/users", headers=headers, json={"public_key": "AAAA", "escrow": "AAAA"}),
    ):
        expect_error(response, 401, "missing_token")


def test_a_valid_token_is_accepted(client: TestClient, idp: DevIdentityProvider) -> None:
    """The control for the JWT rows below."""
    response = share(client, idp.issue("alice"))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("seconds_past", [0, 1, 3600])
def test_expired_token_is_401_token_expired(
    client: TestClient, idp: DevIdentityProvider, seconds_past: int
) -> None:
    now = int(idp.clock())
    token = idp.issue("alice", iat=now - 600, exp=now - seconds_past)
    expect_error(share(client, token), 401, "token_expired", token)


def test_token_expiring_by_the_service_clock_is_401_token_expired(
    client: TestClient, idp: DevIdentityProvider, clock: Any
) -> None:
    token = idp.issue("alice")
    assert share(client, token).status_code == 200
    clock.now += idp.lifetime + 1
    expect_error(share(client, token), 401, "token_expired", token)


@pytest.mark.parametrize("audience", ["other", ["other", "another"], "veil "])
def test_wrong_audience_is_401_wrong_audience(
    client: TestClient, idp: DevIdentityProvider, audience: Any
) -> None:
    token = idp.issue("alice", aud=audience)
    expect_error(share(client, token), 401, "wrong_audience", token)


@pytest.mark.parametrize("issuer", ["https://evil.example", "veil-dev-idp "])
def test_wrong_issuer_is_401_wrong_issuer(
    client: TestClient, idp: DevIdentityProvider, issuer: str
) -> None:
    token = idp.issue("alice", iss=issuer)
    expect_error(share(client, token), 401, "wrong_issuer", token)


def test_token_signed_by_another_key_with_the_jwks_kid_is_401_invalid_token(
    client: TestClient, idp: DevIdentityProvider, clock: Any
) -> None:
    impostor = DevIdentityProvider(clock=clock)
    impostor.key_id = idp.key_id  # claims to be the configured key
    token = impostor.issue("alice")
    expect_error(share(client, token), 401, "invalid_token", token)


def test_token_signed_by_a_key_not_in_the_jwks_is_401_invalid_token(
    client: TestClient, clock: Any
) -> None:
    token = DevIdentityProvider(clock=clock).issue("alice")
    expect_error(share(client, token), 401, "invalid_token", token)


def test_token_with_a_tampered_payload_is_401_invalid_token(
    client: TestClient, idp: DevIdentityProvider
) -> None:
    header, _, signature = idp.issue("alice").split(".")
    claims = claims_for(idp, "mallory")
    forged = f"{header}.{b64encode(json.dumps(claims).encode())}.{signature}"
    expect_error(share(client, forged), 401, "invalid_token", forged)


def test_alg_none_token_is_401_invalid_token(client: TestClient, idp: DevIdentityProvider) -> None:
    claims = claims_for(idp, "alice")
    for header in ({"alg": "none", "typ": "JWT"}, {"alg": "none", "kid": idp.key_id}):
        token = forge_jwt(header, claims)
        expect_error(share(client, token), 401, "invalid_token", token)
    token = jwt.encode(claims, None, algorithm="none")  # PyJWT's own unsigned form
    expect_error(share(client, token), 401, "invalid_token", token)


def test_hs256_token_keyed_with_the_public_key_is_401_invalid_token(
    client: TestClient, idp: DevIdentityProvider
) -> None:
    """The classic algorithm-confusion attack: HMAC keyed with the IdP's public key."""
    public_x = idp.jwks()["keys"][0]["x"].encode()
    token = jwt.encode(
        claims_for(idp, "alice"), public_x, algorithm="HS256", headers={"kid": idp.key_id}
    )
    expect_error(share(client, token), 401, "invalid_token", token)


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
@pytest.mark.parametrize("with_kid", [True, False], ids=["kid", "no-kid"])
def test_accepted_alg_that_does_not_fit_the_jwks_key_is_401_invalid_token(
    client: TestClient, idp: DevIdentityProvider, alg: str, with_kid: bool
) -> None:
    """Anyone can make this token: no signing key is needed, only the public kid."""
    header = {"alg": alg, "typ": "JWT", **({"kid": idp.key_id} if with_kid else {})}
    token = forge_jwt(header, claims_for(idp, "alice"), secrets.token_bytes(64))
    expect_error(share(lenient(client), token), 401, "invalid_token", token)


@pytest.mark.parametrize(
    "token", ["not-a-jwt", "a.b.c", "....", "eyJhbGciOiJFZERTQSJ9.e30.", "x" * 5000]
)
def test_garbage_token_is_401_invalid_token(client: TestClient, token: str) -> None:
    expect_error(share(client, token), 401, "invalid_token", token)


@pytest.mark.parametrize("missing", ["sub", "exp", "iat", "iss", "aud"])
def test_token_missing_a_required_claim_is_401(
    client: TestClient, idp: DevIdentityProvider, missing: str
) -> None:
    claims = claims_for(idp, "alice")
    del claims[missing]
    token = jwt.encode(claims, idp._key, algorithm="EdDSA", headers={"kid": idp.key_id})
    expect_error(share(client, token), 401, "invalid_token", token)


@pytest.mark.parametrize(
    "sub", ["", "\ud800", 42, ["alice"]], ids=["empty", "lone-surrogate", "int", "list"]
)
def test_token_with_an_invalid_sub_is_401_invalid_token(
    client: TestClient, idp: DevIdentityProvider, sub: Any
) -> None:
    token = idp.issue(sub)
    expect_error(share(client, token), 401, "invalid_token", token)


def test_token_issued_in_the_future_is_401_invalid_token(
    client: TestClient, idp: DevIdentityProvider
) -> None:
    now = int(idp.clock())
    token = idp.issue("alice", iat=now + 61, exp=now + 600)
    expect_error(share(client, token), 401, "invalid_token", token)
    assert share(client, idp.issue("alice", iat=now + 59, exp=now + 600)).status_code == 200


def test_key_creating_call_with_a_token_older_than_120_s_is_401_token_stale(
    client: TestClient, idp: DevIdentityProvider
) -> None:
    now = int(idp.clock())
    body = {"public_key": b64encode(bytes(PrivateKey.generate().public_key)), "escrow": "AAAA"}
    token = idp.issue("alice", iat=now - 121)
    response = client.post("/v1/users", headers={"Authorization": f"Bearer {token}"}, json=body)
    expect_error(response, 401, "token_stale", token)
    # the same token is still fine for calls that create nothing
    assert share(client, token).status_code == 200


@pytest.mark.parametrize(
    "claims",
    [{"exp": float("nan")}, {"iat": float("nan")}, {"exp": float("inf")}],
    ids=["exp-NaN", "iat-NaN", "exp-Infinity"],
)
def test_non_finite_exp_or_iat_is_401_invalid_token(
    client: TestClient, idp: DevIdentityProvider, claims: dict[str, float]
) -> None:
    token = idp.issue("alice", **claims)
    expect_error(share(lenient(client), token), 401, "invalid_token", token)


# --- device proofs: a token for one user, a proof from another ------------------------------


def test_token_for_another_user_with_alices_proof_is_403_invalid_proof(make_actor: Any) -> None:
    """bob's JWT with alice's device body (her proof, made over *her* token).

    The service reads the user from the JWT (bob), then rebuilds the proof message from
    bob's token and bob's master public key and checks it with bob's augmented key;
    alice's Schnorr proof covers her token and her master key, so it fails:
    403 invalid_proof (routes/common.py check_proof). Nothing is added to either user.
    """
    alice, bob = make_actor("alice"), make_actor("bob")
    alice_token = alice.token()
    body = alice.device_body(PrivateKey.generate(), SigningKey.generate(), alice_token)
    bob_token = bob.token()
    response = alice.client.post(
        "/v1/devices", headers={"Authorization": f"Bearer {bob_token}"}, json=body
    )
    expect_error(response, 403, "invalid_proof", alice_token, bob_token, *actor_secrets(alice))
    for actor in (alice, bob):
        listed, _, _ = send_signed(actor, "GET", "/v1/devices")
        assert [d["device_id"] for d in listed.json()["devices"]] == [actor.device_id]


def test_token_for_a_user_without_keys_with_alices_proof_is_404(make_actor: Any) -> None:
    """mallory has a valid JWT but never registered: the service looks the user up
    before it checks any proof, so the answer is 404 not_found (no such user)."""
    alice = make_actor("alice")
    alice_token = alice.token()
    body = alice.device_body(PrivateKey.generate(), SigningKey.generate(), alice_token)
    mallory_token = alice.idp.issue("mallory")
    response = alice.client.post(
        "/v1/devices", headers={"Authorization": f"Bearer {mallory_token}"}, json=body
    )
    expect_error(response, 404, "not_found", alice_token, mallory_token, *actor_secrets(alice))


def test_alices_proof_with_another_of_her_own_tokens_is_403_invalid_proof(alice: Any) -> None:
    """The proof binds the exact JWT: replaying it under a fresh token fails."""
    old_token = alice.token()
    body = alice.device_body(PrivateKey.generate(), SigningKey.generate(), old_token)
    new_token = alice.token()
    assert new_token != old_token
    response = alice.client.post(
        "/v1/devices", headers={"Authorization": f"Bearer {new_token}"}, json=body
    )
    expect_error(response, 403, "invalid_proof", old_token, new_token, *actor_secrets(alice))
    # ... and with the token it was made for, the same body is accepted
    response = alice.client.post(
        "/v1/devices", headers={"Authorization": f"Bearer {old_token}"}, json=body
    )
    assert response.status_code == 201, response.text


def test_proof_made_with_the_client_key_but_not_over_the_master_key_is_403(alice: Any) -> None:
    """A proof must be over the augmented master key: one made for the client's bare
    public key does not verify."""
    token = alice.token()
    body = alice.device_body(PrivateKey.generate(), SigningKey.generate(), token)
    message = device_proof_message(
        body["timestamp"],
        b64decode(body["transform_key"]),
        token,
        bytes(alice.user_key.public_key),
        b64decode(body["signing_key"]),
    )
    body["proof"] = b64encode(bytes(schnorr.sign(message, alice.user_key)))
    response = alice.client.post(
        "/v1/devices", headers={"Authorization": f"Bearer {token}"}, json=body
    )
    expect_error(response, 403, "invalid_proof", token)


def test_captured_device_request_with_a_swapped_signing_key_is_refused(alice: Any) -> None:
    token = alice.token()
    body = alice.device_body(PrivateKey.generate(), SigningKey.generate(), token)
    attacker = SigningKey.generate()
    tampered = {**body, "signing_key": b64encode(bytes(attacker.verifying_key))}
    response = alice.client.post(
        "/v1/devices", headers={"Authorization": f"Bearer {token}"}, json=tampered
    )
    if response.status_code == 201:  # show what the attacker can do with it
        stolen = response.json()["device_id"]
        revoke, _, _ = send_signed(
            alice, "DELETE", f"/v1/devices/{alice.device_id}", device_id=stolen, signer=attacker
        )
        assert revoke.status_code == 200, revoke.text  # alice's own device is gone
    assert 400 <= response.status_code < 500, response.text


# --- groups: admins only; removed members get nothing --------------------------------------


@pytest.fixture
def group(make_actor: Any) -> Iterator[tuple[Any, Any, Any, PrivateKey]]:
    """alice (admin) with members bob and carol."""
    alice, bob, carol = make_actor("alice"), make_actor("bob"), make_actor("carol")
    group_key = alice.create_group("g")
    for member in (bob, carol):
        assert alice.add_member("g", group_key, member).status_code == 201
    yield alice, bob, carol, group_key


def test_non_admin_adding_a_member_is_403_not_admin(group: Any, make_actor: Any) -> None:
    alice, bob, _, _ = group
    dave = make_actor("dave")
    # bob has no group key: he signs with one of his own making
    fake = PrivateKey.generate()
    tk = generate_transform_key(fake, dave.master, bob.signer)
    now = int(bob.clock())
    proof = schnorr.sign(group_proof_message("add-member", "g", "dave", now, bytes(tk)), fake)
    body = {
        "user_id": "dave",
        "transform_key": b64encode(bytes(tk)),
        "timestamp": now,
        "proof": b64encode(bytes(proof)),
    }
    response, _, _ = send_signed(bob, "POST", "/v1/groups/g/members", body)
    expect_error(response, 403, "not_admin", *actor_secrets(bob))
    read, _, _ = send_signed(alice, "GET", "/v1/groups/g")
    assert read.json()["members"] == ["bob", "carol"]


def test_non_admin_adding_a_member_with_the_real_group_key_is_still_403(group: Any) -> None:
    """Even holding the group key (say, leaked), a non-admin device cannot add members:
    the admin check is on the caller, not on the proof."""
    _, bob, _, group_key = group
    response = bob.add_member("g", group_key, bob)
    expect_error(response, 403, "not_admin")


def test_non_admin_removing_a_member_is_403_not_admin(group: Any) -> None:
    alice, bob, carol, group_key = group
    response = bob.remove_member("g", group_key, "carol")
    expect_error(response, 403, "not_admin", *actor_secrets(bob))
    response = bob.remove_member("g", PrivateKey.generate(), "carol")
    expect_error(response, 403, "not_admin")
    # carol is still a member and still gets her transforms
    value = encrypt(Plaintext.generate(), group_key.public_key, alice.signer)
    assert carol.transform(bytes(value), "g").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("DELETE", "/v1/groups/g", None),
        ("DELETE", "/v1/groups/g/admins/alice", None),
        ("GET", "/v1/groups/g/private-key", None),
        ("POST", "/v1/groups/g/admins", "admin-body"),
    ],
)
def test_non_admin_changing_the_group_is_403_not_admin(
    group: Any, method: str, path: str, body: Any
) -> None:
    alice, bob, _, _ = group
    if body == "admin-body":
        value = encrypt(Plaintext.generate(), bob.master, bob.signer)
        body = {"user_id": "bob", "encrypted_key": b64encode(bytes(value)), "key_envelope": "AAAA"}
    response, _, _ = send_signed(bob, method, path, body)
    expect_error(response, 403, "not_admin", *actor_secrets(bob))
    read, _, _ = send_signed(alice, "GET", "/v1/groups/g")
    assert read.status_code == 200 and read.json()["admins"] == ["alice"]


def test_outsider_changing_membership_is_403_not_admin(group: Any, make_actor: Any) -> None:
    _, _, _, group_key = group
    eve = make_actor("eve")
    expect_error(eve.add_member("g", group_key, eve), 403, "not_admin")
    expect_error(eve.remove_member("g", group_key, "bob"), 403, "not_admin")


def test_removed_member_asking_for_a_transform_is_403_not_member(group: Any) -> None:
    alice, bob, carol, group_key = group
    value = bytes(encrypt(Plaintext.generate(), group_key.public_key, alice.signer))
    assert bob.transform(value, "g").status_code == 200
    assert alice.remove_member("g", group_key, "bob").status_code == 200
    response = bob.transform(value, "g")
    expect_error(response, 403, "not_member", *actor_secrets(bob))
    assert "encrypted_key" not in response.text
    read, _, _ = send_signed(bob, "GET", "/v1/groups/g")
    expect_error(read, 403, "not_member")
    assert carol.transform(value, "g").status_code == 200  # the others keep theirs


def test_never_a_member_asking_for_a_transform_is_403_not_member(
    group: Any, make_actor: Any
) -> None:
    alice, _, _, group_key = group
    eve = make_actor("eve")
    value = bytes(encrypt(Plaintext.generate(), group_key.public_key, alice.signer))
    expect_error(eve.transform(value, "g"), 403, "not_member", *actor_secrets(eve))


# --- body limits -------------------------------------------------------------------------------


def _limit(client: TestClient) -> int:
    return int(client.app.state.service.settings.max_body_bytes)  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["/v1/users", "/v1/transform", "/v1/groups", "/v1/devices"])
def test_declared_body_over_the_limit_is_413_payload_too_large(
    client: TestClient, idp: DevIdentityProvider, path: str
) -> None:
    token = idp.issue("alice")
    oversize = b"x" * (_limit(client) + 1)
    response = client.post(
        path,
        content=oversize,
        headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    expect_error(response, 413, "payload_too_large", token)
    # exactly at the limit the body gets through to the parser (and is refused there)
    at_limit = client.post(
        path,
        content=b"x" * _limit(client),
        headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    assert at_limit.status_code != 413


def _chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield b"x" * n
        sent += n


def test_chunked_body_over_the_limit_on_a_signed_get_is_413(alice: Any) -> None:
    """No Content-Length (httpx sends a generator chunked): the middleware counts."""
    headers = sign_request(
        alice.signer, alice.device_id, "GET", "/v1/devices", "", b"", int(alice.clock())
    )
    response = alice.client.request(
        "GET", "/v1/devices", content=_chunks(_limit(alice.client) + 1), headers=headers
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    expect_error(response, 413, "payload_too_large")


@pytest.mark.parametrize("path", ["/v1/users", "/v1/transform", "/v1/public-keys"])
def test_chunked_body_over_the_limit_on_a_json_route_is_413(
    client: TestClient, idp: DevIdentityProvider, path: str
) -> None:
    token = idp.issue("alice")
    response = client.post(
        path,
        content=_chunks(_limit(client) + 1),
        headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    expect_error(response, 413, "payload_too_large", token)


def test_chunked_body_under_the_limit_is_read_normally(alice: Any) -> None:
    raw = json.dumps({"user_ids": ["alice"]}).encode()
    headers = sign_request(
        alice.signer, alice.device_id, "POST", "/v1/public-keys", "", raw, int(alice.clock())
    )

    def once() -> Iterator[bytes]:
        yield raw[:5]
        yield raw[5:]

    response = alice.client.post(
        "/v1/public-keys",
        content=once(),
        headers={**headers, "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert "alice" in response.json()["public_keys"]
