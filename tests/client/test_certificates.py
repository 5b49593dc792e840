"""Device certificates: a device's keys count as its user's only if the user's pinned
identity key certified them, so a key service cannot present keys of its own as a
user's device (and so sign board posts, or key ciphertexts, in that user's name).

As in ``test_pins``, the test plays a dishonest key service by editing its database:
the SDK really receives the substituted records from the real service over HTTP.
"""

import contextlib
import sqlite3
from pathlib import Path

import httpx
import pytest

from veil.client import DeviceRevoked, PinnedKeyChanged, UncertifiedDevice
from veil.client.keyserver import KeyServerClient, UserKeys
from veil.crypto import schnorr
from veil.crypto.keys import PrivateKey
from veil.crypto.signing import SigningKey
from veil.protocol import b64encode, device_certificate_message
from veil.protocol.board import Chat


def rewrite(database: Path, sql: str, *values: object) -> None:
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as db, db:
        assert db.execute(sql, values).rowcount == 1


def test_a_device_record_with_keys_its_user_did_not_certify_is_refused(sdk, stack) -> None:  # type: ignore[no-untyped-def]
    a, b, m = sdk.user("alice"), sdk.user("bob"), sdk.user("mallory")
    database = stack.keyserver_database

    async def main() -> None:
        alice, bob, mallory = await sdk.device(a), await sdk.device(b), await sdk.device(m)
        assert await alice.signer_of(bob.device_id) == (b, bob.signer.verifying_key)
        assert await alice.signer_of(alice.device_id) == (a, alice.signer.verifying_key)

        # The service swaps in a signing key of its own: the certificate no longer fits.
        planted = SigningKey.generate()
        rewrite(
            database, "UPDATE devices SET signing_key = ? WHERE id = ?",
            bytes(planted.verifying_key), bob.device_id,
        )  # fmt: skip
        with pytest.raises(UncertifiedDevice):
            await alice.signer_of(bob.device_id, fresh=True)

        # ... and a certificate made by someone else's identity key (mallory's, say).
        certificate = schnorr.sign(
            device_certificate_message(
                b, bob.device_id, bytes(bob._context.device_key.public_key),
                bytes(planted.verifying_key),
            ),
            await mallory.user_key(),
        )  # fmt: skip
        rewrite(
            database, "UPDATE devices SET certificate = ? WHERE id = ?",
            bytes(certificate), bob.device_id,
        )  # fmt: skip
        with pytest.raises(UncertifiedDevice):
            await alice.signer_of(bob.device_id, fresh=True)

        # ... and then bob's identity key too: alice pinned bob's keys, so she notices.
        rewrite(
            database, "UPDATE users SET client_public_key = ? WHERE id = ?",
            bytes((await mallory.user_key()).public_key), b,
        )  # fmt: skip
        with pytest.raises(PinnedKeyChanged):
            await alice.signer_of(bob.device_id, fresh=True)

        # A record without a certificate (made before certificates existed) is refused.
        rewrite(database, "UPDATE devices SET certificate = NULL WHERE id = ?", mallory.device_id)
        with pytest.raises(UncertifiedDevice):
            await alice.signer_of(mallory.device_id)

    sdk.run(main)


def test_posts_from_a_device_its_user_did_not_certify_are_not_delivered(sdk, stack) -> None:  # type: ignore[no-untyped-def]
    a, b = sdk.user("alice"), sdk.user("bob")
    room = f"room-{sdk.user('certs')}"

    async def main() -> None:
        alice, bob = await sdk.device(a), await sdk.device(b)

        by_alice, at_bob = alice.board(room), bob.board(room)
        await by_alice.connect(since=0)
        await by_alice.post(Chat.KIND, bytes(Chat(0, 0, b"before")))
        # The key service now presents alice's device with a public key of its choosing
        # (the certificate covers the PRE key too).
        rewrite(
            stack.keyserver_database, "UPDATE devices SET public_key = ? WHERE id = ?",
            bytes(PrivateKey.generate().public_key), alice.device_id,
        )  # fmt: skip
        await by_alice.post(Chat.KIND, bytes(Chat(0, 0, b"after")))
        await at_bob.connect(since=0)
        with pytest.raises(TimeoutError):
            await at_bob.next(2)
        assert at_bob.rejected == 2
        await by_alice.close()
        await at_bob.close()

    sdk.run(main)


def test_records_of_revoked_or_other_devices_are_refused(sdk) -> None:  # type: ignore[no-untyped-def]
    a = sdk.user("alice")

    async def main() -> None:
        alice = await sdk.device(a)
        laptop = await sdk.device(a)
        await alice.revoke_device(laptop.device_id)
        with pytest.raises(DeviceRevoked):  # a revoked device's keys are presumed lost
            await alice.signer_of(laptop.device_id)

        # A key service answering for another device than the one asked for.
        async def answer(request: httpx.Request) -> httpx.Response:
            record = {
                "device_id": alice.device_id, "user_id": a, "status": "active",
                "public_key": b64encode(bytes(alice._context.device_key.public_key)),
                "signing_key": b64encode(bytes(alice.signer.verifying_key)),
                "certificate": None,
            }  # fmt: skip
            return httpx.Response(200, json=record)

        async with httpx.AsyncClient(
            base_url="http://keys.invalid", transport=httpx.MockTransport(answer)
        ) as http:
            with pytest.raises(UncertifiedDevice, match="a device other than"):
                await KeyServerClient(http).device_record("0" * 32)

    sdk.run(main)


def test_a_device_pins_its_own_users_keys_at_registration(sdk) -> None:  # type: ignore[no-untyped-def]
    a, b = sdk.user("alice"), sdk.user("bob")
    store = sdk.store()

    async def main() -> None:
        alice, bob = await sdk.device(a, store=store), await sdk.device(b)
        own = UserKeys(alice.master_public_key, (await alice.user_key()).public_key).pin()
        assert store.load().pins == {a: own}  # before the key service was ever asked

        # A pin from before identity keys (the master key alone) is upgraded, not refused.
        alice.pins._pinned[b] = bytes(bob.master_public_key)
        assert await alice.public_keys([b]) == {b: bob.master_public_key}
        assert len(alice.pins._pinned[b]) == 2 * len(bytes(bob.master_public_key))

    sdk.run(main)


def test_a_device_registered_before_certificates_certifies_itself_on_load(sdk, stack) -> None:  # type: ignore[no-untyped-def]
    a = sdk.user("alice")
    store = sdk.store()

    async def main() -> None:
        alice = await sdk.device(a, store=store)
        old_signer = alice.signer
        await alice.close()
        rewrite(
            stack.keyserver_database,
            "UPDATE devices SET certificate = NULL WHERE id = ?",
            alice.device_id,
        )
        again = await sdk.device(a, store=store)  # loads the stored context
        assert again.device_id == alice.device_id
        assert again.signer.verifying_key != old_signer.verifying_key  # rotated
        record = await again.keyserver.device_record(again.device_id)
        assert record.certificate is not None
        assert await again.signer_of(again.device_id) == (a, again.signer.verifying_key)

    sdk.run(main)
