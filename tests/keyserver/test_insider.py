"""The insider test (issue 4): everything the key service holds decrypts nothing.

After a full flow (two users with devices, a group with both as members, a session
key encrypted to the group and transformed for each member's device, a durable
document, an admin reading the group key), the insider takes

* every row of every table, read through the service's own engine, and
* the service's own secrets: ``settings.service_secret``, the keys derived from it
  (the augmentation sealer, the transform signer) and every user's augmentation
  secret, which the service can open,

and tries, with all of it, to recover the session key or any user's escrowed private
key:

* every 32-byte window of every stored value (both byte orders), and every secret, as
  a PRE private key (``PrivateKey.from_secret_bytes``, where valid): it must not be
  any party's private key (its public key matches none on record) and must not
  decrypt the session key's ciphertext; the secrets (and their sums and differences
  with the stored scalars) must decrypt none of the stored or transformed ciphertexts;
* every such window and secret as an AES-256 key for the escrows and the group-key
  envelope;
* escrow passwords made from the stored shares alone (share+share, share+zeros,
  SHA-256 variants, the service secret).

Every attempt fails with ``DecryptionError``. The same attempts, made with the real
keys (or with the real key planted in a stored value), succeed: the test would fail if
the insider's attempts were wrong in form rather than hopeless.

Users register with the real split-trust escrow: the password is
``escrow.split_trust_password(the key service's share, a platform share the test keeps)``
and the escrow is ``escrow.seal_escrow`` at 600,000 PBKDF2 iterations.
"""

import base64
import binascii
import contextlib
import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, select

from veil.client.keyserver import add_member_body, create_group_body, device_keys_body
from veil.crypto import escrow, schedule
from veil.crypto.aead import open_document
from veil.crypto.errors import DecodeError, DecryptionError
from veil.crypto.keys import Plaintext, PrivateKey, PublicKey
from veil.crypto.pairing import R
from veil.crypto.pre import (
    EncryptedValue,
    TransformKey,
    VerifiedEncryptedValue,
    VerifiedTransformKey,
    decrypt,
    encrypt,
    transform,
)
from veil.crypto.sealing import derive_service_key
from veil.crypto.signing import SigningKey
from veil.idp import DevIdentityProvider
from veil.keyserver.models import Base
from veil.protocol import (
    b64decode,
    b64encode,
    sign_request,
)

ZERO_SHARE = bytes(escrow.SHARE_SIZE)
SPLIT_LABEL = b"veil/v1 split-trust password"


# --- the honest parties --------------------------------------------------------------------


@dataclass
class Party:
    """A user with one device who registers with a real split-trust escrow."""

    name: str
    client: TestClient
    idp: DevIdentityProvider
    user_key: PrivateKey = field(default_factory=PrivateKey.generate)
    device_key: PrivateKey = field(default_factory=PrivateKey.generate)
    signer: SigningKey = field(default_factory=SigningKey.generate)
    platform_share: bytes = field(default_factory=escrow.new_share)  # the platform keeps it
    device_id: str = ""
    master: PublicKey | None = None
    escrow: bytes = b""
    password: bytes = b""

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.idp.issue(self.name)}"}

    def now(self) -> int:
        return int(self.idp.clock())

    def register(self) -> "Party":
        response = self.client.post("/v1/users/me/share", headers=self.bearer())
        assert response.status_code == 200, response.text
        service_share = b64decode(response.json()["share"])
        assert len(service_share) == escrow.SHARE_SIZE
        self.password = escrow.split_trust_password(service_share, self.platform_share)
        self.escrow = escrow.seal_escrow(
            self.user_key.to_secret_bytes(), self.password, context=self.name.encode()
        )
        response = self.client.post(
            "/v1/users",
            headers=self.bearer(),
            json={
                "public_key": b64encode(bytes(self.user_key.public_key)),
                "escrow": b64encode(self.escrow),
            },
        )
        assert response.status_code == 201, response.text
        self.master = PublicKey.from_bytes(b64decode(response.json()["master_public_key"]))
        token = self.idp.issue(self.name)
        body = device_keys_body(
            token,
            user_id=self.name,
            user_key=self.user_key,
            master=self.master,
            device_key=self.device_key.public_key,
            signer=self.signer,
            now=self.now(),
        )
        response = self.client.post(
            "/v1/devices", headers={"Authorization": f"Bearer {token}"}, json=body
        )
        assert response.status_code == 201, response.text
        self.device_id = response.json()["device_id"]
        return self

    def signed(self, method: str, path: str, body: Any = None) -> Any:
        raw = b"" if body is None else json.dumps(body).encode()
        headers = sign_request(self.signer, self.device_id, method, path, "", raw, self.now())
        return self.client.request(
            method, path, content=raw, headers={**headers, "content-type": "application/json"}
        )

    def value(self, response: Any, key: str = "encrypted_key") -> VerifiedEncryptedValue:
        assert response.status_code in (200, 201), response.text
        return EncryptedValue.from_bytes(b64decode(response.json()[key])).verify()


