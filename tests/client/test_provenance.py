"""A group's private key and a document's key are used only if they come from whom they
must (``veil.client.provenance``): the transformed value signed by the key service's
transform signer, descending from the level-0 ciphertext the key service stored, which
a device of an admin (of the document's owner) signed with a key its user's pinned
identity key certified. Anything else is ``UntrustedKey``, and nothing is decrypted.

The test plays a dishonest key service at the HTTP layer: a transport between the SDK
and the real services rewrites the key service's answers (and, where the answer must
stay signed by the transform signer, its database, as ``test_certificates`` does).
"""

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from veil.client import Device, UntrustedKey
from veil.client.keyserver import DeviceRecord
from veil.crypto.aead import seal_document
from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import EncryptedValue, VerifiedEncryptedValue, encrypt
from veil.crypto.signing import SigningKey
from veil.protocol import b64decode, b64encode

Answer = dict[str, Any]


class Tamper(httpx.AsyncBaseTransport):
    """Sends requests to the real services and rewrites the JSON answers of the paths
    ending in ``suffix`` with ``rewrite``, once one is set."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.suffix = ""
        self.rewrite: Callable[[Answer], Answer] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if self.rewrite is None or not request.url.path.endswith(self.suffix):
            return response
        await response.aread()
        await response.aclose()
        answer = self.rewrite(json.loads(response.content))
        return httpx.Response(response.status_code, json=answer)

    async def aclose(self) -> None:
        await self._inner.aclose()


def resigned(raw: str, by: SigningKey) -> str:
    """A ciphertext (base64url) with its signature replaced by ``by``'s."""
    value = EncryptedValue.from_bytes(b64decode(raw))
    fields = (value.ephemeral_key, value.body, value.auth_hash, value.blocks, by.verifying_key)
    unsigned = EncryptedValue(*fields, b"")
    return b64encode(bytes(EncryptedValue(*fields, by.sign(unsigned.signed_bytes()))))


async def author(device: Device) -> Answer:
    """``device`` as an answer's ``author`` names it: its record, certificate included."""
    response = await device.keyserver.http.get(f"/v1/devices/{device.device_id}")
    keys = ("device_id", "user_id", "public_key", "signing_key", "certificate", "status")
    return {key: response.json()[key] for key in keys}


