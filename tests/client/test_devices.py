"""Device set-up in its three modes, the sealed device store, and lost devices."""

import asyncio
import contextlib
import secrets
import stat
import unicodedata

import pytest

from veil.client import (
    ApprovalPending,
    DeviceRevoked,
    FileDeviceStore,
    Unauthorized,
    WrongPassword,
    approval_payload,
)
from veil.client.device import parse_approval
from veil.client.keyserver import KeyServerClient
from veil.crypto.errors import DecryptionError
from veil.crypto.escrow import open_escrow, split_trust_password
from veil.crypto.keys import PrivateKey
from veil.crypto.signing import SigningKey
from veil.protocol import CONFERENCE_AUDIENCE, KEYSERVER_AUDIENCE, b64encode, device_id_for


def said(text: str):  # type: ignore[no-untyped-def]
    """A password callback that answers ``text``."""

    async def password() -> str:
        return text

    return password


async def never_shown(payload: str) -> None:
    raise AssertionError(f"the first device of a user needs no approval ({payload})")


# --- split trust --------------------------------------------------------------------------


def test_split_trust_needs_nothing_typed_and_a_second_device_decrypts(sdk) -> None:  # type: ignore[no-untyped-def]
    alice = sdk.user("alice")

    async def main() -> None:
        first = await sdk.device(alice)  # no mode, no password: split trust
        assert first.mode == "split-trust"
        assert first.user_id == alice
        document = await first.documents.encrypt(b"minutes of the board meeting")

        second = await sdk.device(alice)
        assert second.mode == "split-trust"
        assert second.device_id != first.device_id
        assert bytes(second.master_public_key) == bytes(first.master_public_key)
        assert await second.documents.decrypt(document) == b"minutes of the board meeting"
        devices = {d["device_id"]: d["status"] for d in await first.devices()}
        assert devices == {first.device_id: "active", second.device_id: "active"}

        # The escrow password needs both shares: the key service's share alone (with
        # any other platform share) does not open the escrowed user key.
        _, _, escrow = await first.keyserver.escrow(await first.keyserver_token())
        keyserver_share = await first.keyserver.share(await first.keyserver_token())
        platform_share = await first.conference.share(await first.conference_token())
        assert keyserver_share != platform_share
        with pytest.raises(DecryptionError):
            open_escrow(
                escrow,
                split_trust_password(keyserver_share, secrets.token_bytes(16)),
                context=alice.encode(),
            )

    sdk.run(main)


def test_neither_service_can_replay_the_tokens_it_receives_at_the_other(sdk) -> None:  # type: ignore[no-untyped-def]
    # The review's attack: a key service that replays a user's JWT at the conference
    # service collects both split-trust shares. Each service takes its own audience only.
    alice = sdk.user("alice")
    issued: dict[str, list[str]] = {KEYSERVER_AUDIENCE: [], CONFERENCE_AUDIENCE: []}
    tokens = sdk.tokens(alice)

    async def recording(audience: str) -> str:
        issued[audience].append(token := await tokens(audience))
        return token

    async def main() -> None:
        device = await sdk.device(alice, tokens=recording)
        assert issued[KEYSERVER_AUDIENCE] and issued[CONFERENCE_AUDIENCE]
        for token in issued[KEYSERVER_AUDIENCE]:
            with pytest.raises(Unauthorized) as refused:
                await device.conference.share(token)
            assert refused.value.code == "wrong_audience"
        for token in issued[CONFERENCE_AUDIENCE]:
            with pytest.raises(Unauthorized) as refused:
                await device.keyserver.share(token)
            assert refused.value.code == "wrong_audience"
            with pytest.raises(Unauthorized):
                await device.keyserver.escrow(token)

        with pytest.raises(ValueError, match="distinct token audiences"):
            await sdk.device(alice, keyserver_audience="one", conference_audience="one")

    sdk.run(main)


# --- password mode --------------------------------------------------------------------------


def test_password_mode_opens_with_the_right_password_only(sdk) -> None:  # type: ignore[no-untyped-def]
    bob = sdk.user("bob")
    phrase = "Café crème, 42 times"

    async def main() -> None:
        first = await sdk.device(bob, mode="password", password=said(phrase))
        assert first.mode == "password"
        document = await first.documents.encrypt(b"bob's diary")

        store = sdk.store()
        with pytest.raises(WrongPassword):
            await sdk.device(bob, mode="password", password=said("cafe creme"), store=store)
        assert store.load() is None  # nothing saved...
        assert [d["device_id"] for d in await first.devices()] == [
            first.device_id
        ]  # ...or registered
        with pytest.raises(WrongPassword):
            await sdk.device(bob, mode="password", password=said(""))

        # The same password typed in another Unicode normalization form (NFD) opens it.
        decomposed = unicodedata.normalize("NFD", phrase)
        assert decomposed != phrase
        second = await sdk.device(bob, mode="password", password=said(decomposed), store=store)
        assert store.load() is not None
        assert await second.documents.decrypt(document) == b"bob's diary"
        assert len(await first.devices()) == 2

    sdk.run(main)


def test_password_and_approval_modes_need_their_callbacks(sdk) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        with pytest.raises(ValueError, match="password callback"):
            await sdk.device(sdk.user("carl"), mode="password")
        with pytest.raises(ValueError, match="show_approval"):
            await sdk.device(sdk.user("carl"), mode="approval")

    sdk.run(main)


# --- approval mode --------------------------------------------------------------------------