@dataclass
class Flow:
    alice: Party
    bob: Party
    group_id: str
    group_key: PrivateKey
    group_key_plaintext: Plaintext
    session_key: Plaintext
    session_edek: VerifiedEncryptedValue  # level 0, to the group: what the board carries
    document_key: Plaintext
    transformed: dict[str, VerifiedEncryptedValue]  # what the service handed out
    holders: dict[str, PrivateKey]  # the device that each transformed value is for
    expected: dict[str, Plaintext]


def full_flow(client: TestClient, idp: DevIdentityProvider) -> Flow:
    alice = Party("alice", client, idp).register()
    bob = Party("bob", client, idp).register()
    assert alice.master is not None and bob.master is not None

    # alice creates the meeting group: its key is encrypted to her, sealed in an envelope
    group_id, group_key, group_plain = "meeting-42", PrivateKey.generate(), Plaintext.generate()
    body = create_group_body(
        group_id,
        group_key,
        user_id="alice",
        master=alice.master,
        signer=alice.signer,
        now=alice.now(),
        plaintext=group_plain,
    )
    response = alice.signed("POST", "/v1/groups", body)
    assert response.status_code == 201, response.text
    for member in (alice, bob):
        assert member.master is not None
        body = add_member_body(
            group_id,
            group_key,
            user_id=member.name,
            master=member.master,
            signer=alice.signer,
            now=alice.now(),
        )
        response = alice.signed("POST", f"/v1/groups/{group_id}/members", body)
        assert response.status_code == 201, response.text

    # the session key, encrypted to the group, transformed for each member's device
    session_key = Plaintext.generate()
    edek = encrypt(session_key, group_key.public_key, alice.signer)
    transformed = {
        f"session key for {p.name}'s device": p.value(
            p.signed(
                "POST",
                "/v1/transform",
                {"encrypted_key": b64encode(bytes(edek)), "group_id": group_id},
            )
        )
        for p in (alice, bob)
    }

    # a durable document: its key granted to the group and to bob directly
    document_key = Plaintext.generate()
    grants = [
        {
            "grantee_kind": "group",
            "grantee_id": group_id,
            "encrypted_key": b64encode(
                bytes(encrypt(document_key, group_key.public_key, bob.signer))
            ),
        },
        {
            "grantee_kind": "user",
            "grantee_id": "bob",
            "encrypted_key": b64encode(bytes(encrypt(document_key, bob.master, bob.signer))),
        },
    ]
    response = bob.signed(
        "POST",
        "/v1/documents",
        {"document_id": "transcript-1", "kind": "transcript", "grants": grants},
    )
    assert response.status_code == 201, response.text
    transformed["document key for bob's device"] = bob.value(
        bob.signed("GET", "/v1/documents/transcript-1/key")
    )
    transformed["document key for alice's device"] = alice.value(
        alice.signed("GET", "/v1/documents/transcript-1/key")
    )
    transformed["group key for alice's device"] = alice.value(
        alice.signed("GET", f"/v1/groups/{group_id}/private-key")
    )
    holders = {
        "session key for alice's device": alice.device_key,
        "session key for bob's device": bob.device_key,
        "document key for bob's device": bob.device_key,
        "document key for alice's device": alice.device_key,
        "group key for alice's device": alice.device_key,
    }
    expected = {
        "session key for alice's device": session_key,
        "session key for bob's device": session_key,
        "document key for bob's device": document_key,
        "document key for alice's device": document_key,
        "group key for alice's device": group_plain,
    }
    return Flow(
        alice=alice,
        bob=bob,
        group_id=group_id,
        group_key=group_key,
        group_key_plaintext=group_plain,
        session_key=session_key,
        session_edek=edek,
        document_key=document_key,
        transformed=transformed,
        holders=holders,
        expected=expected,
    )


