"""A typed HTTP client for the key service API (``/v1``), over ``httpx``.

``KeyServerClient`` makes the JWT-authenticated calls (share, user, escrow, device
creation); ``DeviceSession`` makes the calls a registered device signs.
"""

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from veil.crypto import schnorr
from veil.crypto.aead import seal_document
from veil.crypto.keys import Plaintext, PrivateKey, PublicKey
from veil.crypto.pre import EncryptedValue, VerifiedEncryptedValue, encrypt, generate_transform_key
from veil.crypto.signing import SigningKey
from veil.protocol import (
    b64decode,
    b64encode,
    device_proof_message,
    group_proof_message,
    sign_request,
)


class KeyServerError(Exception):
    """The key service refused a call; ``code`` is its stable error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def _result(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json()
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.reason_phrase
    raise KeyServerError(response.status_code, code, message)


# --- request bodies ------------------------------------------------------------------
# What a client proves for each key-making call, built in one place (also used by the
# tests, which send these bodies with and without tampering).


def device_keys_body(
    token: str,
    *,
    user_key: PrivateKey,
    master: PublicKey,
    device_key: PublicKey,
    signer: SigningKey,
    now: int,
) -> dict[str, Any]:
    """Body of ``POST /v1/devices`` (and key rotation): the device's keys, the user ->
    device transform key, and the user's proof over them and the JWT."""
    transform_key = generate_transform_key(user_key, device_key, signer)
    message = device_proof_message(
        now, bytes(transform_key), token, bytes(master), bytes(signer.verifying_key)
    )
    proof = schnorr.sign(message, user_key, public_key=master)
    return {
        "public_key": b64encode(bytes(device_key)),
        "signing_key": b64encode(bytes(signer.verifying_key)),
        "transform_key": b64encode(bytes(transform_key)),
        "timestamp": now,
        "proof": b64encode(bytes(proof)),
    }


def create_group_body(
    group_id: str,
    group_key: PrivateKey,
    *,
    user_id: str,
    master: PublicKey,
    signer: SigningKey,
    now: int,
    plaintext: Plaintext | None = None,
) -> dict[str, Any]:
    """Body of ``POST /v1/groups``: the group key sealed under a plaintext encrypted to
    the creator's master key, and a proof of possession of the group key."""
    plaintext = plaintext or Plaintext.generate()
    envelope = seal_document(
        plaintext.derive_key("group key"), group_id, group_key.to_secret_bytes()
    )
    message = group_proof_message("create", group_id, user_id, now, bytes(group_key.public_key))
    return {
        "group_id": group_id,
        "public_key": b64encode(bytes(group_key.public_key)),
        "encrypted_key": b64encode(bytes(encrypt(plaintext, master, signer))),
        "key_envelope": b64encode(envelope),
        "timestamp": now,
        "proof": b64encode(bytes(schnorr.sign(message, group_key))),
    }


def add_member_body(
    group_id: str,
    group_key: PrivateKey,
    *,
    user_id: str,
    master: PublicKey,
    signer: SigningKey,
    now: int,
) -> dict[str, Any]:
    """Body of ``POST /v1/groups/{id}/members``: the group -> user transform key and a
    proof with the group key over the change."""
    transform_key = generate_transform_key(group_key, master, signer)
    message = group_proof_message("add-member", group_id, user_id, now, bytes(transform_key))
    return {
        "user_id": user_id,
        "transform_key": b64encode(bytes(transform_key)),
        "timestamp": now,
        "proof": b64encode(bytes(schnorr.sign(message, group_key))),
    }


class KeyServerClient:
    def __init__(self, http: httpx.Client, *, clock: Callable[[], float] = time.time) -> None:
        self.http, self.clock = http, clock

    def _bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def share(self, token: str) -> bytes:
        """The key service's share of this user's escrow password."""
        return b64decode(
            _result(self.http.post("/v1/users/me/share", headers=self._bearer(token)))["share"]
        )

    def create_user(self, token: str, public_key: PublicKey, escrow: bytes) -> PublicKey:
        """Register the token's user; returns the augmented master public key."""
        body = {"public_key": b64encode(bytes(public_key)), "escrow": b64encode(escrow)}
        data = _result(self.http.post("/v1/users", headers=self._bearer(token), json=body))
        return PublicKey.from_bytes(b64decode(data["master_public_key"]))

    def escrow(self, token: str) -> bytes:
        return b64decode(
            _result(self.http.get("/v1/users/me/escrow", headers=self._bearer(token)))["escrow"]
        )

    def add_device(
        self,
        token: str,
        *,
        user_key: PrivateKey,
        master: PublicKey,
        device_key: PublicKey,
        signer: SigningKey,
    ) -> str:
        """Register a device for the token's user (needs the user's private key)."""
        body = device_keys_body(
            token,
            user_key=user_key,
            master=master,
            device_key=device_key,
            signer=signer,
            now=int(self.clock()),
        )
        data = _result(self.http.post("/v1/devices", headers=self._bearer(token), json=body))
        return str(data["device_id"])

    def device(self, device_id: str, signer: SigningKey) -> "DeviceSession":
        return DeviceSession(self, device_id, signer)


class DeviceSession:
    """Calls signed by one registered device."""

    def __init__(self, client: KeyServerClient, device_id: str, signer: SigningKey) -> None:
        self.client, self.device_id, self.signer = client, device_id, signer

    def request(self, method: str, path: str, body: Any = None, *, query: str = "") -> Any:
        raw = b"" if body is None else json.dumps(body).encode()
        headers = sign_request(
            self.signer, self.device_id, method, path, query, raw, int(self.client.clock())
        )
        headers["content-type"] = "application/json"
        url = f"{path}?{query}" if query else path
        return _result(self.client.http.request(method, url, content=raw, headers=headers))

    def create_group(
        self, group_id: str, group_key: PrivateKey, *, user_id: str, master: PublicKey
    ) -> None:
        """Create a group whose key is ``group_key``; the caller becomes its admin."""
        now = int(self.client.clock())
        body = create_group_body(
            group_id, group_key, user_id=user_id, master=master, signer=self.signer, now=now
        )
        self.request("POST", "/v1/groups", body)

    def add_member(
        self, group_id: str, group_key: PrivateKey, *, user_id: str, master: PublicKey
    ) -> None:
        now = int(self.client.clock())
        body = add_member_body(
            group_id, group_key, user_id=user_id, master=master, signer=self.signer, now=now
        )
        self.request("POST", f"/v1/groups/{group_id}/members", body)

    def transform(self, encrypted: bytes, *, group_id: str | None = None) -> VerifiedEncryptedValue:
        body: dict[str, Any] = {"encrypted_key": b64encode(encrypted)}
        if group_id is not None:
            body["group_id"] = group_id
        data = self.request("POST", "/v1/transform", body)
        return EncryptedValue.from_bytes(b64decode(data["encrypted_key"])).verify()