def test_approval_mode_an_existing_device_approves_a_new_one(sdk) -> None:  # type: ignore[no-untyped-def]
    carol = sdk.user("carol")

    async def main() -> None:
        first = await sdk.device(carol, mode="approval", show_approval=never_shown)
        assert first.mode == "approval"
        document = await first.documents.encrypt(b"the agenda")

        shown: asyncio.Queue[str] = asyncio.Queue()

        async def show(payload: str) -> None:
            await shown.put(payload)

        store = sdk.store()
        joining = asyncio.create_task(
            sdk.device(carol, mode="approval", show_approval=show, store=store, approval_timeout=30)
        )
        try:
            payload = await asyncio.wait_for(shown.get(), 10)
            user_id, _, signing_key = parse_approval(payload)
            assert user_id == carol
            assert len(payload) < 200  # short enough for a QR code
            new_id = device_id_for(bytes(signing_key))
            # Shown, not yet registered: the new device waits.
            assert new_id not in {d["device_id"] for d in await first.devices()}
            assert not joining.done()

            approved = await first.approve_device(payload)
            assert approved == new_id
            second = await asyncio.wait_for(joining, 30)
        finally:
            if not joining.done():
                joining.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await joining
        assert second.device_id == new_id
        assert second.mode == "approval"
        assert store.load() is not None
        assert await second.documents.decrypt(document) == b"the agenda"
        # A document shared with carol after the approval reaches the new device too.
        later = await first.documents.encrypt(b"after approval", users=[carol])
        assert await second.documents.decrypt(later) == b"after approval"

        # A payload for another user's device is refused before anything is sent.
        foreign = approval_payload(
            sdk.user("mallory"),
            PrivateKey.generate().public_key,
            SigningKey.generate().verifying_key,
        )
        with pytest.raises(ValueError, match="another user"):
            await first.approve_device(foreign)
        with pytest.raises(ValueError, match="approval payload"):
            await first.approve_device("veil-approve-v0:" + carol)

        # Nobody approves this one: it gives up with ApprovalPending and registers nothing.
        unapproved = sdk.store()
        with pytest.raises(ApprovalPending):
            await sdk.device(
                carol, mode="approval", show_approval=show, store=unapproved, approval_timeout=0.3
            )
        assert unapproved.load() is None
        assert len(await first.devices()) == 2

    sdk.run(main)


# --- the saved context ------------------------------------------------------------------------


def test_a_known_device_reloads_its_sealed_context(sdk, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dave = sdk.user("dave")
    path = tmp_path / "device" / "context.veil"
    storage_key = secrets.token_bytes(32)

    async def main() -> list[bytes]:
        first = await sdk.device(dave, store=FileDeviceStore(path, storage_key))
        document = await first.documents.encrypt(b"kept across restarts")
        private = [first._context.device_key.to_secret_bytes(), first.signer.to_secret_bytes()]
        await first.close()

        again = await sdk.device(dave, store=FileDeviceStore(path, storage_key))
        assert again.device_id == first.device_id
        assert again.user_id == dave
        assert [d["device_id"] for d in await again.devices()] == [first.device_id]
        assert again.pins._pinned == first.pins._pinned  # pins persist (own key, pinned on encrypt)
        assert dave in again.pins
        assert await again.documents.decrypt(document) == b"kept across restarts"

        with pytest.raises(DecryptionError):
            await sdk.device(dave, store=FileDeviceStore(path, secrets.token_bytes(32)))
        return private

    private = sdk.run(main)
    sealed = path.read_bytes()
    for secret in private:
        assert secret not in sealed
        assert b64encode(secret).encode() not in sealed
    assert dave.encode() not in sealed  # the whole context is sealed, ids included
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    altered = bytearray(sealed)
    altered[-1] ^= 1
    path.write_bytes(bytes(altered))
    with pytest.raises(DecryptionError):
        FileDeviceStore(path, storage_key).load()


# --- a lost device --------------------------------------------------------------------------


def test_a_revoked_device_decrypts_nothing_and_cannot_start(sdk) -> None:  # type: ignore[no-untyped-def]
    erin, frank = sdk.user("erin"), sdk.user("frank")

    async def main() -> None:
        phone = await sdk.device(erin)
        laptop_store = sdk.store()
        laptop = await sdk.device(erin, store=laptop_store)
        sender = await sdk.device(frank)
        before = await sender.documents.encrypt(b"before the loss", users=[erin])
        assert await laptop.documents.decrypt(before) == b"before the loss"

        await phone.revoke_device(laptop.device_id)
        statuses = {d["device_id"]: d["status"] for d in await phone.devices()}
        assert statuses == {phone.device_id: "active", laptop.device_id: "revoked"}
        record = await KeyServerClient(phone.keyserver.http).device_record(laptop.device_id)
        assert not record.active

        after = await sender.documents.encrypt(b"after the loss", users=[erin])
        with pytest.raises(DeviceRevoked) as caught:
            await laptop.documents.decrypt(after)
        assert (caught.value.status, caught.value.code) == (403, "device_revoked")
        with pytest.raises(DeviceRevoked):
            await laptop.documents.decrypt(before)
        with pytest.raises(DeviceRevoked):
            await laptop.public_keys([frank])
        assert await phone.documents.decrypt(after) == b"after the loss"

        with pytest.raises(DeviceRevoked):
            await sdk.device(erin, store=laptop_store)

    sdk.run(main)