# --- what the insider has ------------------------------------------------------------------


def dump_database(client: TestClient) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, through the service's own engine."""
    engine = client.app.state.service.engine  # type: ignore[attr-defined]
    reflected = MetaData()
    reflected.reflect(engine)
    modelled = {t.name for t in Base.metadata.sorted_tables}
    assert set(reflected.tables) <= modelled | {"keyserver_alembic_version"}, set(reflected.tables)
    tables = [
        *Base.metadata.sorted_tables,
        *(t for n, t in reflected.tables.items() if n not in modelled),
    ]
    dump: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as connection:
        for table in tables:
            dump[table.name] = [dict(row._mapping) for row in connection.execute(select(table))]
    return dump


_B64_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,}")
_HEX_TOKEN = re.compile(r"(?:[0-9a-fA-F]{2}){16,}")


def value_forms(value: Any) -> Iterator[bytes]:
    """A stored value as bytes, and whatever bytes its text encodes (base64url, hex)."""
    if isinstance(value, bytes | bytearray | memoryview):
        yield bytes(value)
    elif isinstance(value, str):
        yield value.encode()
        for token in _B64_TOKEN.findall(value):
            for candidate in (token, token[: len(token) - len(token) % 4]):
                padded = candidate + "=" * (-len(candidate) % 4)
                with contextlib.suppress(binascii.Error, ValueError):
                    yield base64.urlsafe_b64decode(padded)
        for token in _HEX_TOKEN.findall(value):
            yield bytes.fromhex(token)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        yield value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def stored_blobs(dump: dict[str, list[dict[str, Any]]]) -> list[bytes]:
    blobs = {
        form
        for rows in dump.values()
        for row in rows
        for v in row.values()
        for form in value_forms(v)
    }
    return sorted(blobs)


def windows(blobs: Iterable[bytes], size: int = 32) -> set[bytes]:
    """Every ``size``-byte window of every blob, in both byte orders."""
    found: set[bytes] = set()
    for blob in blobs:
        for i in range(len(blob) - size + 1):
            window = blob[i : i + size]
            found.add(window)
            found.add(window[::-1])
    return found


@dataclass
class Insider:
    dump: dict[str, list[dict[str, Any]]]
    blobs: list[bytes]
    secrets: dict[str, bytes]  # the service's own 32-byte secrets
    augmentation: dict[str, bytes]  # user -> the augmentation secret the service opens
    shares: dict[str, bytes]  # user -> the key service's escrow-password share


def become_insider(client: TestClient) -> Insider:
    service = client.app.state.service  # type: ignore[attr-defined]
    dump = dump_database(client)
    root = service.settings.service_secret
    own = {
        "service_secret": root,
        "augmentation sealer key": derive_service_key(root, b"augmentation seal"),
        "transform signer seed": service.signer.to_secret_bytes(),
    }
    augmentation = {
        row["id"]: service.open_augmentation(
            row["id"], row["sealed_augmentation"]
        ).to_secret_bytes()
        for row in dump["users"]
    }
    shares = {row["user_id"]: bytes(row["share"]) for row in dump["escrow_shares"]}
    return Insider(dump, stored_blobs(dump), own, augmentation, shares)


# --- the insider's attempts --------------------------------------------------------------


@dataclass
class Targets:
    public_keys: dict[bytes, str]  # every PRE public key on record -> whose
    session_edek: VerifiedEncryptedValue
    ciphertexts: dict[str, VerifiedEncryptedValue]  # every stored or handed-out ciphertext
    escrows: dict[str, bytes]
    group_envelope: tuple[str, bytes]