def spy_on_decrypt(device: Device, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record every decryption ``device`` makes with its device key."""
    calls: list[object] = []
    real = device.decrypt

    def decrypt(value: VerifiedEncryptedValue, *, origin: EncryptedValue | None = None) -> Any:
        calls.append(value)
        return real(value, origin=origin)

    monkeypatch.setattr(device, "decrypt", decrypt)
    return calls


async def show(payload: str) -> None:
    raise AssertionError(f"the first device of a user needs no approval ({payload})")


def rewrite_row(database: Path, sql: str, *values: object) -> None:
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as db, db:
        assert db.execute(sql, values).rowcount == 1


def test_a_document_key_from_anyone_but_its_owners_device_is_refused(sdk, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    a, b, m = sdk.user("alice"), sdk.user("bob"), sdk.user("mallory")
    tamper = Tamper()

    async def main() -> None:
        alice, mallory = await sdk.device(a), await sdk.device(m)
        bob = await sdk.device(b, transport=tamper)
        document = await alice.documents.encrypt(b"the minutes", users=[b])
        assert await bob.documents.decrypt(document, author=a) == b"the minutes"
        other = await alice.documents.encrypt(b"other minutes", users=[b])
        calls = spy_on_decrypt(bob, monkeypatch)
        alices, mallorys = await author(alice), await author(mallory)
        other_origin = (await bob.session.document_key(other.document_id)).origin
        transform_signer = SigningKey.generate()

        cases: dict[str, Callable[[Answer], Answer]] = {
            # The transformed value signed by a key other than the transform signer's.
            "resigned transform": lambda d: {
                **d, "encrypted_key": resigned(d["encrypted_key"], transform_signer)
            },
            # The origin signed by mallory's (certified) device, named as its author.
            "mallory's origin": lambda d: {
                **d, "origin": resigned(d["origin"], mallory.signer),
                "author": mallorys,
            },
            # ... by mallory's key, under alice's name: her certificate does not cover it.
            "mallory's key as alice's": lambda d: {
                **d, "origin": resigned(d["origin"], mallory.signer),
                "author": {**alices, "signing_key": mallorys["signing_key"]},
            },
            # ... by alice's key, with a certificate made by mallory's identity key.
            "mallory's certificate": lambda d: {
                **d, "author": {**alices, "certificate": mallorys["certificate"]}
            },
            # The origin of another document: alice's, but not what was transformed.
            "another origin": lambda d: {**d, "origin": b64encode(bytes(other_origin))},
            # An origin at level 1 (the transformed value itself).
            "transformed as origin": lambda d: {**d, "origin": d["encrypted_key"]},
            "no author": lambda d: {**d, "author": None},
            "no origin": lambda d: {k: v for k, v in d.items() if k != "origin"},
            "no owner": lambda d: {k: v for k, v in d.items() if k != "owner"},
        }  # fmt: skip
        tamper.suffix = f"/documents/{document.document_id}/key"
        for name, rewrite in cases.items():
            tamper.rewrite = rewrite
            with pytest.raises(UntrustedKey):
                await bob.documents.decrypt(document)
            assert calls == [], name

        # A key service that calls mallory the owner as well passes the owner check:
        # the reader who knows the author says so (author=), and is not fooled.
        tamper.rewrite = lambda d: {
            **d, "owner": m, "origin": resigned(d["origin"], mallory.signer), "author": mallorys,
        }  # fmt: skip
        with pytest.raises(UntrustedKey):
            await bob.documents.decrypt(document, author=a)
        with pytest.raises(UntrustedKey):
            b"".join(await bob.documents.decrypt_stream(document.document_id, [], author=a))
        assert calls == []
        tamper.rewrite = None
        assert await bob.documents.decrypt(document, author=a) == b"the minutes"
        assert len(calls) == 1

    sdk.run(main)


def test_a_group_key_from_anyone_but_an_admins_device_is_refused(sdk, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    a, b, c = sdk.user("alice"), sdk.user("bob"), sdk.user("carol")
    tamper = Tamper()

    async def main() -> None:
        alice, carol = await sdk.device(a), await sdk.device(c)
        bob = await sdk.device(b, transport=tamper)
        group = await alice.groups.create(members=[c], admins=[b])
        calls = spy_on_decrypt(bob, monkeypatch)
        carols = await author(carol)
        transform_signer = SigningKey.generate()
        cases: dict[str, Callable[[Answer], Answer]] = {
            "resigned transform": lambda d: {
                **d, "encrypted_key": resigned(d["encrypted_key"], transform_signer)
            },
            # carol is a member, certified, but not an admin.
            "a member's origin": lambda d: {
                **d, "origin": resigned(d["origin"], carol.signer),
                "author": carols,
            },
            "no author": lambda d: {**d, "author": None},
            "transformed as origin": lambda d: {**d, "origin": d["encrypted_key"]},
        }  # fmt: skip
        tamper.suffix = f"/groups/{group}/private-key"
        for name, rewrite in cases.items():
            tamper.rewrite = rewrite
            with pytest.raises(UntrustedKey):
                await bob.groups.key(group)
            assert calls == [], name
        tamper.rewrite = None
        assert (await bob.groups.key(group)).public_key == await alice.groups.public_key(group)

    sdk.run(main)


def test_a_group_key_that_is_not_the_pinned_groups_is_refused(sdk, stack) -> None:  # type: ignore[no-untyped-def]
    """An admin's device really made it, but it opens another key than the group's: the
    key service swapped in a ciphertext an admin made for something else."""
    a, b = sdk.user("alice"), sdk.user("bob")

    async def main() -> None:
        alice, bob = await sdk.device(a), await sdk.device(b)
        group = await alice.groups.create(admins=[b])
        plaintext, other = Plaintext.generate(), PrivateKey.generate()
        rewrite_row(
            stack.keyserver_database,
            "UPDATE group_admins SET encrypted_key = ?, key_envelope = ?"
            " WHERE group_id = ? AND user_id = ?",
            bytes(encrypt(plaintext, bob.master_public_key, alice.signer)),
            seal_document(plaintext.derive_key("group key"), group, other.to_secret_bytes()),
            group, b,
        )  # fmt: skip
        for _ in range(2):  # not kept either
            with pytest.raises(UntrustedKey):
                await bob.groups.key(group)

    sdk.run(main)


def test_a_transformed_value_not_signed_by_the_transform_signer_is_refused(sdk) -> None:  # type: ignore[no-untyped-def]
    a, b = sdk.user("alice"), sdk.user("bob")
    tamper = Tamper()

    async def main() -> None:
        alice = await sdk.device(a)
        bob = await sdk.device(b, transport=tamper)
        group = await alice.groups.create(members=[b])
        posted = encrypt(Plaintext.generate(), await alice.groups.public_key(group), alice.signer)
        moved = await bob.session.transform(bytes(posted), group_id=group)
        assert moved.signer == await bob.keyserver.transform_signer()
        tamper.suffix = "/v1/transform"
        tamper.rewrite = lambda d: {"encrypted_key": resigned(d["encrypted_key"], alice.signer)}
        with pytest.raises(UntrustedKey):
            await bob.session.transform(bytes(posted), group_id=group)

    sdk.run(main)


def test_an_author_record_parses_as_a_device_record() -> None:
    signer, key = SigningKey.generate(), PrivateKey.generate()
    data = {
        "device_id": "d", "user_id": "u", "public_key": b64encode(bytes(key.public_key)),
        "signing_key": b64encode(bytes(signer.verifying_key)), "certificate": None,
        "status": "revoked",
    }  # fmt: skip
    record = DeviceRecord.from_json(data)
    assert (record.user_id, record.active, record.certificate) == ("u", False, None)
    assert record.signing_key == signer.verifying_key


def test_a_new_device_refuses_an_escrow_grant_its_user_did_not_make(sdk) -> None:  # type: ignore[no-untyped-def]
    """Approval mode: the grant that opens the user key must come from a device its user
    certified (checked against the identity key of the user key it opens)."""
    c, m = sdk.user("carol"), sdk.user("mallory")

    async def main() -> None:
        first = await sdk.device(c, mode="approval", show_approval=show)
        mallory = await sdk.device(m)
        carols, mallorys = await author(first), await author(mallory)
        cases: dict[str, Callable[[Answer], Answer]] = {
            "mallory's origin": lambda d: {
                **d, "origin": resigned(d["origin"], mallory.signer), "author": mallorys
            },
            "mallory's certificate": lambda d: {
                **d, "author": {**carols, "certificate": mallorys["certificate"]}
            },
        }  # fmt: skip
        shown: asyncio.Queue[str] = asyncio.Queue()

        async def queue(payload: str) -> None:
            await shown.put(payload)

        for rewrite in (*cases.values(), None):
            tamper = Tamper()
            tamper.suffix, tamper.rewrite = f"/documents/veil-escrow.{c}/key", rewrite
            joining = asyncio.create_task(
                sdk.device(c, mode="approval", show_approval=queue, transport=tamper)
            )
            await first.approve_device(await asyncio.wait_for(shown.get(), 10))
            if rewrite is None:
                assert (await asyncio.wait_for(joining, 30)).user_id == c
            else:
                with pytest.raises(UntrustedKey):
                    await asyncio.wait_for(joining, 30)

    sdk.run(main)
