"""An asyncio client for the key service API (``/v1``), over ``httpx``.

``KeyServerClient`` makes the JWT-authenticated and public calls (share, user, escrow,
device creation, device records); ``DeviceSession`` makes the calls a registered
device signs.
"""

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from veil.client.errors import Unavailable, UncertifiedDevice, UntrustedKey, service_error
from veil.crypto import schnorr
from veil.crypto.aead import seal_document
from veil.crypto.errors import DecodeError, InvalidSignature
from veil.crypto.keys import Plaintext, PrivateKey, PublicKey
from veil.crypto.pre import EncryptedValue, VerifiedEncryptedValue, encrypt, generate_transform_key
from veil.crypto.signing import SigningKey, VerifyingKey
from veil.protocol import (
    KEYSERVER_AUDIENCE,
    MAX_ADD_MEMBERS,
    b64decode,
    b64encode,
    certify_device,
    check_device_certificate,
    device_id_for,
    device_proof_message,
    group_proof_message,
    path_segment,
    sign_request,
    signed_path,
)

LOOKUP_BATCH = 500


def result(response: httpx.Response) -> Any:
    """The JSON of a successful response, or the matching ``ServiceError``."""
    if response.is_success:
        return response.json()
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.reason_phrase
    raise service_error(response.status_code, code, message)