def targets_of(insider: Insider, flow: Flow) -> Targets:
    dump = insider.dump
    public_keys: dict[bytes, str] = {}
    for row in dump["users"]:
        public_keys[bytes(row["client_public_key"])] = f"{row['id']}'s client key"
        public_keys[bytes(row["master_public_key"])] = f"{row['id']}'s master key"
    for row in dump["devices"]:
        public_keys[bytes(row["public_key"])] = f"{row['user_id']}'s device {row['id']}"
    for row in dump["groups"]:
        public_keys[bytes(row["public_key"])] = f"group {row['id']}"
    ciphertexts = {f"session key (to group {flow.group_id})": flow.session_edek}
    for row in dump["group_admins"]:
        label = f"group key of {row['group_id']} (to {row['user_id']})"
        ciphertexts[label] = EncryptedValue.from_bytes(bytes(row["encrypted_key"])).verify()
    for row in dump["document_grants"]:
        label = f"document {row['document_id']} (to {row['grantee_kind']} {row['grantee_id']})"
        ciphertexts[label] = EncryptedValue.from_bytes(bytes(row["encrypted_key"])).verify()
    ciphertexts.update(flow.transformed)
    escrows = {row["id"]: bytes(row["escrow"]) for row in dump["users"]}
    (admin,) = dump["group_admins"]
    return Targets(
        public_keys,
        flow.session_edek,
        ciphertexts,
        escrows,
        (admin["group_id"], bytes(admin["key_envelope"])),
    )


def stored_key(raw: bytes) -> VerifiedTransformKey:
    return TransformKey.from_bytes(bytes(raw)).verify()


def as_private_key(raw: bytes) -> PrivateKey | None:
    try:
        return PrivateKey.from_secret_bytes(raw)
    except DecodeError:  # not below the group order, or zero
        return None


def reduced(raw: bytes) -> bytes:
    return (int.from_bytes(raw, "big") % R).to_bytes(32, "big")


def scalar_attempts(
    candidates: Iterable[bytes], targets: Targets, *, every_ciphertext: bool
) -> list[str]:
    """Each candidate as a PRE private key. Returns what it broke (nothing, we hope)."""
    broken: list[str] = []
    tried = 0
    for raw in candidates:
        key = as_private_key(raw)
        if key is None:
            continue
        tried += 1
        owner = targets.public_keys.get(bytes(key.public_key))
        if owner is not None:
            broken.append(f"a candidate is the private key of {owner}")
        attempts = (
            targets.ciphertexts if every_ciphertext else {"session key": targets.session_edek}
        )
        for label, value in attempts.items():
            try:
                decrypt(value, key)
            except DecryptionError:
                continue
            broken.append(f"a candidate decrypts {label}")
    assert tried, "no candidate was a valid scalar: the attempt proves nothing"
    return broken


def open_escrow_with_key(blob: bytes, key: bytes, context: bytes) -> bytes:
    """``escrow.open_escrow`` with the AES key given instead of derived from a password."""
    head, body = blob[:34], blob[34:]  # 01 20 | iterations:4 | salt:16 | nonce:12
    try:
        return AESGCM(key).decrypt(head[22:34], body, head + context)
    except InvalidTag:
        raise DecryptionError from None


def escrow_key(blob: bytes, password: bytes) -> bytes:
    iterations = int.from_bytes(blob[2:6], "big")
    pbkdf2 = PBKDF2HMAC(hashes.SHA256(), 32, salt=blob[6:22], iterations=iterations)
    return pbkdf2.derive(password)


def aes_attempts(candidates: Iterable[bytes], targets: Targets) -> list[str]:
    """Each candidate as the AES-256-GCM key of an escrow or of the group-key envelope."""
    broken: list[str] = []
    group_id, envelope = targets.group_envelope
    for key in candidates:
        for user, blob in targets.escrows.items():
            try:
                open_escrow_with_key(blob, key, user.encode())
                broken.append(f"a candidate AES key opens {user}'s escrow")
            except DecryptionError:
                pass
        try:
            open_document(key, group_id, envelope)
            broken.append("a candidate AES key opens the group-key envelope")
        except DecryptionError:
            pass
    return broken


def share_passwords(insider: Insider, user: str) -> dict[str, bytes]:
    """Escrow passwords an insider can form without the platform's share."""
    share = insider.shares[user]
    root = insider.secrets["service_secret"]
    others = [s for u, s in insider.shares.items() if u != user]
    sha = hashlib.sha256
    passwords = {
        "split(share, share)": escrow.split_trust_password(share, share),
        "split(share, zeros)": escrow.split_trust_password(share, ZERO_SHARE),
        "split(zeros, share)": escrow.split_trust_password(ZERO_SHARE, share),
        "split(share, service secret[:16])": escrow.split_trust_password(share, root[:16]),
        "split(share, service secret[16:])": escrow.split_trust_password(share, root[16:]),
        "share": share,
        "share+share": share + share,
        "share+zeros": share + ZERO_SHARE,
        "sha256(share)": sha(share).digest(),
        "sha256(share+share)": sha(share + share).digest(),
        "sha256(label+share)": sha(SPLIT_LABEL + share).digest(),
        "service secret": root,
    }
    for i, other in enumerate(others):
        passwords[f"split(share, other user's share {i})"] = escrow.split_trust_password(
            share, other
        )
        passwords[f"split(other user's share {i}, share)"] = escrow.split_trust_password(
            other, share
        )
    return passwords


# --- the test --------------------------------------------------------------------------------


@pytest.fixture
def flow(client: TestClient, idp: DevIdentityProvider) -> Flow:
    return full_flow(client, idp)


def test_the_honest_parties_can_decrypt_everything(flow: Flow, client: TestClient) -> None:
    """The positive control for the insider: the real keys do what the insider's cannot."""
    for label, value in flow.transformed.items():
        assert decrypt(value, flow.holders[label], origin=None) == flow.expected[label], label
    # the session key the members got descends from what alice encrypted
    for label in ("session key for alice's device", "session key for bob's device"):
        value = flow.transformed[label]
        assert decrypt(value, flow.holders[label], origin=flow.session_edek) == flow.session_key
    # alice's group-key envelope opens with the key derived from what she decrypted
    insider = become_insider(client)
    targets = targets_of(insider, flow)
    group_id, envelope = targets.group_envelope
    opened = open_document(flow.group_key_plaintext.derive_key("group key"), group_id, envelope)
    assert opened == flow.group_key.to_secret_bytes()
    # escrows: the escrow the service returns opens with both shares (PBKDF2 at 600,000)
    for party in (flow.alice, flow.bob):
        response = client.get("/v1/users/me/escrow", headers=party.bearer())
        assert b64decode(response.json()["escrow"]) == party.escrow
        assert int.from_bytes(party.escrow[2:6], "big") >= escrow.MIN_ITERATIONS
        secret = escrow.open_escrow(party.escrow, party.password, context=party.name.encode())
        assert secret == party.user_key.to_secret_bytes()
        # and the share the service hands out again is the one in the password
        again = client.post("/v1/users/me/share", headers=party.bearer())
        share = b64decode(again.json()["share"])
        assert escrow.split_trust_password(share, party.platform_share) == party.password
        assert insider.shares[party.name] == share