async def send(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Any:
    try:
        response = await http.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        # The URL without its query, and the cause as the network stack tells it (a
        # refused connection, a timeout): what an operator needs, and no secret.
        target = http.base_url.join(url).copy_with(query=None)
        cause = str(exc) or type(exc).__name__
        raise Unavailable(0, "unreachable", f"{method} {target}: {cause}") from None
    return result(response)


# --- request bodies ------------------------------------------------------------------
# What a client proves for each key-making call, built in one place (also used by the
# tests, which send these bodies with and without tampering).


def device_keys_body(
    token: str,
    *,
    user_id: str,
    user_key: PrivateKey,
    master: PublicKey,
    device_key: PublicKey,
    signer: SigningKey,
    now: int,
    device_signing_key: VerifyingKey | None = None,
    device_id: str | None = None,
) -> dict[str, Any]:
    """Body of ``POST /v1/devices`` (and key rotation): the device's keys, the user ->
    device transform key, the user's proof over them and the JWT, and the user's
    certificate of the device (published with its record). ``signer`` signs the
    transform key; it is also the device's signing key unless another device makes the
    body for it (device approval), naming the new device's ``device_signing_key``. A
    new device's id is the digest of its signing key; a rotation names ``device_id``."""
    signing_key = bytes(device_signing_key or signer.verifying_key)
    device_id = device_id or device_id_for(signing_key)
    transform_key = generate_transform_key(user_key, device_key, signer)
    message = device_proof_message(now, bytes(transform_key), token, bytes(master), signing_key)
    proof = schnorr.sign(message, user_key, public_key=master)
    return {
        "public_key": b64encode(bytes(device_key)),
        "signing_key": b64encode(signing_key),
        "transform_key": b64encode(bytes(transform_key)),
        "timestamp": now,
        "proof": b64encode(bytes(proof)),
        "certificate": b64encode(
            certify_device(user_key, user_id, device_id, bytes(device_key), signing_key)
        ),
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


@dataclass(frozen=True)
class DeviceRecord:
    """A device as the key service publishes it."""

    device_id: str
    user_id: str
    public_key: PublicKey
    signing_key: VerifyingKey
    active: bool
    certificate: bytes | None
    """The user's certificate of these keys (``None`` for a device registered before
    certificates existed: clients do not trust its keys)."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "DeviceRecord":
        """A record as the key service sends it (a device's, or a ciphertext's author)."""
        return cls(
            device_id=str(data["device_id"]),
            user_id=str(data["user_id"]),
            public_key=PublicKey.from_bytes(b64decode(data["public_key"])),
            signing_key=VerifyingKey(b64decode(data["signing_key"])),
            active=data["status"] == "active",
            certificate=b64decode(data["certificate"]) if data.get("certificate") else None,
        )

    def check_certificate(self, identity: PublicKey) -> None:
        """``UncertifiedDevice`` unless ``identity`` (the user's pinned identity key)
        certified this record's user, id and keys."""
        try:
            if self.certificate is None:
                raise InvalidSignature
            check_device_certificate(
                self.certificate, identity, self.user_id, self.device_id,
                bytes(self.public_key), bytes(self.signing_key),
            )  # fmt: skip
        except (InvalidSignature, DecodeError):
            raise UncertifiedDevice(
                f"device {self.device_id!r} is not certified by {self.user_id!r}'s key"
            ) from None


@dataclass(frozen=True)
class UserKeys:
    """A user's public keys as the key service publishes them."""

    master: PublicKey
    """The augmented master key: what is encrypted to the user."""
    identity: PublicKey
    """The client part of it, held by the user alone: it certifies the user's devices."""

    def pin(self) -> bytes:
        """What a device pins for the user: both keys."""
        return bytes(self.master) + bytes(self.identity)


class KeyServerClient:
    """``audience`` is the ``aud`` of the JWTs the key service takes (its own, never the
    conference service's: see ``veil.protocol.KEYSERVER_AUDIENCE``)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        audience: str = KEYSERVER_AUDIENCE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.http, self.audience, self.clock = http, audience, clock
        self._transform_signer: VerifyingKey | None = None

    def _bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def share(self, token: str) -> bytes:
        """The key service's share of this user's escrow password."""
        data = await send(self.http, "POST", "/v1/users/me/share", headers=self._bearer(token))
        return b64decode(data["share"])

    async def create_user(
        self, token: str, public_key: PublicKey, escrow: bytes
    ) -> tuple[str, PublicKey]:
        """Register the token's user; returns its id and augmented master public key."""
        body = {"public_key": b64encode(bytes(public_key)), "escrow": b64encode(escrow)}
        data = await send(self.http, "POST", "/v1/users", headers=self._bearer(token), json=body)
        return str(data["user_id"]), PublicKey.from_bytes(b64decode(data["master_public_key"]))

    async def escrow(self, token: str) -> tuple[str, PublicKey, bytes]:
        """(user id, master public key, escrow blob) of the token's user."""
        data = await send(self.http, "GET", "/v1/users/me/escrow", headers=self._bearer(token))
        master = PublicKey.from_bytes(b64decode(data["master_public_key"]))
        return str(data["user_id"]), master, b64decode(data["escrow"])

    async def add_device(
        self,
        token: str,
        *,
        user_id: str,
        user_key: PrivateKey,
        master: PublicKey,
        device_key: PublicKey,
        signer: SigningKey,
        device_signing_key: VerifyingKey | None = None,
    ) -> str:
        """Register a device for the token's user (needs the user's private key)."""
        body = device_keys_body(
            token,
            user_id=user_id,
            user_key=user_key,
            master=master,
            device_key=device_key,
            signer=signer,
            now=int(self.clock()),
            device_signing_key=device_signing_key,
        )
        data = await send(self.http, "POST", "/v1/devices", headers=self._bearer(token), json=body)
        return str(data["device_id"])

    async def device_record(self, device_id: str) -> DeviceRecord:
        data = await send(self.http, "GET", f"/v1/devices/{path_segment(device_id)}")
        if data["device_id"] != device_id:
            raise UncertifiedDevice(
                f"the key service answered for a device other than {device_id!r}"
            )
        return DeviceRecord.from_json(data)

    async def group_public_key(self, group_id: str) -> PublicKey:
        data = await send(self.http, "GET", f"/v1/groups/{path_segment(group_id)}/public-key")
        return PublicKey.from_bytes(b64decode(data["public_key"]))

    async def transform_signer(self) -> VerifyingKey:
        """The key every transformed value this key service returns must be signed
        with: asked once, then kept for this client's lifetime (the service derives it
        from its secret, which every replica shares)."""
        if self._transform_signer is None:
            data = await send(self.http, "GET", "/v1/service")
            self._transform_signer = VerifyingKey(b64decode(data["transform_signer"]))
        return self._transform_signer

    async def transformed(self, raw: bytes) -> VerifiedEncryptedValue:
        """A transformed value this key service returned, verified against its transform
        signer, not against whatever key the value names (``UntrustedKey``)."""
        value = EncryptedValue.from_bytes(raw)
        try:
            return value.verify(signer=await self.transform_signer())
        except InvalidSignature:
            raise UntrustedKey(
                "a transformed value not signed by the key service's transform signer"
            ) from None

    def device(self, device_id: str, signer: SigningKey) -> "DeviceSession":
        return DeviceSession(self, device_id, signer)


class DeviceSession:
    """Calls signed by one registered device."""

    def __init__(self, client: KeyServerClient, device_id: str, signer: SigningKey) -> None:
        self.client, self.device_id, self.signer = client, device_id, signer

    def signed_headers(
        self, method: str, path: str, body: bytes = b"", *, query: str = ""
    ) -> dict[str, str]:
        """The ``Veil-*`` headers that authenticate one request by this device, made
        without sending it. Another service can forward them as a capability: the
        conference service admits a device to a meeting's media relay by forwarding
        such a ``GET /v1/groups/{id}/membership``, which it could not sign itself. Each
        call makes a new nonce, and the key service accepts each nonce once. ``path`` is
        as sent, each id in it made with ``path_segment``; the signature covers it
        decoded (``signed_path``), as the key service routes it."""
        now = int(self.client.clock())
        return sign_request(
            self.signer, self.device_id, method, signed_path(path), query, body, now
        )

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: str = "",
        headers: dict[str, str] | None = None,
    ) -> Any:
        raw = b"" if body is None else json.dumps(body).encode()
        signed = self.signed_headers(method, path, raw, query=query)
        signed["content-type"] = "application/json"
        url = f"{path}?{query}" if query else path
        return await send(
            self.client.http, method, url, content=raw, headers={**signed, **(headers or {})}
        )

    # --- users and devices -------------------------------------------------------------

    async def public_keys(self, user_ids: list[str]) -> dict[str, UserKeys]:
        """Users' master and identity keys; users without keys are left out. Asks in
        batches of ``LOOKUP_BATCH`` (the service's limit per call)."""
        found: dict[str, UserKeys] = {}
        for start in range(0, len(user_ids), LOOKUP_BATCH):
            batch = user_ids[start : start + LOOKUP_BATCH]
            data = await self.request("POST", "/v1/public-keys", {"user_ids": batch})
            identities = data["identity_keys"]
            found.update(
                {
                    user: UserKeys(
                        PublicKey.from_bytes(b64decode(master)),
                        PublicKey.from_bytes(b64decode(identities[user])),
                    )
                    for user, master in data["public_keys"].items()
                }
            )
        return found

    async def devices(self) -> list[dict[str, Any]]:
        data = await self.request("GET", "/v1/devices")
        return list(data["devices"])

    async def revoke_device(self, device_id: str) -> None:
        await self.request("DELETE", f"/v1/devices/{path_segment(device_id)}")

    async def rotate_keys(self, token: str, body: dict[str, Any]) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        await self.request(
            "PUT", f"/v1/devices/{path_segment(self.device_id)}/keys", body, headers=headers
        )

    # --- groups --------------------------------------------------------------------------

    async def create_group(
        self, group_id: str, group_key: PrivateKey, *, user_id: str, master: PublicKey
    ) -> None:
        """Create a group whose key is ``group_key``; the caller becomes its admin."""
        now = int(self.client.clock())
        body = create_group_body(
            group_id, group_key, user_id=user_id, master=master, signer=self.signer, now=now
        )
        await self.request("POST", "/v1/groups", body)

    async def group(self, group_id: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"/v1/groups/{path_segment(group_id)}"))

    async def group_digest(self, group_id: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"/v1/groups/{path_segment(group_id)}/digest"))

    async def groups(self) -> list[str]:
        return list((await self.request("GET", "/v1/groups"))["groups"])

    async def group_private_key(self, group_id: str) -> tuple["KeyDelivery", bytes]:
        """For an admin: the group key's ciphertext (transformed to this device, with its
        origin and author, unchecked: ``veil.client.provenance``) and its envelope."""
        data = await self.request("GET", f"/v1/groups/{path_segment(group_id)}/private-key")
        return await self._delivery(data), b64decode(data["key_envelope"])

    async def delete_group(self, group_id: str) -> None:
        await self.request("DELETE", f"/v1/groups/{path_segment(group_id)}")

    async def add_member(
        self, group_id: str, group_key: PrivateKey, *, user_id: str, master: PublicKey
    ) -> None:
        now = int(self.client.clock())
        body = add_member_body(
            group_id, group_key, user_id=user_id, master=master, signer=self.signer, now=now
        )
        await self.request("POST", f"/v1/groups/{path_segment(group_id)}/members", body)

    async def add_members(
        self, group_id: str, group_key: PrivateKey, members: Sequence[tuple[str, PublicKey]]
    ) -> None:
        """Add ``members`` ((user id, master public key) pairs) with one request per
        ``MAX_ADD_MEMBERS``, each all or nothing (``POST /v1/groups/{id}/members/batch``)."""
        path = f"/v1/groups/{path_segment(group_id)}/members/batch"
        for start in range(0, len(members), MAX_ADD_MEMBERS):
            now = int(self.client.clock())
            bodies = [
                add_member_body(
                    group_id, group_key, user_id=user_id, master=master, signer=self.signer, now=now
                )
                for user_id, master in members[start : start + MAX_ADD_MEMBERS]
            ]
            await self.request("POST", path, {"members": bodies})

    async def remove_member(self, group_id: str, group_key: PrivateKey, user_id: str) -> None:
        now = int(self.client.clock())
        message = group_proof_message("remove-member", group_id, user_id, now)
        proof = b64encode(bytes(schnorr.sign(message, group_key)))
        query = f"timestamp={now}&proof={proof}"
        await self.request(
            "DELETE",
            f"/v1/groups/{path_segment(group_id)}/members/{path_segment(user_id)}",
            query=query,
        )

    async def add_admin(
        self, group_id: str, group_key: PrivateKey, *, user_id: str, master: PublicKey
    ) -> None:
        """Make ``user_id`` an admin: the group key goes to them sealed under a fresh
        plaintext encrypted to their master key."""
        plaintext = Plaintext.generate()
        envelope = seal_document(
            plaintext.derive_key("group key"), group_id, group_key.to_secret_bytes()
        )
        body = {
            "user_id": user_id,
            "encrypted_key": b64encode(bytes(encrypt(plaintext, master, self.signer))),
            "key_envelope": b64encode(envelope),
        }
        await self.request("POST", f"/v1/groups/{path_segment(group_id)}/admins", body)

    async def remove_admin(self, group_id: str, user_id: str) -> None:
        await self.request(
            "DELETE", f"/v1/groups/{path_segment(group_id)}/admins/{path_segment(user_id)}"
        )

    # --- transforms and documents ---------------------------------------------------------

    async def transform(
        self, encrypted: bytes, *, group_id: str | None = None
    ) -> VerifiedEncryptedValue:
        """``encrypted`` transformed to this device (through ``group_id``), signed by the
        key service's transform signer (``UntrustedKey`` otherwise). That signature says
        nothing about who encrypted it: decrypt with ``origin=`` the level-0 value as
        its author signed it."""
        body: dict[str, Any] = {"encrypted_key": b64encode(encrypted)}
        if group_id is not None:
            body["group_id"] = group_id
        data = await self.request("POST", "/v1/transform", body)
        return await self.client.transformed(b64decode(data["encrypted_key"]))

    async def create_document(
        self, document_id: str, kind: str, grants: list[dict[str, str]]
    ) -> None:
        body = {"document_id": document_id, "kind": kind, "grants": grants}
        await self.request("POST", "/v1/documents", body)

    async def grant(self, document_id: str, grant: dict[str, str]) -> None:
        await self.request("POST", f"/v1/documents/{path_segment(document_id)}/grants", grant)

    async def revoke_grant(self, document_id: str, kind: str, grantee_id: str) -> None:
        await self.request(
            "DELETE",
            f"/v1/documents/{path_segment(document_id)}/grants/{path_segment(kind)}/{path_segment(grantee_id)}",
        )

    async def document_key(self, document_id: str) -> "KeyDelivery":
        """The document's key transformed to this device, with its origin, its author
        and the document's owner, unchecked (``veil.client.provenance`` checks them)."""
        data = await self.request("GET", f"/v1/documents/{path_segment(document_id)}/key")
        return await self._delivery(data)

    async def _delivery(self, data: dict[str, Any]) -> "KeyDelivery":
        try:
            origin = EncryptedValue.from_bytes(b64decode(data["origin"]))
            author = data["author"]
        except KeyError:
            raise UntrustedKey("the key service showed no origin for this key") from None
        return KeyDelivery(
            transformed=await self.client.transformed(b64decode(data["encrypted_key"])),
            origin=origin,
            author=None if author is None else DeviceRecord.from_json(author),
            owner=str(data["owner"]) if "owner" in data else None,
        )


@dataclass(frozen=True)
class KeyDelivery:
    """A key the key service delivers (a group's private key, a document's key): the
    ciphertext it transformed to this device, and what lets the device check who made
    it. Nothing here is checked but the transform signer's signature; use
    ``veil.client.provenance.vouched_origin`` before decrypting."""

    transformed: VerifiedEncryptedValue
    """Signed by the key service's transform signer (checked)."""
    origin: EncryptedValue
    """The level-0 ciphertext the key service stored, as it says its author signed it."""
    author: DeviceRecord | None
    """The device the key service says signed ``origin``, with the keys and certificate
    it had then (``None``: the service has no certified key on record for it)."""
    owner: str | None
    """For a document, its owner as the key service records it."""