def test_insider_with_every_row_and_every_service_secret_decrypts_nothing(
    flow: Flow, client: TestClient
) -> None:
    insider = become_insider(client)
    targets = targets_of(insider, flow)
    filled = {name for name, rows in insider.dump.items() if rows}
    assert filled >= {
        "users",
        "devices",
        "groups",
        "group_admins",
        "group_members",
        "document_grants",
        "escrow_shares",
        "audit_log",
        "request_nonces",
    }

    # 0. No secret is stored in the clear (in any form the scan reads).
    real_secrets = {
        "alice's user key": flow.alice.user_key.to_secret_bytes(),
        "bob's user key": flow.bob.user_key.to_secret_bytes(),
        "alice's device key": flow.alice.device_key.to_secret_bytes(),
        "bob's device key": flow.bob.device_key.to_secret_bytes(),
        "alice's signing key": flow.alice.signer.to_secret_bytes(),
        "bob's signing key": flow.bob.signer.to_secret_bytes(),
        "the group key": flow.group_key.to_secret_bytes(),
        "the session key": flow.session_key.to_secret_bytes(),
        "the meeting key": schedule.session_key(
            flow.session_key, meeting_id=flow.group_id, epoch=0
        ),
        "the document key": flow.document_key.to_secret_bytes(),
        "alice's platform share": flow.alice.platform_share,
        "bob's platform share": flow.bob.platform_share,
        "alice's escrow password": flow.alice.password,
        "bob's escrow password": flow.bob.password,
    }
    for name, secret in real_secrets.items():
        for blob in insider.blobs:
            assert secret not in blob and secret[::-1] not in blob, f"{name} is stored"

    # 1. Every 32-byte window of every stored value, and every service secret, as a PRE
    #    private key: nobody's private key, and no decryption of the session key.
    own_scalars = [*insider.secrets.values(), *insider.augmentation.values()]
    candidates = windows(insider.blobs) | set(own_scalars) | {reduced(s) for s in own_scalars}
    candidates |= {hashlib.sha256(s).digest() for s in own_scalars}
    assert len(candidates) > 5_000
    broken = scalar_attempts(sorted(candidates), targets, every_ciphertext=False)
    assert not broken, broken

    # 2. The insider transforms the session key itself, as the service can (every stored
    #    group -> user key, then every stored user -> device key, signed with the
    #    service's own signer) ...
    service = client.app.state.service  # type: ignore[attr-defined]
    for member in insider.dump["group_members"]:
        to_user = transform(
            targets.session_edek, stored_key(member["transform_key"]), service.signer
        )
        targets.ciphertexts[f"session key moved by the insider to {member['user_id']}"] = to_user
        for device in insider.dump["devices"]:
            if device["user_id"] == member["user_id"] and device["transform_key"] is not None:
                to_device = transform(to_user, stored_key(device["transform_key"]), service.signer)
                label = f"session key moved by the insider to device {device['id']}"
                targets.ciphertexts[label] = to_device
    #    ... and tries its own scalars (and the augmentation secrets combined with the
    #    other scalars it holds) on every ciphertext, stored, handed out or its own.
    combos = set(own_scalars) | {reduced(s) for s in own_scalars}
    for s in insider.augmentation.values():
        for t in own_scalars:
            a, b = int.from_bytes(s, "big"), int.from_bytes(t, "big")
            combos |= {((a + b) % R).to_bytes(32, "big"), ((a - b) % R).to_bytes(32, "big")}
            combos.add(((R - a) % R).to_bytes(32, "big"))
    broken = scalar_attempts(sorted(combos), targets, every_ciphertext=True)
    assert not broken, broken

    # 3. Every window and secret as an AES-256 key for the escrows and the envelope.
    aes_keys = windows(insider.blobs) | set(own_scalars)
    aes_keys |= {hashlib.sha256(s).digest() for s in [*own_scalars, *insider.shares.values()]}
    broken = aes_attempts(sorted(aes_keys), targets)
    assert not broken, broken

    # 4. Escrow passwords from the stored shares alone (PBKDF2 at its real cost).
    for user, blob in targets.escrows.items():
        for name, password in share_passwords(insider, user).items():
            with pytest.raises(DecryptionError):
                escrow.open_escrow(blob, password, context=user.encode())
            assert name  # (named for the failure message above)


def test_the_insiders_attempts_work_when_the_secret_is_there(
    flow: Flow, client: TestClient
) -> None:
    """Plant each real secret inside a stored-looking blob: the same attempts find it.
    (So the insider test fails if its attempts are wrong in form, not just hopeless.)"""
    insider = become_insider(client)
    targets = targets_of(insider, flow)
    noise = secrets.token_bytes(9)
    for party in (flow.alice, flow.bob):
        planted = noise + party.device_key.to_secret_bytes() + noise
        broken = scalar_attempts(sorted(windows([planted])), targets, every_ciphertext=True)
        assert f"a candidate decrypts session key for {party.name}'s device" in broken
        assert any("private key of" in b and party.name in b for b in broken), broken
    # the group key is a window: it is found, and it decrypts the session key's ciphertext
    planted = noise + flow.group_key.to_secret_bytes()[::-1] + noise  # even reversed
    broken = scalar_attempts(sorted(windows([planted])), targets, every_ciphertext=False)
    assert "a candidate decrypts session key" in broken
    # the escrow's real AES key, planted, opens it; the real password opens it too
    for party in (flow.alice, flow.bob):
        key = escrow_key(party.escrow, party.password)
        broken = aes_attempts(sorted(windows([noise + key + noise])), targets)
        assert f"a candidate AES key opens {party.name}'s escrow" in broken
        insider_view = targets.escrows[party.name]
        assert escrow.open_escrow(insider_view, party.password, context=party.name.encode())
    # the envelope's real key, planted, opens it
    envelope_key = flow.group_key_plaintext.derive_key("group key")
    broken = aes_attempts([envelope_key], targets)
    assert "a candidate AES key opens the group-key envelope" in broken
    # and the password attempts have the right form: with the platform's share they open
    for party in (flow.alice, flow.bob):
        share = insider.shares[party.name]
        password = escrow.split_trust_password(share, party.platform_share)
        assert escrow.open_escrow(
            targets.escrows[party.name], password, context=party.name.encode()
        )
